package connections

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Live lists the user's connections that still hold their alias (pending,
// active, needs_reauth): what an erasure disconnects.
func (h *Handler) Live(ctx context.Context, userID uuid.UUID) ([]uuid.UUID, error) {
	rows, err := h.pool.Query(ctx, `SELECT connection_id FROM connection_aliases WHERE user_id = $1 AND live ORDER BY connection_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list live connections: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("list live connections: %w", err)
	}
	return ids, nil
}

// ForgetAliases replaces the aliases the user typed, in every row of
// theirs, by the connection's own id (unique, as live aliases must be), in
// the erasure's transaction: an alias is personal data. The events keep
// theirs sealed under the user's key, which the erasure destroys.
func (h *Handler) ForgetAliases(ctx context.Context, tx pgx.Tx, userID uuid.UUID) error {
	if _, err := tx.Exec(ctx, `UPDATE connection_aliases SET alias_key = connection_id::text WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("forget aliases: %w", err)
	}
	return nil
}
