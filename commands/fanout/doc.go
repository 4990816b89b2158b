// Package fanout turns the event log into Dashtam's public, versioned
// integration events and carries them out of the system: the relay that
// publishes them to a message broker through a watermill publisher (a
// projections.Reactor), the fan-out that enqueues signed webhook
// deliveries and the delivery jobs themselves, the per-instance tailer
// behind the live Server-Sent Events stream, and the transactions change
// feed, which reads the log rather than a read model so that its cursors
// survive rebuilds. Integration events carry ids, types, counts, statuses,
// positions and times, never personal data or secrets. docs/events.md
// records the contract and the design.
package fanout
