package identity

import (
	"context"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
)

// SetSnapshotInterval makes h take snapshots every n events (0: none, every
// load replays the whole stream) until restore is called; not while h is
// in use.
func (h *Handler) SetSnapshotInterval(n int64) (restore func()) {
	h.users.SetSnapshotEvery(n)
	return func() { h.users.SetSnapshotEvery(commands.UserSnapshotInterval) }
}

// LoadUser folds user id as every decision does: from its snapshot, when it
// has a usable one (snapshotVersion > 0), and the events after it.
func (h *Handler) LoadUser(ctx context.Context, id uuid.UUID) (u *user.User, version, snapshotVersion int64, err error) {
	l, err := h.users.Load(ctx, h.pool, id)
	return l.State, l.Version, l.SnapshotVersion, err
}
