// Package commands holds the use-case handlers: one file per use case, each
// with a command struct, a handler and a constructor that refuses nil
// dependencies. A handler loads an aggregate, asks it to decide and appends
// the result through the generic path (eventstore.Repository and
// Store.Transact, docs/aggregates.md), the one place that retries on
// optimistic-concurrency conflicts. What every context needs from a request
// (RequestContext, Principal, event metadata, the Clock) and each
// aggregate's description for the generic path live here too. The ports a
// handler needs (Provider, Vault, Mailer, Clock) are declared here, beside
// the handlers that consume them, and implemented in package adapters.
package commands
