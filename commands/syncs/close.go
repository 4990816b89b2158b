package syncs

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// closeWait is how long the closing of a disconnected connection's
// accounts waits for its sync in progress to end before looking again.
const closeWait = 10 * time.Second

// CloseAccounts is the CloseAccountsJob's work: every open
// account of a disconnected connection is closed (AccountClosed), in one
// unit of work with the index. While a sync of the connection is still in
// progress (it ends at its next unit of work, which finds the connection
// disconnected) the job waits, so that no sync reopens an account after it.
func (h *Handler) CloseAccounts(ctx context.Context, job CloseAccountsJob) error {
	l, err := h.connections.Load(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	c := l.State
	if c.Status() != connection.StatusDisconnected {
		return nil
	}
	if id, started := c.Syncing(); id != uuid.Nil && h.clock.Now().Before(started.Add(connection.SyncStale)) {
		return &commands.JobSnoozeError{Delay: closeWait}
	}
	known, err := readAccounts(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	var open []uuid.UUID
	for _, k := range known {
		if k.active {
			open = append(open, k.id)
		}
	}
	if len(open) == 0 {
		return nil
	}
	ctx = commands.WithMetadata(ctx, c.UserID(), commands.ActorSystem, "disconnect", commands.RequestContext{})
	return h.store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		now := h.clock.Now()
		if _, err := h.accounts.UpdateMany(ctx, tx, open, func(_ uuid.UUID, a *account.Account) ([]account.Event, error) {
			return a.Close(account.ClosedDisconnected, now)
		}); err != nil {
			return err
		}
		return closeAccounts(ctx, tx, job.ConnectionID, open)
	})
}
