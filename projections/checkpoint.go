package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dashtam/dashtam/eventstore"
)

// execer is what checkpoint writes need: a pool, a connection or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// shadowName is the checkpoint a rebuild of name advances; validate forbids
// "__" in projector names, so it cannot collide with a projector's own.
func shadowName(name string) string { return name + "__rebuild" }

// ensureCheckpoint creates the checkpoint row at the start of the log if it
// is missing, so that every batch can lock an existing row.
func ensureCheckpoint(ctx context.Context, q execer, name string) error {
	if _, err := q.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return fmt.Errorf("create checkpoint %s: %w", name, err)
	}
	return nil
}

// lockCheckpoint reads the checkpoint and holds its row lock until tx ends:
// a second consumer that slipped past the advisory lock (its lock connection
// died while this batch ran) waits here and then sees the moved checkpoint,
// so no batch is ever applied twice.
func lockCheckpoint(ctx context.Context, tx pgx.Tx, name string) (eventstore.Position, error) {
	var (
		txid uint64
		pos  int64
	)
	err := tx.QueryRow(ctx, `SELECT transaction_id, global_position FROM projection_checkpoints
		WHERE name = $1 FOR UPDATE`, name).Scan(&txid, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Position{}, fmt.Errorf("lock checkpoint %s: no checkpoint row", name)
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("lock checkpoint %s: %w", name, err)
	}
	return eventstore.Position{TransactionID: txid, GlobalPosition: pos}, nil
}

// saveCheckpoint moves the checkpoint to pos after n more events.
func saveCheckpoint(ctx context.Context, tx pgx.Tx, name string, pos eventstore.Position, n int) error {
	_, err := tx.Exec(ctx, `UPDATE projection_checkpoints
		SET transaction_id = $2::xid8, global_position = $3, events_applied = events_applied + $4, updated_at = now()
		WHERE name = $1`, name, pos.TransactionID, pos.GlobalPosition, n)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}

// batchResult says what one batch did and whether more is known to be waiting.
type batchResult struct {
	records []eventstore.Record
	// more is true when the batch was full or committed events exist after
	// it that the xid horizon still holds back.
	more bool
}

// existsAfterSQL asks whether any committed event follows pos, horizon or not:
// after a short read, a yes means events are held back by a transaction still
// open (or committed while the batch ran) and worth polling for.
const existsAfterSQL = `SELECT EXISTS (SELECT 1 FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2))`

// applyBatch is the one path from the log to a read model, shared by live
// consumers, rebuilds and the final catch-up of a rebuild: lock the
// checkpoint, read the next events behind the xid horizon, apply them and move
// the checkpoint, all in tx.
func applyBatch(ctx context.Context, tx pgx.Tx, p Projector, checkpoint string, t TableNames, limit int) (batchResult, error) {
	pos, err := lockCheckpoint(ctx, tx, checkpoint)
	if err != nil {
		return batchResult{}, err
	}
	recs, err := eventstore.ReadAllTx(ctx, tx, pos, limit)
	if err != nil {
		return batchResult{}, err
	}
	res := batchResult{records: recs, more: len(recs) == limit}
	last := pos
	if len(recs) > 0 {
		last = recs[len(recs)-1].Position()
	}
	if !res.more {
		if err := tx.QueryRow(ctx, existsAfterSQL, last.TransactionID, last.GlobalPosition).Scan(&res.more); err != nil {
			return batchResult{}, fmt.Errorf("look past the horizon for %s: %w", checkpoint, err)
		}
	}
	if len(recs) == 0 {
		return res, nil
	}
	if err := p.Apply(ctx, tx, t, recs); err != nil {
		return batchResult{}, fmt.Errorf("apply %d events to %s at %v: %w", len(recs), p.Name(), recs[0].Position(), err)
	}
	if err := saveCheckpoint(ctx, tx, checkpoint, last, len(recs)); err != nil {
		return batchResult{}, err
	}
	return res, nil
}
