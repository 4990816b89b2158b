package identity

import (
	"context"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
)

// SetSnapshotInterval makes h take snapshots every n events (0: none, every
// load replays the whole stream) until restore is called; not while h is
// in use.
func (h *Handler) SetSnapshotInterval(n int64) (restore func()) {
	old := h.snapshotEvery
	h.snapshotEvery = n
	return func() { h.snapshotEvery = old }
}

// LoadUser folds user id as every decision does: from its snapshot, when it
// has a usable one (snapshotVersion > 0), and the events after it.
func (h *Handler) LoadUser(ctx context.Context, id uuid.UUID) (u *user.User, version, snapshotVersion int64, err error) {
	l, err := h.load(ctx, id)
	return l.user, l.version, l.fromVersion, err
}
