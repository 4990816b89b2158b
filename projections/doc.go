// Package projections owns the read models built from the event log: the
// projectors, their tables, the consumer that feeds them in commit order
// (reading outside any transaction, then writing rows and checkpoint in one
// short transaction that re-checks the checkpoint under its row lock), the
// lock that keeps one consumer per projection across processes, the parking
// of events a projector cannot apply so that it moves on, and rebuilds into
// shadow tables that are swapped in without queueing readers for long.
// docs/projections.md records the design.
package projections
