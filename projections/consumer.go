package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// consumer feeds one projector's tables from the log under one checkpoint: a
// live runner's, or a rebuild's shadow. It is the one path from the log to a
// read model.
//
// A step reads the next events with plain statements outside any transaction
// (a read takes no transaction id and holds no snapshot past its statement),
// then writes in one short transaction that locks the checkpoint row,
// re-checks that the checkpoint is still where the read started, applies the
// events and moves the checkpoint. An idle poll therefore costs two reads
// and no transaction id; a busy one holds its transaction id only while it
// writes. The re-check under the row lock keeps delivery exactly-once: a
// second consumer that slipped past the advisory lock, or a rebuild's swap,
// moved the checkpoint, and this step starts over from where it now is.
type consumer struct {
	pool       *pgxpool.Pool
	p          Projector
	checkpoint string
	tables     TableNames
	cfg        config
	metrics    *metrics // nil for rebuilds: they do not feed the live gauges

	// pos is the checkpoint as this consumer last read or wrote it; it is
	// trusted only as a starting point for reads, never for writes.
	pos   eventstore.Position
	known bool
	// failures counts, by global position, the deterministic failures of
	// events not parked yet: an event is parked only after parkAfter of them.
	failures map[int64]int
	// until, when set, is the last position this consumer may apply: a
	// verification builds its shadow tables to exactly the live
	// checkpoint (verify.go).
	until *eventstore.Position
	// next is the batch after the one being written, read and prepared
	// meanwhile; only a ReadAheadPreparer's consumer and a rebuild's
	// (readsAhead) read ahead.
	next       *readAhead
	readsAhead bool
	// sel is what of the log the projector reads (a Selective's choice).
	sel eventstore.Selection
	// behind says the last read was full: the next reads a catch-up batch.
	behind bool
	// shared, set for a Manager's live consumers that do not read ahead,
	// reads the log once for all of them (shared.go).
	shared *sharedReads
}

// readAhead is the next batch of a Preparer, read after a position and
// prepared while the batch before it is written: reading, deriving and
// publishing batch n+1 overlap with writing batch n, which roughly halves
// a busy relay's time per batch. It is used only when the checkpoint is
// where it was read from; otherwise it is dropped and the batch read again,
// so it changes when work happens, never what is applied.
type readAhead struct {
	after   eventstore.Position
	done    chan struct{}
	recs    []eventstore.Record
	scanned eventstore.Position
	full    bool
	err     error
}

// startReadAhead reads, up to limit events, and prepares (pr, if not nil)
// the batch after pos in the background.
func (c *consumer) startReadAhead(ctx context.Context, pr Preparer, pos eventstore.Position, limit int) {
	ra := &readAhead{after: pos, done: make(chan struct{})}
	c.next = ra
	go func() {
		defer close(ra.done)
		ra.recs, ra.scanned, ra.full, ra.err = c.read(ctx, pos, limit)
		if ra.err == nil && len(ra.recs) > 0 && pr != nil {
			ra.err = pr.Prepare(ctx, ra.recs)
		}
	}()
}

// takeReadAhead returns the batch read ahead after c.pos, if there is one,
// and whether that read was full; prepared says it went through Prepare
// already.
func (c *consumer) takeReadAhead() (recs []eventstore.Record, scanned eventstore.Position, full, prepared bool) {
	ra := c.next
	c.next = nil
	if ra == nil {
		return nil, c.pos, false, false
	}
	<-ra.done
	if ra.after != c.pos || ra.err != nil || len(ra.recs) == 0 {
		// Stale, failed or empty: read again, the ordinary way.
		return nil, c.pos, false, false
	}
	return ra.recs, ra.scanned, ra.full, true
}

func newConsumer(pool *pgxpool.Pool, p Projector, checkpoint string, t TableNames, cfg config, m *metrics) *consumer {
	c := &consumer{pool: pool, p: p, checkpoint: checkpoint, tables: t, cfg: cfg, metrics: m, failures: map[int64]int{}}
	if s, ok := p.(Selective); ok {
		c.sel = s.Reads()
	}
	return c
}

// forget makes the next step read the checkpoint again, after anything that
// may have moved it behind this consumer's back.
func (c *consumer) forget() { c.known = false }

// dropReadAhead waits for a batch read ahead and drops it.
func (c *consumer) dropReadAhead() {
	if c.next != nil {
		<-c.next.done
		c.next = nil
	}
}

// batchResult says what one step did and whether more is known to be waiting.
type batchResult struct {
	// applied are the events applied and committed, in commit order.
	applied []eventstore.Record
	// parked are the events parked in the same transaction.
	parked []ParkedEvent
	// processed counts the events the checkpoint moved past: applied or parked.
	processed int
	// pending is the deterministic failure of an event that has not failed
	// often enough to be parked: the caller waits and steps again.
	pending error
	// more is true when the read was full, when committed events exist after
	// it that the xid horizon still holds back, or when the checkpoint moved
	// under the step and it must read again.
	more bool
}

