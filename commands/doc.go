// Package commands holds the use-case handlers: one file per use case, each
// with a command struct, a handler and a constructor that refuses nil
// dependencies. A handler loads an aggregate, asks it to decide and appends
// the result through eventstore.Update, the one place that retries on
// optimistic-concurrency conflicts. The ports a handler needs (Provider,
// Vault, Mailer, Clock) are declared here, beside the handlers that consume
// them, and implemented in package adapters.
package commands
