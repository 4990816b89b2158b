package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// ErrRebuildRunning reports a rebuild of the same projector already running
// somewhere.
var ErrRebuildRunning = errors.New("projections: rebuild already running")

// swapTableLockTimeout bounds how long one swap attempt waits for the live
// tables' readers: while DROP TABLE waits for its lock, every new reader of the
// table queues behind it, so the wait is kept to about the time of a quick
// query. The attempt then gives up, releasing everything, lets the queue
// drain, and tries again after a backoff, for as long as the context allows.
const swapTableLockTimeout = "50ms"

// swapRowLockTimeout bounds the wait for the live checkpoint's row, which the
// live consumer holds for one batch: waiting there blocks no reader.
const swapRowLockTimeout = "5s"

// Backoff between swap attempts: short at first, so that a swap behind a
// brief reader lands at once, and at most a second, so that one behind a long
// reader costs other readers at most one short wait per second.
const (
	swapRetryMin = 20 * time.Millisecond
	swapRetryMax = time.Second
)

// Rebuild replays the whole log into fresh shadow tables of the projector
// called name while the live tables keep serving and the live consumer keeps
// running, then swaps them in: in one transaction that holds the live
// checkpoint's row lock (pausing the live consumer) it applies the last
// events, replaces the live tables, moves the live checkpoint and hands the
// events the rebuild parked to the live projection. A swap that readers of
// the live tables hold up is retried with a backoff until ctx ends, never
// making new readers queue for more than swapTableLockTimeout. progress,
// if not nil, is called with events applied so far and the log's size.
// Memory stays bounded by two batches (one written, the next read ahead).
func (m *Manager) Rebuild(ctx context.Context, name string, progress func(done, total int64)) error {
	return m.RebuildAll(ctx, []string{name}, progress)
}

// RebuildAll rebuilds the projectors called names as Rebuild does, one
// swap each, but replays the log for all of them from one read: each batch
// is read (and decoded) once and written by every projector in turn, in its
// own transaction, which spares a rebuild of several projectors all but one
// of its reads of the log (docs/benchmarks.md). A projector whose batch does
// not go through whole (an event failing, to be retried and parked) leaves
// the shared replay and finishes with reads of its own, as Rebuild would.
// progress counts the log once.
func (m *Manager) RebuildAll(ctx context.Context, names []string, progress func(done, total int64)) error {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	pool := m.store.Pool()
	// One session holds every projector's rebuild lock: a connection each
	// would exhaust a small pool before the replay took its own.
	lockConn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", strings.Join(names, ", "), err)
	}
	var runs []*rebuildRun
	defer func() {
		for _, r := range runs {
			r.close(context.WithoutCancel(ctx), m)
		}
		lockConn.Release()
	}()
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		r, err := m.startRebuild(ctx, lockConn, name)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	var total int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
		return fmt.Errorf("rebuild %s: count events: %w", strings.Join(names, ", "), err)
	}
	var done int64
	report := func(n int) {
		done += int64(n)
		total = max(total, done)
		progress(done, total)
	}
	progress(0, total)
	if len(runs) > 1 {
		cs := make([]*consumer, len(runs))
		for i, r := range runs {
			cs[i] = r.c
		}
		if err := m.replayShared(ctx, cs, report); err != nil {
			return fmt.Errorf("rebuild %s: %w", strings.Join(names, ", "), err)
		}
	}
	for _, r := range runs {
		if err := m.finishRebuild(ctx, r, report); err != nil {
			return err
		}
	}
	progress(done, done)
	return nil
}

// rebuildRun is one projector's rebuild in progress: the session holding
// its rebuild lock, its shadow tables and the consumer that fills them.
type rebuildRun struct {
	p        Projector
	lockConn *pgxpool.Conn
	shadow   TableNames
	c        *consumer
	swapped  bool
}

