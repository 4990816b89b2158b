package projections

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// sharedTailMax bounds the records a Manager's consumers share: four
// catch-up batches. A consumer further behind than that reads for itself.
const sharedTailMax = 4 * DefaultCatchUpBatchSize

// sharedReads reads the log once for all the live consumers of a Manager
// instead of once each (docs/projections.md). It keeps the tail of the log
// that its consumers are working through: every event in commit order
// after a position, up to the last one read. A consumer anywhere in that
// tail takes what follows its position from memory; one that needs more
// than the tail holds first extends it with a read of what committed after
// its end, which the others that need more at that moment wait for and
// share. Whole records of every stream type are kept; each consumer takes
// what its selection keeps.
//
// The tail is a true piece of the log because events behind the xid
// horizon are final: a read after a position returns a prefix of the log
// after it that later reads only extend, so a read after the tail's end
// continues it without a gap, and what follows any position inside it is a
// prefix of the log after that position. Each consumer still makes its own
// look past the horizon (eventstore.CommittedAfter) when its batch was not
// full.
//
// What every active consumer has passed is let go, so that an idle Manager
// holds no records; a consumer that stops (its runner lost the lock) no
// longer holds any back.
type sharedReads struct {
	pool    *pgxpool.Pool
	batches *batchXIDs
	max     int
	// fromDB counts the reads that went to the database, for tests to see
	// what was shared.
	fromDB atomic.Int64

	mu sync.Mutex
	// kept says from and recs describe a piece of the log: recs are every
	// event after from, in commit order.
	kept bool
	from eventstore.Position
	recs []eventstore.Record
	// ext is the read after the tail's end in flight, nil when none is.
	ext *tailRead
	// at is where each active consumer last asked from: it has applied
	// everything up to there.
	at map[any]eventstore.Position
}

// tailRead is one read after a position, in flight until done is closed.
type tailRead struct {
	after eventstore.Position
	done  chan struct{}
	err   error
}

func newSharedReads(pool *pgxpool.Pool, batches *batchXIDs) *sharedReads {
	return &sharedReads{pool: pool, batches: batches, max: sharedTailMax, at: map[any]eventstore.Position{}}
}

// read returns up to limit whole records after pos, in commit order, for
// consumer who, and whether the batch is full (more may follow at once).
// It answers from the tail when the tail holds limit records after pos;
// otherwise it extends the tail once (or waits for the extension in
// flight) and answers with what there is then. A position before the tail
// is read from the database for this consumer alone. The records are
// shared with the other consumers: callers must not modify them.
func (s *sharedReads) read(ctx context.Context, who any, pos eventstore.Position, limit int) ([]eventstore.Record, bool, error) {
	s.mu.Lock()
	s.at[who] = pos
	extended := false
	for {
		if !s.kept {
			// Nothing kept: the tail starts here.
			s.kept, s.from, s.recs = true, pos, nil
		}
		end := s.end()
		if pos.Less(s.from) || end.Less(pos) {
			// Outside the tail: behind what is kept, or ahead of it
			// after a read of its own.
			s.mu.Unlock()
			return s.readAlone(ctx, pos, limit)
		}
		avail := s.after(pos)
		if len(avail) >= limit {
			out := avail[:limit:limit]
			s.trim()
			s.mu.Unlock()
			return out, true, nil
		}
		if extended {
			out := slices.Clip(avail)
			s.trim()
			s.mu.Unlock()
			return out, false, nil
		}
		ext := s.ext
		if ext == nil {
			ext = &tailRead{after: end, done: make(chan struct{})}
			s.ext = ext
			s.mu.Unlock()
			s.extend(ctx, ext, limit)
		} else {
			s.mu.Unlock()
			select {
			case <-ext.done:
			case <-ctx.Done():
				s.mu.Lock()
				delete(s.at, who)
				s.mu.Unlock()
				return nil, false, ctx.Err()
			}
		}
		if ext.err != nil {
			// The reader's failure (its context ended, say) is not this
			// consumer's: it reads for itself.
			if ctx.Err() != nil {
				return nil, false, ext.err
			}
			return s.readAlone(ctx, pos, limit)
		}
		s.mu.Lock()
		extended = true
	}
}

// extend reads up to limit records after ext.after and appends them to the
// tail, unless the tail no longer ends there.
func (s *sharedReads) extend(ctx context.Context, ext *tailRead, limit int) {
	s.fromDB.Add(1)
	recs, err := eventstore.ReadAllPast(ctx, s.pool, ext.after, limit, s.batches.list())
	s.mu.Lock()
	ext.err = err
	if err == nil && s.kept && s.end() == ext.after {
		s.recs = append(s.recs, recs...)
	}
	s.ext = nil
	s.mu.Unlock()
	close(ext.done)
}

// readAlone reads for one consumer, outside the tail.
func (s *sharedReads) readAlone(ctx context.Context, pos eventstore.Position, limit int) ([]eventstore.Record, bool, error) {
	s.fromDB.Add(1)
	recs, err := eventstore.ReadAllPast(ctx, s.pool, pos, limit, s.batches.list())
	return recs, len(recs) == limit, err
}

// leave forgets consumer who: it no longer holds any record back.
func (s *sharedReads) leave(who any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.at, who)
	s.trim()
}

// end is the position of the tail's last record, or from when it has
// none. Called with mu held.
func (s *sharedReads) end() eventstore.Position {
	if len(s.recs) == 0 {
		return s.from
	}
	return s.recs[len(s.recs)-1].Position()
}

// after returns the kept records after pos, which is inside the tail.
// Called with mu held.
func (s *sharedReads) after(pos eventstore.Position) []eventstore.Record {
	i, _ := slices.BinarySearchFunc(s.recs, pos, func(r eventstore.Record, p eventstore.Position) int {
		if !p.Less(r.Position()) {
			return -1 // at or before pos: not after it
		}
		return 1
	})
	return s.recs[i:]
}

// trim lets go of the records every active consumer has passed, and of the
// oldest beyond max. Called with mu held.
func (s *sharedReads) trim() {
	if !s.kept {
		return
	}
	drop := 0
	if len(s.at) > 0 {
		var low eventstore.Position
		first := true
		for _, p := range s.at {
			if first || p.Less(low) {
				low, first = p, false
			}
		}
		if !low.Less(s.from) {
			drop = len(s.recs) - len(s.after(low))
		}
	}
	drop = max(drop, len(s.recs)-s.max)
	if drop == 0 {
		return
	}
	s.from = s.recs[drop-1].Position()
	// Re-sliced, not cleared: a consumer may still be applying records
	// let go by the bound (batches handed out share the array).
	s.recs = s.recs[drop:]
	switch {
	case len(s.recs) == 0:
		s.recs = nil
	case cap(s.recs) > 4*len(s.recs):
		// Mostly let go: a smaller array, so that the old one is freed.
		s.recs = slices.Clone(s.recs)
	}
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
