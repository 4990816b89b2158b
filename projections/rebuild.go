package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrRebuildRunning reports a rebuild of the same projector already running
// somewhere.
var ErrRebuildRunning = errors.New("projections: rebuild already running")

// swapLockTimeout bounds how long the swap waits for readers of the live
// tables: while DROP TABLE waits, every new reader queues behind it, so a
// long wait would be an outage; the swap gives up and tries again instead.
const swapLockTimeout = "5s"

// swapAttempts is how often a swap that timed out waiting for locks is retried.
const swapAttempts = 5

// Rebuild replays the whole log into fresh shadow tables of the projector
// called name while the live tables keep serving and the live consumer keeps
// running, then swaps them in: in one transaction that holds the live
// checkpoint's row lock (pausing the live consumer) it applies the last
// events, replaces the live tables and moves the live checkpoint. progress,
// if not nil, is called with events applied so far and the log's size.
// Memory stays bounded by one batch.
func (m *Manager) Rebuild(ctx context.Context, name string, progress func(done, total int64)) error {
	p, err := m.Projector(name)
	if err != nil {
		return err
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	pool := m.store.Pool()
	lockConn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	defer lockConn.Release()
	var ok bool
	if err := lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockRebuild, nameKey(name)).Scan(&ok); err != nil {
		return fmt.Errorf("rebuild %s: take rebuild lock: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("rebuild %s: %w", name, ErrRebuildRunning)
	}
	defer func() {
		// The connection goes back to the pool: the session lock must not go with it.
		if _, err := lockConn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, lockRebuild, nameKey(name)); err != nil {
			lockConn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	shadow := shadowTables(p)
	if err := m.prepareShadow(ctx, p, shadow); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	swapped := false
	defer func() {
		if !swapped {
			m.dropShadow(context.WithoutCancel(ctx), p, shadow)
		}
	}()

	var total int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
		return fmt.Errorf("rebuild %s: count events: %w", name, err)
	}
	var done int64
	report := func(n int) {
		done += int64(n)
		total = max(total, done)
		progress(done, total)
	}
	progress(0, total)
	// Run to end: batches in transactions of their own, as the live runner
	// does, until nothing committed is left. Events an open transaction
	// holds back behind the horizon are waited for, so that a rebuild with no
	// live consumer running still ends complete; a transaction that never
	// ends stalls the progress until the operator interrupts.
	heldBack := newBackoff(time.Millisecond, maxHeldBackWait)
	for {
		res, err := runStep(ctx, pool, p, shadowName(name), shadow, m.cfg, nil)
		if err != nil {
			return fmt.Errorf("rebuild %s: %w", name, err)
		}
		report(len(res.records))
		if !res.more {
			break
		}
		if len(res.records) > 0 {
			heldBack.reset()
			continue
		}
		if !wait(ctx, heldBack.next()) {
			return fmt.Errorf("rebuild %s: %w", name, ctx.Err())
		}
	}
	if err := ensureCheckpoint(ctx, pool, name); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	for attempt := 1; ; attempt++ {
		n, err := m.swap(ctx, p, shadow)
		if err == nil {
			report(n)
			break
		}
		var pgErr *pgconn.PgError
		if attempt < swapAttempts && errors.As(err, &pgErr) && pgErr.Code == "55P03" && ctx.Err() == nil {
			m.cfg.logger.Warn("rebuild swap waited too long for readers; retrying", "projection", name, "attempt", attempt)
			if !wait(ctx, time.Duration(attempt)*time.Second) {
				return ctx.Err()
			}
			continue
		}
		return fmt.Errorf("rebuild %s: swap: %w", name, err)
	}
	swapped = true
	progress(done, done)
	return nil
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
		_, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, shadowName(p.Name()))
		return err
	})
}

// swap catches the shadow tables up and puts them in place of the live ones
// in one transaction, returning how many events the catch-up applied.
func (m *Manager) swap(ctx context.Context, p Projector, shadow TableNames) (int, error) {
	name := p.Name()
	tx, err := m.cfg.ddlPool(m.store.Pool()).Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+swapLockTimeout+`'`); err != nil {
		return 0, err
	}
	// The live consumer locks this row first in every batch: holding it
	// pauses the consumer after its batch in flight, and its next batch
	// starts from the checkpoint this transaction leaves.
	if _, err := lockCheckpoint(ctx, tx, name); err != nil {
		return 0, err
	}
	caughtUp := 0
	for {
		res, err := applyBatch(ctx, tx, p, shadowName(name), shadow, m.cfg.batchSize)
		if err != nil {
			return 0, err
		}
		caughtUp += len(res.records)
		if len(res.records) < m.cfg.batchSize {
			break
		}
	}
	var liveSchema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&liveSchema); err != nil {
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
	if _, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, shadowName(name)); err != nil {
		return 0, fmt.Errorf("drop shadow checkpoint: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return caughtUp, nil
}
