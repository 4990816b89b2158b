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

// readCheckpoint reads the checkpoint without locking it: a plain read takes
// no transaction id, so an idle consumer that polls with it costs the cluster
// nothing.
func readCheckpoint(ctx context.Context, q eventstore.Querier, name string) (eventstore.Position, error) {
	rows, err := q.Query(ctx, `SELECT transaction_id, global_position FROM projection_checkpoints WHERE name = $1`, name)
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	pos, err := pgx.CollectExactlyOneRow(rows, scanPosition)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Position{}, fmt.Errorf("read checkpoint %s: no checkpoint row", name)
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	return pos, nil
}

func scanPosition(row pgx.CollectableRow) (eventstore.Position, error) {
	var p eventstore.Position
	err := row.Scan(&p.TransactionID, &p.GlobalPosition)
	return p, err
}

// lockCheckpoint reads the checkpoint and holds its row lock until tx ends:
// a second consumer that slipped past the advisory lock (its lock connection
// died while this batch ran) waits here and then sees the moved checkpoint,
// so no batch is ever applied twice. Every writer of a checkpoint takes this
// lock first: batches, parking, retries and a rebuild's swap.
func lockCheckpoint(ctx context.Context, tx pgx.Tx, name string) (eventstore.Position, error) {
	var pos eventstore.Position
	err := tx.QueryRow(ctx, `SELECT transaction_id, global_position FROM projection_checkpoints
		WHERE name = $1 FOR UPDATE`, name).Scan(&pos.TransactionID, &pos.GlobalPosition)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Position{}, fmt.Errorf("lock checkpoint %s: no checkpoint row", name)
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("lock checkpoint %s: %w", name, err)
	}
	return pos, nil
}

// saveCheckpoint moves the checkpoint to pos after n more applied events.
func saveCheckpoint(ctx context.Context, tx pgx.Tx, name string, pos eventstore.Position, n int) error {
	_, err := tx.Exec(ctx, `UPDATE projection_checkpoints
		SET transaction_id = $2::xid8, global_position = $3, events_applied = events_applied + $4, updated_at = now()
		WHERE name = $1`, name, pos.TransactionID, pos.GlobalPosition, n)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}
