// Package eventstore owns the append-only event log in PostgreSQL: appending
// with optimistic concurrency, the per-stream SHA-256 hash chain, reading a
// stream or the whole log in commit order behind the xid8 horizon, and the
// explicit registry that turns stored rows back into typed events (upcasting
// old schema versions on the way).
package eventstore
