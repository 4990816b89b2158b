package web_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/projections"
)

// fakeSyncs stands in for the sync use cases and their read model, so the
// web tests drive the routes' mapping without a database: connections
// belong to owners, one sync may be in progress, and the "read model" is
// the list of syncs the test put there.
type fakeSyncs struct {
	mu       sync.Mutex
	owners   map[uuid.UUID]uuid.UUID
	progress map[uuid.UUID]syncs.View
	read     []projections.SyncView
	// refuse, when set, is what the next Request answers.
	refuse error
	forced []bool
}

func newFakeSyncs() *fakeSyncs {
	return &fakeSyncs{owners: map[uuid.UUID]uuid.UUID{}, progress: map[uuid.UUID]syncs.View{}}
}

// own gives connection id to user.
func (f *fakeSyncs) own(user, id uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owners[id] = user
}

// project puts v in the read model.
func (f *fakeSyncs) project(v projections.SyncView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read = append(f.read, v)
}

func (f *fakeSyncs) Request(_ context.Context, p commands.Principal, id uuid.UUID, force bool, _ commands.RequestContext) (syncs.View, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owners[id] != p.UserID {
		return syncs.View{}, syncs.ErrNotFound
	}
	if err := f.refuse; err != nil {
		f.refuse = nil
		return syncs.View{}, err
	}
	f.forced = append(f.forced, force)
	v := syncs.View{ID: uuid.New(), ConnectionID: id, Status: syncs.StatusQueued, Trigger: connection.SyncManual, Force: force,
		From: "2025-03-10", To: "2026-03-10", StartedAt: testEpoch}
	f.progress[id] = v
	return v, nil
}

func (f *fakeSyncs) InProgress(_ context.Context, p commands.Principal, id uuid.UUID) (syncs.View, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owners[id] != p.UserID {
		return syncs.View{}, false, syncs.ErrNotFound
	}
	v, ok := f.progress[id]
	return v, ok, nil
}

func (f *fakeSyncs) GetSync(_ context.Context, user, conn, id uuid.UUID) (projections.SyncView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.read {
		if v.ID == id && v.ConnectionID == conn && v.UserID == user {
			return v, nil
		}
	}
	return projections.SyncView{}, projections.ErrSyncNotFound
}

func (f *fakeSyncs) ListSyncs(_ context.Context, user, conn uuid.UUID, after *projections.SyncKey, limit int) ([]projections.SyncView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []projections.SyncView
	for _, v := range f.read {
		if v.ConnectionID == conn && v.UserID == user {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b projections.SyncView) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return slices.Compare(b.ID[:], a.ID[:])
	})
	if after != nil {
		out = slices.DeleteFunc(out, func(v projections.SyncView) bool {
			return !(v.StartedAt.Before(after.StartedAt) || v.StartedAt.Equal(after.StartedAt) && slices.Compare(v.ID[:], after.ID[:]) < 0)
		})
	}
	return out[:min(limit, len(out))], nil
}

// syncAt is a completed sync of the read model, started at t.
func syncAt(user, conn uuid.UUID, t time.Time) projections.SyncView {
	finished := t.Add(time.Minute)
	return projections.SyncView{ID: uuid.New(), ConnectionID: conn, UserID: user, Status: projections.SyncCompleted,
		Trigger: string(connection.SyncScheduled), From: "2026-02-01", To: "2026-03-01", StartedAt: t, FinishedAt: &finished,
		Accounts: 2, Counts: connection.SyncCounts{Created: 3, Unchanged: 5}, LatestPosted: "2026-02-28",
		AccountErrors: []connection.AccountError{{AccountID: conn, Reason: connection.FailedProviderUnavailable}}}
}
