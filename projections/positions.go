package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// ErrPositionNotReached means a projection did not apply the event at the
// asked position within the wait: the read would not show the client's
// own write yet.
var ErrPositionNotReached = errors.New("projections: position not reached yet")

// DefaultPositionWait bounds how long a read waits for its projections to
// reach a position: long enough for a healthy projector (well under a
// second), short enough that a request never hangs.
const DefaultPositionWait = 2 * time.Second

// Poll bounds of a wait: the fallback when the projectors run in another
// process and no in-process signal wakes the waiter.
const (
	positionPollMin = 2 * time.Millisecond
	positionPollMax = 50 * time.Millisecond
)

// Positions answers whether projections have applied the event at a
// global position, and waits for it: the read side of "read your writes"
// (docs/data-api.md).
//
// A global position alone does not order events: positions are handed out
// at insert, so a transaction that inserted earlier may commit later, and
// a projection's checkpoint is a (transaction_id, global_position) pair in
// commit order. The rule is therefore: look the event up by its global
// position to learn its transaction id, and count the position reached
// once the projection's checkpoint is at or past that pair. A checkpoint
// only moves past events it applied (or parked), in commit order, so this
// is exact. An event not visible yet (its transaction has not committed,
// or no such position exists) is not reached.
type Positions struct {
	pool    *pgxpool.Pool
	applied *eventstore.Signal
	wait    time.Duration
}

// NewPositions returns a Positions over pool, woken early by applied (the
// Manager's Applied signal; nil to rely on polling alone), that waits at
// most wait (DefaultPositionWait when not positive).
func NewPositions(pool *pgxpool.Pool, applied *eventstore.Signal, wait time.Duration) (*Positions, error) {
	if pool == nil {
		return nil, errors.New("projections: nil pool")
	}
	if wait <= 0 {
		wait = DefaultPositionWait
	}
	return &Positions{pool: pool, applied: applied, wait: wait}, nil
}

// reachedSQL reports, for the event at global position $1, its transaction
// id and whether every named checkpoint is at or past it (false also when
// a checkpoint is missing); no row when the event is not visible.
const reachedSQL = `SELECT e.transaction_id,
	count(c.name) = cardinality($2::text[])
	AND coalesce(bool_and((c.transaction_id, c.global_position) >= (e.transaction_id, e.global_position)), false)
	FROM events e LEFT JOIN projection_checkpoints c ON c.name = ANY($2::text[])
	WHERE e.global_position = $1
	GROUP BY e.transaction_id`

// Reached reports whether every projection in names has applied the event
// at global position pos.
func (p *Positions) Reached(ctx context.Context, names []string, pos int64) (bool, error) {
	var (
		txid uint64
		ok   bool
	)
	err := p.pool.QueryRow(ctx, reachedSQL, pos, names).Scan(&txid, &ok)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return false, fmt.Errorf("check position %d of %v: %w", pos, names, err)
	}
	return ok, nil
}

// WaitApplied returns nil once every projection in names has applied the
// event at global position pos, and ErrPositionNotReached when that did
// not happen within the configured wait. It checks again whenever this
// process's projectors commit a batch, and polls with a short growing
// interval for projectors running elsewhere; it holds no transaction.
func (p *Positions) WaitApplied(ctx context.Context, names []string, pos int64) error {
	deadline := time.NewTimer(p.wait)
	defer deadline.Stop()
	poll := newBackoff(positionPollMin, positionPollMax)
	for {
		var woken <-chan struct{}
		if p.applied != nil {
			woken = p.applied.C() // taken before the check: a commit after it wakes us
		}
		ok, err := p.Reached(ctx, names, pos)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		t := time.NewTimer(poll.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", ErrPositionNotReached, ctx.Err())
		case <-deadline.C:
			t.Stop()
			return ErrPositionNotReached
		case <-woken:
		case <-t.C:
		}
		t.Stop()
	}
}