// startRebuild takes the projector's rebuild lock on lockConn's session
// and prepares its empty shadow tables and checkpoint.
func (m *Manager) startRebuild(ctx context.Context, lockConn *pgxpool.Conn, name string) (*rebuildRun, error) {
	p, err := m.Projector(name)
	if err != nil {
		return nil, err
	}
	pool := m.store.Pool()
	var ok bool
	if err := lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockRebuild, nameKey(name)).Scan(&ok); err != nil {
		return nil, fmt.Errorf("rebuild %s: take rebuild lock: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("rebuild %s: %w", name, ErrRebuildRunning)
	}
	r := &rebuildRun{p: p, lockConn: lockConn, shadow: shadowTables(p)}
	if err := m.prepareShadow(ctx, p, r.shadow); err != nil {
		r.unlock(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("rebuild %s: %w", name, err)
	}
	// Larger batches than the live path's, and the next one read while the
	// current one is written: the shadow tables have no reader to keep waiting.
	cfg := m.cfg
	cfg.batchSize = m.cfg.rebuildBatch
	r.c = newConsumer(pool, p, shadowName(name), r.shadow, cfg, nil)
	r.c.readsAhead = true
	return r, nil
}

// unlock releases the rebuild lock; the caller releases the session.
func (r *rebuildRun) unlock(ctx context.Context) {
	// The connection goes back to the pool: the session lock must not go with it.
	if _, err := r.lockConn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, lockRebuild, nameKey(r.p.Name())); err != nil {
		r.lockConn.Conn().Close(ctx)
	}
}

// close ends the run: a batch still read ahead is dropped, the shadow
// tables of a rebuild that did not swap are dropped, the lock released.
func (r *rebuildRun) close(ctx context.Context, m *Manager) {
	r.c.dropReadAhead()
	if !r.swapped {
		m.dropShadow(ctx, r.p, r.shadow)
	}
	r.unlock(ctx)
}

// replayShared applies the log to every consumer in cs from one read of
// each batch, for as long as the reads come back full and each consumer
// applies each batch whole; the rest (the log's last, short batch, and a
// consumer that left) is left to each consumer's own steps.
func (m *Manager) replayShared(ctx context.Context, cs []*consumer, report func(int)) error {
	pool := m.store.Pool()
	var pos eventstore.Position
	for i, c := range cs {
		p, err := readCheckpoint(ctx, pool, c.checkpoint)
		if err != nil {
			return err
		}
		c.pos, c.known = p, true
		if i > 0 && p != pos {
			return nil // not at one place: each reads its own way
		}
		pos = p
	}
	limit := m.cfg.rebuildBatch
	type read struct {
		recs []eventstore.Record
		err  error
	}
	readAfter := func(after eventstore.Position) <-chan read {
		ch := make(chan read, 1)
		go func() {
			recs, err := eventstore.ReadAllTx(ctx, pool, after, limit)
			ch <- read{recs, err}
		}()
		return ch
	}
	next := readAfter(pos)
	defer func() {
		if next != nil {
			<-next // the read ahead ends before the pool may close
		}
	}()
	active := cs
	for len(active) > 0 {
		rd := <-next
		next = nil
		if rd.err != nil {
			return fmt.Errorf("read batch: %w", rd.err)
		}
		if len(rd.recs) < limit {
			return nil
		}
		last := rd.recs[len(rd.recs)-1].Position()
		next = readAfter(last)
		kept := active[:0]
		for _, c := range active {
			if c.pos != pos {
				continue
			}
			out, err := c.write(ctx, rd.recs, last)
			if err != nil {
				c.forget()
				return err
			}
			if len(out.applied) > 0 && c.cfg.afterCommit != nil {
				c.cfg.afterCommit(c.checkpoint, out.applied)
			}
			if out.processed == len(rd.recs) && out.pending == nil {
				kept = append(kept, c)
			}
		}
		active = kept
		report(len(rd.recs))
		pos = last
	}
	return nil
}

