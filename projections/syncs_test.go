package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// syncStore is a store that knows every connection event, syncs included.
func syncStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	reg := eventstore.NewRegistry()
	eventstore.Register[ticked](reg, 1)
	for _, e := range connection.AllEvents() {
		registerConnectionEvent(reg, e)
	}
	s, err := eventstore.New(mustPool(tb), reg)
	require.NoError(tb, err)
	return s
}

// registerConnectionEvent registers e's type at version 1.
func registerConnectionEvent(reg *eventstore.Registry, e connection.Event) {
	switch e.(type) {
	case connection.ProviderConnectionAttempted:
		eventstore.Register[connection.ProviderConnectionAttempted](reg, 1)
	case connection.ProviderConnectionSucceeded:
		eventstore.Register[connection.ProviderConnectionSucceeded](reg, 1)
	case connection.ProviderConnectionFailed:
		eventstore.Register[connection.ProviderConnectionFailed](reg, 1)
	case connection.ProviderTokenRefreshAttempted:
		eventstore.Register[connection.ProviderTokenRefreshAttempted](reg, 1)
	case connection.ProviderTokenRefreshSucceeded:
		eventstore.Register[connection.ProviderTokenRefreshSucceeded](reg, 1)
	case connection.ProviderTokenRefreshFailed:
		eventstore.Register[connection.ProviderTokenRefreshFailed](reg, 1)
	case connection.ProviderReauthenticationRequired:
		eventstore.Register[connection.ProviderReauthenticationRequired](reg, 1)
	case connection.ProviderConnectionRenamed:
		eventstore.Register[connection.ProviderConnectionRenamed](reg, 1)
	case connection.ProviderDisconnectionAttempted:
		eventstore.Register[connection.ProviderDisconnectionAttempted](reg, 1)
	case connection.ProviderDisconnectionSucceeded:
		eventstore.Register[connection.ProviderDisconnectionSucceeded](reg, 1)
	case connection.ProviderDisconnectionFailed:
		eventstore.Register[connection.ProviderDisconnectionFailed](reg, 1)
	case connection.SyncStarted:
		eventstore.Register[connection.SyncStarted](reg, 1)
	case connection.SyncPickedUp:
		eventstore.Register[connection.SyncPickedUp](reg, 1)
	case connection.SyncCompleted:
		eventstore.Register[connection.SyncCompleted](reg, 1)
	case connection.SyncFailed:
		eventstore.Register[connection.SyncFailed](reg, 1)
	}
}

