package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MaxAttempts bounds how often Transact runs a unit of work again after a
// conflict before giving up with the conflict error. With decisions that
// serialise on their stream (Aggregate.Serialize) a conflict needs a writer
// that bypasses the lock, so the bound is reached only under a real fault.
const MaxAttempts = 8

// Tx is one unit of work: a database transaction in which aggregates are
// loaded, decide and append, and the hooks to run once it has committed.
// It embeds the pgx.Tx so that a use case writes its own rows (tables that
// must change with the events) in the same transaction.
type Tx struct {
	pgx.Tx
	store       *Store
	afterCommit []func()
	appended    bool
	// last is the highest global position appended, reported to the
	// context's Reached once the unit of work commits.
	last int64
}

// Append appends events to stream at expectedVersion within the unit of
// work; see Store.Append for the rules and errors. A stream may be appended
// to any number of times, and any number of streams may be appended to, in
// one unit of work.
func (t *Tx) Append(ctx context.Context, stream Stream, expectedVersion int64, events ...Event) (AppendResult, error) {
	res, err := t.store.append(ctx, t.Tx, stream, expectedVersion, events)
	if err == nil {
		t.appended = true
		t.last = max(t.last, res.LastPosition)
	}
	return res, err
}

// AfterCommit registers fn to run once the unit of work has committed, in
// registration order; it does not run when the unit of work fails or is
// attempted again, so effects outside the database (a cache refresh, waking
// a worker) happen once and only for what was stored.
func (t *Tx) AfterCommit(fn func()) { t.afterCommit = append(t.afterCommit, fn) }

// Store returns the store the unit of work appends to.
func (t *Tx) Store() *Store { return t.store }

// Transact runs fn in a new transaction and commits it. When fn or the
// commit fails with a conflict (errors.Is ErrConflict, or PostgreSQL's
// serialization failure or deadlock), it rolls back and runs fn again in a
// fresh transaction after a short jittered pause, at most MaxAttempts times,
// and then returns the conflict. fn must therefore keep its effects inside
// tx or register them with AfterCommit. Once committed, the store's
// projectors are woken if anything was appended and the AfterCommit hooks
// run. Any other error rolls everything back and is returned as is.
//
// fn must not call a provider, a mail server or anything else over the
// network: an open transaction holds back every projector of the cluster.
func (s *Store) Transact(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	var lastErr error
	for attempt := range MaxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return fmt.Errorf("after %d conflicts: %w (last: %w)", attempt, err, lastErr)
			}
		}
		t, err := s.attempt(ctx, fn)
		if err == nil {
			if t.appended {
				s.appended.Raise()
				noteReached(ctx, t.last)
			}
			for _, hook := range t.afterCommit {
				hook()
			}
			return nil
		}
		if !retryable(err) {
			return err
		}
		lastErr = err
	}
	return lastErr
}

// attempt is one run of a unit of work in its own transaction.
func (s *Store) attempt(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) (*Tx, error) {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	t := &Tx{Tx: ptx, store: s}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }() // no-op after Commit
	if err := fn(ctx, t); err != nil {
		return nil, err
	}
	if err := ptx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return t, nil
}

// retryable reports whether a unit of work that failed with err may simply
// run again in a new transaction: a version conflict, or PostgreSQL's own
// serialization failure or deadlock, after which nothing was stored.
func retryable(err error) bool {
	if errors.Is(err, ErrConflict) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// backoff waits a short, jittered, growing time so that writers colliding on
// one stream spread out instead of colliding again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	base := time.Millisecond << min(attempt, 6)
	d := base/2 + rand.N(base)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
