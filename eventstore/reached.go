package eventstore

import (
	"context"
	"sync/atomic"
)

// Reached records the highest global position a request's appends reached
// once they committed, so that the web layer can hand it to the client
// (X-Dashtam-Position) without every use case threading positions through
// its results: a client then asks a read endpoint for data at least that
// fresh (docs/data-api.md, read your writes). Safe for concurrent use.
type Reached struct{ pos atomic.Int64 }

type reachedKey struct{}

// WithReached returns a context whose committed appends — Append, and
// Transact units of work — note their last global position in the
// returned Reached.
func WithReached(ctx context.Context) (context.Context, *Reached) {
	r := &Reached{}
	return context.WithValue(ctx, reachedKey{}, r), r
}

// ReachedFrom returns the Reached of ctx, nil when it has none.
func ReachedFrom(ctx context.Context) *Reached {
	r, _ := ctx.Value(reachedKey{}).(*Reached)
	return r
}

// Position returns the highest global position noted, 0 when nothing was
// appended (or r is nil).
func (r *Reached) Position() int64 {
	if r == nil {
		return 0
	}
	return r.pos.Load()
}

// note raises the recorded position to pos.
func (r *Reached) note(pos int64) {
	for {
		cur := r.pos.Load()
		if pos <= cur || r.pos.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// noteReached tells ctx's Reached, if any, that appends up to pos committed.
func noteReached(ctx context.Context, pos int64) {
	if r := ReachedFrom(ctx); r != nil && pos > 0 {
		r.note(pos)
	}
}
