package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
)

// decision is what a step decided: events to append, and the refusal to
// report once they are committed. A refused login or a reused refresh token
// comes back as both (see aggregates/user's package comment), which is why
// the refusal travels beside the events instead of aborting the step.
type decision struct {
	events  []user.Event
	refusal error
}

// step decides on the user's current state inside tx and writes the
// security rows that must change with the events. An error aborts: the
// transaction is rolled back, nothing is appended, and the error is returned
// (an error matching eventstore.ErrConflict makes update load and try again).
// A step may run more than once, so it must not have effects outside tx.
type step func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error)

// loaded is a user folded from their stream.
type loaded struct {
	user    *user.User
	version int64
}

// userStream names the stream of user id.
func userStream(id uuid.UUID) eventstore.Stream {
	return eventstore.Stream{Type: eventstore.StreamUser, ID: id}
}

// load reads and folds the stream of user id.
func (h *Handler) load(ctx context.Context, id uuid.UUID) (loaded, error) {
	stream := userStream(id)
	records, err := h.store.ReadStream(ctx, stream, 0)
	if err != nil {
		return loaded{}, err
	}
	history := make([]user.Event, 0, len(records))
	var l loaded
	for _, r := range records {
		e, err := h.store.Decode(r)
		if err != nil {
			return loaded{}, err
		}
		ue, ok := e.(user.Event)
		if !ok {
			return loaded{}, fmt.Errorf("load %s: event %s (%T) is not a user event", stream, r.EventType, e)
		}
		history = append(history, ue)
		l.version = r.Version
	}
	l.user = user.FromHistory(history)
	return l, nil
}

// update is load → decide → write and append in one transaction, retried
// on a version conflict. eventstore.Update cannot serve here: it appends
// through the pool, and the security rows must commit with the events or
// not at all. The retry is immediate, without eventstore's backoff: a user
// stream is written by one person's requests, so conflicts are rare and
// short-lived, and a reload already costs a round trip.
func (h *Handler) update(ctx context.Context, userID uuid.UUID, s step) error {
	var lastErr error
	for range eventstore.MaxUpdateAttempts {
		l, err := h.load(ctx, userID)
		if err != nil {
			return err
		}
		d, err := h.inTx(ctx, func(tx pgx.Tx) (decision, error) {
			d, err := s(ctx, tx, l.user)
			if err != nil || len(d.events) == 0 {
				return d, err
			}
			events := make([]eventstore.Event, len(d.events))
			for i, e := range d.events {
				events[i] = e
			}
			_, err = h.store.AppendTx(ctx, tx, userStream(userID), l.version, events...)
			return d, err
		})
		// This server's cached session checks of the user go before the
		// request is answered, whatever became of the transaction (a failed
		// commit may still have committed); other servers hear migration
		// 00006's NOTIFY.
		h.cache.invalidate(userID)
		if errors.Is(err, eventstore.ErrConflict) {
			lastErr = err
			continue
		}
		if err != nil {
			return err
		}
		if len(d.events) > 0 {
			h.store.Committed() // wake projectors now that the events are visible
		}
		return d.refusal
	}
	return lastErr
}

// inTx runs fn in a transaction, committing only when it succeeds.
func (h *Handler) inTx(ctx context.Context, fn func(pgx.Tx) (decision, error)) (decision, error) {
	tx, err := h.pool.Begin(ctx)
	if err != nil {
		return decision{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // no-op after Commit
	d, err := fn(tx)
	if err != nil {
		return decision{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return decision{}, fmt.Errorf("commit: %w", err)
	}
	return d, nil
}

// errSpentConcurrently means a token row this step meant to spend was spent
// by a transaction that committed meanwhile; update then reloads, and the
// aggregate sees what the other request did.
var errSpentConcurrently = fmt.Errorf("token spent by a concurrent request: %w", eventstore.ErrConflict)

// spendToken marks the token with digest as used, failing with
// errSpentConcurrently when it already was.
func spendToken(ctx context.Context, tx pgx.Tx, digest []byte, at time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE secret_tokens SET used_at = $2 WHERE digest = $1 AND used_at IS NULL`, digest, at)
	if err != nil {
		return fmt.Errorf("spend token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errSpentConcurrently
	}
	return nil
}

// spendTokenAndKind spends the token with digest, as spendToken does, and
// then every other unspent token of kind of the user: completing one
// verification or reset link ends them all (the aggregate's rule), and the
// rows follow.
func spendTokenAndKind(ctx context.Context, tx pgx.Tx, digest []byte, userID uuid.UUID, kind string, at time.Time) error {
	if err := spendToken(ctx, tx, digest, at); err != nil {
		return err
	}
	return spendKind(ctx, tx, userID, kind, at)
}

// spendKind spends every unspent token of kind of the user.
func spendKind(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind string, at time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE secret_tokens SET used_at = $3 WHERE user_id = $1 AND kind = $2 AND used_at IS NULL`,
		userID, kind, at); err != nil {
		return fmt.Errorf("spend %s tokens: %w", kind, err)
	}
	return nil
}