// finishRebuild brings r's shadow tables to the end of the log, builds
// their deferred indexes and swaps them in.
func (m *Manager) finishRebuild(ctx context.Context, r *rebuildRun, report func(int)) error {
	name, p, c, shadow := r.p.Name(), r.p, r.c, r.shadow
	pool := m.store.Pool()
	if err := m.runToEnd(ctx, c, report); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	if err := ensureCheckpoint(ctx, pool, name); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	if ddl := deferredIndexes(p, shadow); ddl != "" {
		// The tables are full now: one sort per index instead of an
		// index update per row during the replay. The swap's catch-up
		// then applies the last events with the indexes in place.
		if _, err := m.cfg.ddlPool(pool).Exec(ctx, ddl); err != nil {
			return fmt.Errorf("rebuild %s: create indexes: %w", name, err)
		}
	}
	retry := newBackoff(swapRetryMin, swapRetryMax)
	for attempt := 1; ; attempt++ {
		n, err := m.swap(ctx, p, shadow)
		if err == nil {
			report(n)
			break
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("rebuild %s: %w", name, ctx.Err())
		case errors.Is(err, errSwapCatchUp):
			// Let the consumer's own path (which parks what must be
			// parked) catch up, then try again.
			c.forget()
			if err := m.runToEnd(ctx, c, report); err != nil {
				return fmt.Errorf("rebuild %s: %w", name, err)
			}
			continue
		case isLockTimeout(err):
			if attempt&(attempt-1) == 0 { // 1, 2, 4, 8, ...: visible, not noisy
				m.cfg.logger.Info("rebuild swap is waiting for readers of the live tables", "projection", name, "attempt", attempt)
			}
			if !wait(ctx, retry.next()) {
				return fmt.Errorf("rebuild %s: %w", name, ctx.Err())
			}
			continue
		}
		return fmt.Errorf("rebuild %s: swap: %w", name, err)
	}
	r.swapped = true
	return nil
}

// runToEnd steps c until nothing committed is left: batches in transactions
// of their own, as the live runner does. Events an open transaction holds
// back behind the horizon are waited for, so that a rebuild with no live
// consumer running still ends complete; a transaction that never ends stalls
// the progress until the operator interrupts. An event that fails as it would
// every time is retried with a backoff until it is parked, as in the live
// runner; any other failure ends the rebuild.
func (m *Manager) runToEnd(ctx context.Context, c *consumer, report func(int)) error {
	heldBack := newBackoff(time.Millisecond, maxHeldBackWait)
	failing := newBackoff(100*time.Millisecond, 10*time.Second)
	for {
		res, err := c.step(ctx)
		if err != nil {
			// An operator is watching: report, rather than retry blindly.
			return err
		}
		report(res.processed)
		if res.pending != nil {
			m.cfg.logger.Warn("rebuild: event failed; retrying before parking it", "projection", c.p.Name(), "err", res.pending)
			if !wait(ctx, failing.next()) {
				return ctx.Err()
			}
			continue
		}
		failing.reset()
		if !res.more {
			return nil
		}
		if res.processed > 0 {
			heldBack.reset()
			continue
		}
		if !wait(ctx, heldBack.next()) {
			return ctx.Err()
		}
	}
}

// isLockTimeout reports PostgreSQL's lock_not_available, which lock_timeout raises.
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// prepareShadow creates empty shadow tables and a shadow checkpoint at the
// start of the log, discarding what an interrupted rebuild left.
func (m *Manager) prepareShadow(ctx context.Context, p Projector, shadow TableNames) error {
	return pgx.BeginFunc(ctx, m.cfg.ddlPool(m.store.Pool()), func(tx pgx.Tx) error {
		for _, t := range p.Tables() {
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+shadow.Of(t)); err != nil {
				return fmt.Errorf("drop leftover shadow table %s: %w", t, err)
			}
		}
		if _, err := tx.Exec(ctx, p.Schema(shadow)); err != nil {
			return fmt.Errorf("create shadow tables: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1)
			ON CONFLICT (name) DO UPDATE SET transaction_id = '0', global_position = 0, events_applied = 0, updated_at = now()`,
			shadowName(p.Name()))
		if err != nil {
			return fmt.Errorf("reset shadow checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM projection_parked_events WHERE projection = $1`, shadowName(p.Name())); err != nil {
			return fmt.Errorf("drop leftover parked events: %w", err)
		}
		return nil
	})
}