// step reads and applies one batch.
func (c *consumer) step(ctx context.Context) (batchResult, error) {
	if !c.known {
		pos, err := readCheckpoint(ctx, c.pool, c.checkpoint)
		if err != nil {
			return batchResult{}, err
		}
		c.pos, c.known = pos, true
	}
	limit := c.cfg.batchSize
	if _, preparer := c.p.(Preparer); c.behind && !preparer {
		// A Preparer's batches go out over the network (and read ahead):
		// they keep their size.
		limit = c.cfg.catchUpBatchSize()
	}
	recs, scanned, full, prepared := c.takeReadAhead()
	var err error
	if recs == nil {
		recs, scanned, full, err = c.read(ctx, c.pos, limit)
	}
	if err != nil {
		return batchResult{}, fmt.Errorf("read batch of %s: %w", c.checkpoint, err)
	}
	res := batchResult{more: full}
	c.behind = res.more
	if c.until != nil {
		// Everything up to the bound is behind the horizon (a live
		// consumer applied it), so a short read means the bound is reached.
		n := 0
		for n < len(recs) && !c.until.Less(recs[n].Position()) {
			n++
		}
		recs = recs[:n]
		if c.until.Less(scanned) {
			scanned = *c.until
		}
		res.more = res.more && scanned.Less(*c.until)
	} else if !res.more {
		more, err := eventstore.CommittedAfter(ctx, c.pool, scanned)
		if err != nil {
			return batchResult{}, fmt.Errorf("%s: %w", c.checkpoint, err)
		}
		res.more = more
	}
	if len(recs) == 0 {
		if c.pos.Less(scanned) {
			// Only events this projector does not read: move the
			// checkpoint past them, so that it is not left behind.
			out, err := c.write(ctx, nil, scanned)
			if err != nil {
				c.forget()
				return batchResult{}, err
			}
			out.more = out.more || res.more
			return out, nil
		}
		return res, nil
	}
	if pr, ok := c.p.(Preparer); ok {
		// Outside any transaction: a Preparer's work is network I/O.
		if !prepared {
			if err := pr.Prepare(ctx, recs); err != nil {
				return batchResult{}, fmt.Errorf("prepare batch of %s at %v: %w", c.checkpoint, recs[0].Position(), err)
			}
		}
		if ra, ok := pr.(ReadAheadPreparer); ok && ra.ReadsAhead() && full {
			c.startReadAhead(ctx, pr, recs[len(recs)-1].Position(), limit)
		}
	} else if c.readsAhead && full {
		// A rebuild reads (and decodes) batch n+1 while PostgreSQL writes batch n.
		c.startReadAhead(ctx, nil, recs[len(recs)-1].Position(), limit)
	}
	out, err := c.write(ctx, recs, scanned)
	if err != nil {
		c.forget()
		c.dropReadAhead()
		return batchResult{}, err
	}
	out.more = out.more || res.more
	if len(out.applied) > 0 {
		c.metrics.applied(c.p.Name(), len(out.applied))
		if c.cfg.afterCommit != nil {
			c.cfg.afterCommit(c.checkpoint, out.applied)
		}
	}
	return out, nil
}

// write applies recs, read after c.pos, in one short transaction and moves
// the checkpoint to scanned, at or past the last of them (past it over
// events a Selective projector does not read). When the batch fails
// deterministically it is rolled back and isolate finds the event at fault;
// the fast path takes no savepoint, so a healthy batch costs what it did
// before parking existed.
func (c *consumer) write(ctx context.Context, recs []eventstore.Record, scanned eventstore.Position) (batchResult, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return batchResult{}, fmt.Errorf("begin batch of %s: %w", c.checkpoint, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	pos, xid, err := lockCheckpointAsBatch(ctx, tx, c.checkpoint)
	if err != nil {
		return batchResult{}, err
	}
	// Deferred after the rollback, so it runs first: the id may leave the
	// set while its transaction still runs, which only holds readers back.
	defer c.cfg.batches.add(xid)()
	if pos != c.pos {
		// Someone else applied these events: read again from where they left off.
		c.pos = pos
		return batchResult{more: true}, nil
	}
	var applyErr error
	if len(recs) > 0 {
		applyErr = safeApply(ctx, tx, c.p, c.tables, recs)
	}
	if applyErr == nil {
		last := scanned
		if len(recs) > 0 && last.Less(recs[len(recs)-1].Position()) {
			last = recs[len(recs)-1].Position()
		}
		if err := saveCheckpoint(ctx, tx, c.checkpoint, last, len(recs)); err != nil {
			return batchResult{}, err
		}
		if err := tx.Commit(ctx); err != nil {
			return batchResult{}, fmt.Errorf("commit batch of %s: %w", c.checkpoint, err)
		}
		c.pos = last
		clear(c.failures)
		return batchResult{applied: recs, processed: len(recs)}, nil
	}
	if isTransient(ctx, tx, applyErr) {
		return batchResult{}, fmt.Errorf("apply %d events to %s at %v: %w", len(recs), c.checkpoint, recs[0].Position(), applyErr)
	}
	if err := tx.Rollback(ctx); err != nil {
		return batchResult{}, fmt.Errorf("roll back batch of %s: %w", c.checkpoint, err)
	}
	return c.isolate(ctx, recs)
}
