package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/eventstore"
)

// ConnectionView is one connection as GET /api/v1/connections lists it.
// Like the aggregate's view, the credentials' expiries show only while
// the connection is active.
type ConnectionView struct {
	ID              uuid.UUID
	UserID          uuid.UUID
	ProviderSlug    string
	Alias           string
	Status          connection.Status
	CreatedAt       time.Time
	ConnectedAt     *time.Time
	LastSyncAt      *time.Time
	ReauthorizeBy   *time.Time
	AccessExpiresAt *time.Time
	DisconnectedAt  *time.Time
}

// ConnectionKey is a connection's place in the list order (created_at,
// then id), after which the next page starts.
type ConnectionKey struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Key returns v's place in the list order.
func (v ConnectionView) Key() ConnectionKey { return ConnectionKey{CreatedAt: v.CreatedAt, ID: v.ID} }

// ListConnections returns up to limit of userID's connections after the
// key (nil: from the start), oldest first, from the live read model. It
// trails the log by as long as the projector takes to apply what was
// appended (normally well under a second); the aggregate is the current
// truth for one connection.
func ListConnections(ctx context.Context, q eventstore.Querier, userID uuid.UUID, after *ConnectionKey, limit int) ([]ConnectionView, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list connections: limit %d is below 1", limit)
	}
	table := LiveTables(Connections{}).Of(connectionsTable)
	args := []any{userID, limit}
	where := "user_id = $1"
	if after != nil {
		where += " AND (created_at, id) > ($3, $4)"
		args = append(args, after.CreatedAt, after.ID)
	}
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT id, user_id, provider_slug, alias, status, created_at, connected_at, last_sync_at,
		CASE WHEN status = 'active' THEN refresh_expires_at END,
		CASE WHEN status = 'active' THEN access_expires_at END,
		disconnected_at
		FROM %s WHERE %s ORDER BY created_at, id LIMIT $2`, table, where), args...)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ConnectionView, error) {
		var v ConnectionView
		var status string
		err := r.Scan(&v.ID, &v.UserID, &v.ProviderSlug, &v.Alias, &status, &v.CreatedAt, &v.ConnectedAt, &v.LastSyncAt,
			&v.ReauthorizeBy, &v.AccessExpiresAt, &v.DisconnectedAt)
		v.Status = connection.Status(status)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return out, nil
}

// ConnectionReader serves ListConnections over a pool, for the web layer.
type ConnectionReader struct {
	// Pool is the application role's pool (a read needs no more).
	Pool eventstore.Querier
}

// ListConnections is ListConnections on r's pool.
func (r ConnectionReader) ListConnections(ctx context.Context, userID uuid.UUID, after *ConnectionKey, limit int) ([]ConnectionView, error) {
	return ListConnections(ctx, r.Pool, userID, after, limit)
}
