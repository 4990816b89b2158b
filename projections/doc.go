// Package projections owns the read models built from the event log: the
// projectors, their tables, the runner that feeds them in commit order with a
// checkpoint written in the same transaction as their rows, the lock that keeps
// one consumer per projection across processes, and rebuilds into shadow
// tables that are swapped in atomically.
package projections
