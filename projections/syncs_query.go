package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/eventstore"
)

// SyncView is one sync as the API shows it.
type SyncView struct {
	ID           uuid.UUID
	ConnectionID uuid.UUID
	UserID       uuid.UUID
	// Status is SyncQueued, SyncRunning, SyncCompleted or SyncFailed.
	Status  string
	Trigger string
	Force   bool
	// From and To are the window of transaction dates (YYYY-MM-DD, inclusive).
	From, To      string
	StartedAt     time.Time
	PickedUpAt    *time.Time
	FinishedAt    *time.Time
	Accounts      int
	Counts        connection.SyncCounts
	AccountErrors []connection.AccountError
	// FailureReason says why a failed sync failed, empty otherwise.
	FailureReason string
	// LatestPosted is the latest posted transaction date the sync saw.
	LatestPosted string
}

// SyncKey is a sync's place in the list order (newest first: started_at
// descending, then id descending), after which the next page starts.
type SyncKey struct {
	StartedAt time.Time
	ID        uuid.UUID
}

// Key returns v's place in the list order.
func (v SyncView) Key() SyncKey { return SyncKey{StartedAt: v.StartedAt, ID: v.ID} }

// ErrSyncNotFound means the read model holds no such sync of the user's
// connection (yet: it trails the log by a moment).
var ErrSyncNotFound = errors.New("sync not found")

func (s syncRow) view() SyncView {
	v := SyncView{ID: s.id, ConnectionID: s.connectionID, UserID: s.userID, Status: s.status, Trigger: s.trigger,
		Force: s.force, From: s.from, To: s.to, StartedAt: s.startedAt, PickedUpAt: s.pickedUpAt, FinishedAt: s.finishedAt,
		Accounts: s.accounts, Counts: s.counts, AccountErrors: s.accountErrors}
	if s.failureReason != nil {
		v.FailureReason = *s.failureReason
	}
	if s.latestPosted != nil {
		v.LatestPosted = *s.latestPosted
	}
	return v
}

// GetSync returns sync syncID of userID's connection connectionID from
// the live read model, or ErrSyncNotFound (also for another user's).
func GetSync(ctx context.Context, q eventstore.Querier, userID, connectionID, syncID uuid.UUID) (SyncView, error) {
	table := LiveTables(Syncs{}).Of(syncsTable)
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE id = $1 AND connection_id = $2 AND user_id = $3`,
		syncColumns, table), syncID, connectionID, userID)
	if err != nil {
		return SyncView{}, fmt.Errorf("get sync: %w", err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, scanSyncRow)
	if errors.Is(err, pgx.ErrNoRows) {
		return SyncView{}, ErrSyncNotFound
	}
	if err != nil {
		return SyncView{}, fmt.Errorf("get sync: %w", err)
	}
	return s.view(), nil
}

// ListSyncs returns up to limit syncs of userID's connection connectionID
// after the key (nil: from the start), newest first.
func ListSyncs(ctx context.Context, q eventstore.Querier, userID, connectionID uuid.UUID, after *SyncKey, limit int) ([]SyncView, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list syncs: limit %d is below 1", limit)
	}
	args := []any{connectionID, userID, limit}
	where := "connection_id = $1 AND user_id = $2"
	if after != nil {
		where += " AND (started_at, id) < ($4, $5)"
		args = append(args, after.StartedAt, after.ID)
	}
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY started_at DESC, id DESC LIMIT $3`,
		syncColumns, LiveTables(Syncs{}).Of(syncsTable), where), args...)
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	got, err := pgx.CollectRows(rows, scanSyncRow)
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	out := make([]SyncView, len(got))
	for i, s := range got {
		out[i] = s.view()
	}
	return out, nil
}

// DueConnections returns up to limit active connections whose last sync
// started before before (or that never synced), longest waiting first:
// the scheduler's work list. A connection with a sync in progress is due
// only once that sync started before stale: its worker is gone, and the
// next sync abandons it.
func DueConnections(ctx context.Context, q eventstore.Querier, before, stale time.Time, limit int) ([]uuid.UUID, error) {
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT connection_id FROM %s
		WHERE status = 'active' AND (last_started_at IS NULL OR last_started_at < $1)
		  AND (syncing IS NULL OR last_started_at < $3)
		ORDER BY last_started_at NULLS FIRST LIMIT $2`, LiveTables(Syncs{}).Of(syncConnectionsTable)), before, limit, stale)
	if err != nil {
		return nil, fmt.Errorf("list connections due for a sync: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("list connections due for a sync: %w", err)
	}
	return ids, nil
}

// SyncReader serves the sync queries over a pool, for the web layer and
// the scheduler.
type SyncReader struct {
	// Pool is the application role's pool (a read needs no more).
	Pool eventstore.Querier
}

// GetSync is GetSync on r's pool.
func (r SyncReader) GetSync(ctx context.Context, userID, connectionID, syncID uuid.UUID) (SyncView, error) {
	return GetSync(ctx, r.Pool, userID, connectionID, syncID)
}

// ListSyncs is ListSyncs on r's pool.
func (r SyncReader) ListSyncs(ctx context.Context, userID, connectionID uuid.UUID, after *SyncKey, limit int) ([]SyncView, error) {
	return ListSyncs(ctx, r.Pool, userID, connectionID, after, limit)
}

// DueConnections is DueConnections on r's pool.
func (r SyncReader) DueConnections(ctx context.Context, before, stale time.Time, limit int) ([]uuid.UUID, error) {
	return DueConnections(ctx, r.Pool, before, stale, limit)
}
