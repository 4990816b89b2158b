package identity

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
)

// decision is what a step decided: events to append, and the refusal to
// report once they are committed. A refused login or a reused refresh token
// comes back as both (see aggregates/user's package comment), which is why
// the refusal travels beside the events instead of aborting the step.
type decision = eventstore.Decision[user.Event]

// step decides on the user's current state inside the unit of work tx and
// writes the security rows that must change with the events. An error
// aborts: the transaction is rolled back, nothing is appended, and the
// error is returned (one matching eventstore.ErrConflict makes the
// generic path load and try again). A step may run more than once, so it
// must not have effects outside tx.
type step = eventstore.DecideFunc[*user.User, user.Event]

// update is the generic load → decide → append path for user userID
// (commands.UserAggregate: serialised per user, snapshotted), the security
// rows written by the step committing with the events or not at all.
func (h *Handler) update(ctx context.Context, userID uuid.UUID, s step) error {
	_, err := h.users.Update(ctx, userID, s)
	// This server's cached session checks of the user go before the
	// request is answered, whatever became of the transaction (a failed
	// commit may still have committed); other servers hear migration
	// 00006's NOTIFY.
	h.cache.invalidate(userID)
	return err
}

// errSpentConcurrently means a token row this step meant to spend was spent
// by a transaction that committed meanwhile; update then reloads, and the
// aggregate sees what the other request did.
var errSpentConcurrently = fmt.Errorf("token spent by a concurrent request: %w", eventstore.ErrConflict)