// dropShadow removes a failed rebuild's leftovers; the next rebuild would too.
func (m *Manager) dropShadow(ctx context.Context, p Projector, shadow TableNames) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = pgx.BeginFunc(ctx, m.cfg.ddlPool(m.store.Pool()), func(tx pgx.Tx) error {
		for _, t := range p.Tables() {
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+shadow.Of(t)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM projection_parked_events WHERE projection = $1`, shadowName(p.Name())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, shadowName(p.Name()))
		return err
	})
}

// errSwapCatchUp reports that the swap's final catch-up could not apply an
// event: the swap is abandoned and the rebuild's consumer deals with it.
var errSwapCatchUp = errors.New("catch-up inside the swap failed")

// swap is one attempt to catch the shadow tables up and put them in place of
// the live ones in one transaction, returning how many events the catch-up
// applied. It pauses the live consumer (by holding its checkpoint row) only
// for its own short duration, applies what was appended since the rebuild's
// last batch before it touches a live table, and then waits for each live
// table's readers for at most swapTableLockTimeout, so that new readers
// queue behind it only that long; the caller retries a timed-out attempt.
func (m *Manager) swap(ctx context.Context, p Projector, shadow TableNames) (int, error) {
	name := p.Name()
	tx, err := m.cfg.ddlPool(m.store.Pool()).Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+swapRowLockTimeout+`'`); err != nil {
		return 0, err
	}
	// Every writer of the live checkpoint locks this row first: holding it
	// pauses the live consumer after its batch in flight, whose next batch
	// then finds the checkpoint moved and reads on from there.
	if _, err := lockCheckpoint(ctx, tx, name); err != nil {
		return 0, err
	}
	pos, err := lockCheckpoint(ctx, tx, shadowName(name))
	if err != nil {
		return 0, err
	}
	caughtUp := 0
	for {
		recs, err := eventstore.ReadAllTx(ctx, tx, pos, m.cfg.batchSize)
		if err != nil {
			return 0, err
		}
		if len(recs) == 0 {
			break
		}
		if err := safeApply(ctx, tx, p, shadow, recs); err != nil {
			if isTransient(ctx, tx, err) {
				return 0, err
			}
			return 0, fmt.Errorf("%w: %w", errSwapCatchUp, err)
		}
		pos = recs[len(recs)-1].Position()
		if err := saveCheckpoint(ctx, tx, shadowName(name), pos, len(recs)); err != nil {
			return 0, err
		}
		caughtUp += len(recs)
		if len(recs) < m.cfg.batchSize {
			break
		}
	}
	var liveSchema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&liveSchema); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+swapTableLockTimeout+`'`); err != nil {
		return 0, err
	}
	live := LiveTables(p)
	for _, t := range p.Tables() {
		// SET SCHEMA keeps the table's indexes, constraints and identity
		// sequences with it, under the names the live ones had.
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+live.Of(t)); err != nil {
			return 0, fmt.Errorf("drop live table %s: %w", t, err)
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+shadow.Of(t)+` SET SCHEMA `+pgx.Identifier{liveSchema}.Sanitize()); err != nil {
			return 0, fmt.Errorf("move shadow table %s into place: %w", t, err)
		}
	}
	tag, err := tx.Exec(ctx, `UPDATE projection_checkpoints AS live
		SET transaction_id = s.transaction_id, global_position = s.global_position, events_applied = s.events_applied,
		    schema_hash = $3, updated_at = now(), rebuilt_at = now()
		FROM projection_checkpoints AS s
		WHERE live.name = $1 AND s.name = $2`, name, shadowName(name), schemaHash(p))
	if err != nil {
		return 0, fmt.Errorf("move checkpoint: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return 0, fmt.Errorf("move checkpoint: %d rows", tag.RowsAffected())
	}
	// The new tables lack exactly the events the rebuild parked: those
	// become the live projection's parked events, replacing the old ones.
	if _, err := tx.Exec(ctx, `DELETE FROM projection_parked_events WHERE projection = $1`, name); err != nil {
		return 0, fmt.Errorf("drop parked events of the old tables: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE projection_parked_events SET projection = $1 WHERE projection = $2`, name, shadowName(name)); err != nil {
		return 0, fmt.Errorf("move parked events: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, shadowName(name)); err != nil {
		return 0, fmt.Errorf("drop shadow checkpoint: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return caughtUp, nil
}
