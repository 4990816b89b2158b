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

// loaded is a user folded from their stream, starting from its snapshot
// when there is a usable one (snapshot.go).
type loaded struct {
	user    *user.User
	version int64
	// from is the snapshot the fold started from, nil when it replayed the
	// whole stream, and fromVersion its version (0 then).
	from        *user.Snapshot
	fromVersion int64
	// history are the events folded after from, kept so that a new
	// snapshot is folded afresh rather than taken of user, which steps are
	// free to fold into or not.
	history []user.Event
}

// fold folds the loaded state afresh, followed by more.
func (l loaded) fold(more ...user.Event) (*user.User, error) {
	u := &user.User{}
	if l.from != nil {
		var err error
		if u, err = user.FromSnapshot(*l.from); err != nil {
			return nil, err
		}
	}
	u.Apply(l.history...)
	u.Apply(more...)
	return u, nil
}

// userStream names the stream of user id.
func userStream(id uuid.UUID) eventstore.Stream {
	return eventstore.Stream{Type: eventstore.StreamUser, ID: id}
}

// load reads and folds the stream of user id: its newest usable snapshot,
// if any, and the events after it; without one, the whole stream.
func (h *Handler) load(ctx context.Context, id uuid.UUID) (loaded, error) {
	stream := userStream(id)
	var l loaded
	from, fromVersion, err := h.readSnapshot(ctx, id)
	if err != nil {
		return loaded{}, err
	}
	l.from, l.fromVersion, l.version = from, fromVersion, fromVersion
	// Events are never changed or removed, so the ones after the snapshot's
	// version are exactly what it lacks, however much was appended since
	// the snapshot was read.
	records, err := h.store.ReadStream(ctx, stream, fromVersion)
	if err != nil {
		return loaded{}, err
	}
	history := make([]user.Event, 0, len(records))
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
	l.history = history
	if l.user, err = l.fold(); err != nil {
		return loaded{}, fmt.Errorf("load %s: %w", stream, err)
	}
	return l, nil
}

// update is load → decide → write and append in one transaction, retried
// on a version conflict. eventstore.Update cannot serve here: it appends
// through the pool, and the security rows must commit with the events or
// not at all. The retry is immediate, without eventstore's backoff: a user
// stream is written by one person's requests, so conflicts are rare and
// short-lived, and a reload already costs a round trip. Every
// SnapshotInterval events, the transaction also stores a snapshot of the
// user as of the appended events, so that loads stay short.
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
			res, err := h.store.AppendTx(ctx, tx, userStream(userID), l.version, events...)
			if err != nil {
				return d, err
			}
			// In the append's transaction, so a snapshot commits with the
			// events it covers or not at all: none can claim a version whose
			// events did not commit, and no crash can fall between the two.
			return d, h.snapshotAfter(ctx, tx, userID, l, d.events, res.Version)
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
