// Package aggregates is the home of Dashtam's domain: one subpackage per
// aggregate (connection, account, transaction, user), each a plain struct whose
// command methods validate and return events and whose apply switch folds
// events into state. Aggregates do no I/O and read no clock or randomness:
// time and ids come in as arguments, so that every decision is replayable from
// the log. They import only the standard library, decimal and uuid; their
// events satisfy eventstore.Event structurally (an EventType method) without
// importing the store.
package aggregates