// TestSyncsProjection follows two connections through their syncs: each
// sync's status, counts and errors, newest first in pages, scoped to the
// owner; the scheduler's due list; and a rebuild that finds the same rows.
func TestSyncsProjection(t *testing.T) {
	ctx := context.Background()
	store := syncStore(t)
	pool := store.Pool()
	m, err := projections.NewManager(store, projections.All(), ownerOf(t, store), projections.WithBatchSize(3))
	require.NoError(t, err)
	require.NoError(t, m.Ensure(ctx))
	stop := running(t, m.Start)
	defer stop()

	t0 := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	ann, bob := uuid.New(), uuid.New()
	c1, c2 := uuid.New(), uuid.New()
	s1, s2, s3 := uuid.New(), uuid.New(), uuid.New()
	versions := map[uuid.UUID]int64{}
	emit := func(conn uuid.UUID, owner uuid.UUID, events ...eventstore.Event) {
		t.Helper()
		ctx := eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "system", Command: "sync"})
		res, err := store.Append(ctx, eventstore.Stream{Type: eventstore.StreamConnection, ID: conn}, versions[conn], events...)
		require.NoError(t, err)
		versions[conn] = res.Version
	}
	creds := connection.Credentials{KeyID: "k", Fingerprint: "f", AccessExpiresAt: t0.Add(time.Hour)}
	emit(c1, ann,
		connection.ProviderConnectionAttempted{ConnectionID: c1, UserID: ann, ProviderSlug: "sandbox", Alias: "A", ExpiresAt: t0.Add(time.Minute), At: t0},
		connection.ProviderConnectionSucceeded{ConnectionID: c1, Credentials: creds, At: t0},
		connection.SyncStarted{ConnectionID: c1, SyncID: s1, Trigger: connection.SyncFirst, From: "2025-03-10", To: "2026-03-10", At: t0},
		connection.SyncPickedUp{ConnectionID: c1, SyncID: s1, At: t0.Add(time.Second)},
		connection.ProviderTokenRefreshAttempted{ConnectionID: c1, Trigger: connection.RefreshOnUnauthorized, At: t0},
		connection.SyncCompleted{ConnectionID: c1, SyncID: s1, Accounts: 3, Counts: connection.SyncCounts{Created: 40, Unchanged: 2},
			AccountErrors: []connection.AccountError{{AccountID: s3, Reason: connection.FailedProviderUnavailable}}, At: t0.Add(time.Minute)})
	emit(c2, bob,
		connection.ProviderConnectionAttempted{ConnectionID: c2, UserID: bob, ProviderSlug: "schwab", Alias: "B", ExpiresAt: t0.Add(time.Minute), At: t0},
		connection.ProviderConnectionSucceeded{ConnectionID: c2, Credentials: creds, At: t0})
	emit(c1, ann,
		connection.SyncStarted{ConnectionID: c1, SyncID: s2, Trigger: connection.SyncManual, Force: true, From: "2026-02-20", To: "2026-03-11", At: t0.Add(time.Hour)})
	eventually(t, "the projectors", caughtUp(t, m))

	got, err := projections.GetSync(ctx, pool, ann, c1, s1)
	require.NoError(t, err)
	finished := t0.Add(time.Minute)
	picked := t0.Add(time.Second)
	assert.Equal(t, projections.SyncView{ID: s1, ConnectionID: c1, UserID: ann, Status: "completed", Trigger: "first",
		From: "2025-03-10", To: "2026-03-10", StartedAt: t0, PickedUpAt: &picked, FinishedAt: &finished, Accounts: 3,
		Counts:        connection.SyncCounts{Created: 40, Unchanged: 2},
		AccountErrors: []connection.AccountError{{AccountID: s3, Reason: connection.FailedProviderUnavailable}}}, normal(got))
	queued, err := projections.GetSync(ctx, pool, ann, c1, s2)
	require.NoError(t, err)
	assert.Equal(t, "queued", queued.Status)
	assert.True(t, queued.Force)
	assert.Empty(t, queued.AccountErrors)
	_, err = projections.GetSync(ctx, pool, bob, c1, s1)
	assert.ErrorIs(t, err, projections.ErrSyncNotFound, "another user's sync")

	// c1 is syncing, c2 never synced: only c2 is due, and c1 once its
	// sync is stale.
	due, err := projections.DueConnections(ctx, pool, t0.Add(2*time.Hour), t0.Add(-time.Minute), 10)
	require.NoError(t, err)
	assert.Equal(t, []uuid.UUID{c2}, due)
	due, err = projections.DueConnections(ctx, pool, t0.Add(2*time.Hour), t0.Add(2*time.Hour), 10)
	require.NoError(t, err)
	assert.Equal(t, []uuid.UUID{c2, c1}, due)

	// The stale sync is abandoned by the next; the first page holds the newest.
	emit(c1, ann,
		connection.SyncFailed{ConnectionID: c1, SyncID: s2, Reason: connection.FailedSyncAbandoned, At: t0.Add(2 * time.Hour)},
		connection.SyncStarted{ConnectionID: c1, SyncID: s3, Trigger: connection.SyncScheduled, From: "2026-02-20", To: "2026-03-11", At: t0.Add(2 * time.Hour)},
		connection.SyncFailed{ConnectionID: c1, SyncID: s3, Reason: connection.FailedAuthentication, At: t0.Add(2 * time.Hour)},
		connection.ProviderReauthenticationRequired{ConnectionID: c1, Reason: connection.FailedAuthentication, At: t0.Add(2 * time.Hour)})
	eventually(t, "the projectors", caughtUp(t, m))
	page, err := projections.ListSyncs(ctx, pool, ann, c1, nil, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, []uuid.UUID{s3, s2}, []uuid.UUID{page[0].ID, page[1].ID})
	assert.Equal(t, "failed", page[0].Status)
	assert.Equal(t, "authentication", page[0].FailureReason)
	assert.Equal(t, "abandoned", page[1].FailureReason)
	key := page[1].Key()
	rest, err := projections.ListSyncs(ctx, pool, ann, c1, &key, 2)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	assert.Equal(t, s1, rest[0].ID)
	none, err := projections.ListSyncs(ctx, pool, bob, c1, nil, 10)
	require.NoError(t, err)
	assert.Empty(t, none)
	due, err = projections.DueConnections(ctx, pool, t0.Add(3*time.Hour), t0.Add(3*time.Hour), 10)
	require.NoError(t, err)
	assert.Equal(t, []uuid.UUID{c2}, due, "a connection needing re-authorisation is not due")

	// A rebuild replays the log in order into the same rows.
	model := `SELECT id, connection_id, user_id, status, trigger, force, window_from, window_to, started_at, picked_up_at,
		finished_at, accounts, created, updated, unchanged, removed, account_errors::text, failure_reason, latest_posted FROM syncs`
	var before [][]any
	rows, err := testdb.Owner(t, pool).Query(ctx, model+` ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(t, err)
		before = append(before, v)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, m.Rebuild(ctx, "syncs", nil))
	rows, err = pool.Query(ctx, model+` ORDER BY id`)
	require.NoError(t, err)
	var after [][]any
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(t, err)
		after = append(after, v)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, before, after)
}

// normal puts a view's times in UTC, as written.
func normal(v projections.SyncView) projections.SyncView {
	v.StartedAt = v.StartedAt.UTC()
	for _, p := range []**time.Time{&v.PickedUpAt, &v.FinishedAt} {
		if *p != nil {
			t := (*p).UTC()
			*p = &t
		}
	}
	return v
}
