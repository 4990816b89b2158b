package projections

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// sharedReadsKept is how many recent reads a Manager's consumers share. The
// live consumers of one Manager mostly step in lockstep, all from the same
// position; a few more cover one that lags a batch or two behind.
const sharedReadsKept = 4

// sharedReads reads the log once for all the live consumers of a Manager
// that stand at the same position, instead of once each: every one of them
// is woken by the same append and asks for the batch after the same
// checkpoint. The first to ask reads whole records of every stream type;
// the others wait for that read and take what their selection keeps of it
// (docs/projections.md).
//
// Any read after a position is a valid answer for any consumer at that
// position, however old: events behind the xid horizon are final, so a
// read returns a prefix of the log after the position that later reads
// only extend. An old, short read therefore never hides an event; the
// consumer's look past the horizon (eventstore.CommittedAfter), made at
// its own step, finds what committed since, and it reads again.
type sharedReads struct {
	pool    *pgxpool.Pool
	batches *batchXIDs
	// fromDB counts the reads that went to the database, for tests to see
	// that consumers at one position share one.
	fromDB atomic.Int64

	mu    sync.Mutex
	reads map[eventstore.Position]*sharedRead
	order []eventstore.Position // oldest first
}

// sharedRead is one read of up to limit records after a position, in
// flight until done is closed.
type sharedRead struct {
	limit int
	done  chan struct{}
	recs  []eventstore.Record
	err   error
}

func newSharedReads(pool *pgxpool.Pool, batches *batchXIDs) *sharedReads {
	return &sharedReads{pool: pool, batches: batches, reads: map[eventstore.Position]*sharedRead{}}
}

// read returns up to limit whole records after pos, in commit order, and
// whether the read was full (more may follow at once). It takes the read
// after pos that is in flight or kept (a full one, see settle), or reads
// afresh and lets those who come meanwhile take that. The records are
// shared with the other consumers: callers must not modify them.
func (s *sharedReads) read(ctx context.Context, pos eventstore.Position, limit int) ([]eventstore.Record, bool, error) {
	s.mu.Lock()
	r, ok := s.reads[pos]
	if !ok {
		r = &sharedRead{limit: limit, done: make(chan struct{})}
		s.keep(pos, r)
		s.mu.Unlock()
		s.fromDB.Add(1)
		r.recs, r.err = eventstore.ReadAllPast(ctx, s.pool, pos, limit, s.batches.list())
		s.settle(pos, r)
		close(r.done)
	} else {
		s.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if r.err != nil {
			// The reader's failure (its context ended, say) is not this
			// consumer's: it reads for itself.
			s.fromDB.Add(1)
			recs, err := eventstore.ReadAllPast(ctx, s.pool, pos, limit, s.batches.list())
			return recs, len(recs) == limit, err
		}
	}
	if r.err != nil {
		return nil, false, r.err
	}
	if len(r.recs) >= limit {
		return r.recs[:limit:limit], true, nil
	}
	return slices.Clip(r.recs), len(r.recs) == r.limit, nil
}

// keep enters r as the read after pos, forgetting the oldest beyond
// sharedReadsKept. Called with mu held.
func (s *sharedReads) keep(pos eventstore.Position, r *sharedRead) {
	if _, replaced := s.reads[pos]; replaced {
		s.reads[pos] = r
		return
	}
	s.reads[pos] = r
	s.order = append(s.order, pos)
	for len(s.order) > sharedReadsKept {
		delete(s.reads, s.order[0])
		s.order = s.order[1:]
	}
}

// settle keeps r, just read and about to be marked done, only if it is
// worth sharing once it has ended: a full read, a whole batch. A read in
// flight is always worth joining (it is as fresh as one the joiner would
// start), but a short read that has ended holds only what had committed
// when it ran: a consumer that came later would apply that, find more and
// step again, and at a steady trickle of appends the slower consumers would
// follow the fastest one's small reads, one write transaction each, instead
// of taking in one batch everything committed since. A failed read has
// nothing to share, and an empty one kept would be handed, unchanged, to a
// consumer polling for events held back behind an open transaction,
// forever. An empty read also means its consumer has caught up with the
// log: the full reads still kept are dropped with it, so that an idle
// Manager holds no batch of records in memory. Reads in flight stay: their
// waiters hold them anyway, and consumers that come meanwhile join them.
func (s *sharedReads) settle(pos eventstore.Position, r *sharedRead) {
	if r.err == nil && len(r.recs) == r.limit {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reads[pos] == r {
		delete(s.reads, pos)
	}
	if r.err == nil && len(r.recs) == 0 {
		for p, kept := range s.reads {
			select {
			case <-kept.done:
				delete(s.reads, p)
			default:
			}
		}
	}
	s.order = slices.DeleteFunc(s.order, func(p eventstore.Position) bool { _, ok := s.reads[p]; return !ok })
}

// selectRecords returns what sel keeps of recs, whole records of every
// stream type; recs itself when it keeps every stream type (a lean
// selection only spares the reading, and the payload is already read).
func selectRecords(recs []eventstore.Record, sel eventstore.Selection) []eventstore.Record {
	if len(sel.StreamTypes) == 0 {
		return recs
	}
	out := make([]eventstore.Record, 0, len(recs))
	for _, r := range recs {
		if slices.Contains(sel.StreamTypes, r.Stream.Type) {
			out = append(out, r)
		}
	}
	return out
}
