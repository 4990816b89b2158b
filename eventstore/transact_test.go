package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
)

// TestTransactRetriesConflictsInANewTransaction: a unit of work that
// conflicts runs again in a fresh transaction; what the failed attempt
// wrote is gone, and its AfterCommit hooks never run.
func TestTransactRetriesConflictsInANewTransaction(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	first, second := newStream(eventstore.StreamAccount), newStream(eventstore.StreamAccount)
	attempts, hooks := 0, []int{}
	err := s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		attempts++
		n := attempts
		tx.AfterCommit(func() { hooks = append(hooks, n) })
		if _, err := tx.Append(ctx, first, 0, counterOpened{Name: "kept"}); err != nil {
			return err
		}
		if attempts == 1 {
			// As if another writer had moved the second stream meanwhile.
			return &eventstore.ConflictError{Stream: second, Expected: 0}
		}
		_, err := tx.Append(ctx, second, 0, counterOpened{Name: "second"})
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, 2, attempts)
	assert.Equal(t, []int{2}, hooks, "only the committed attempt's hooks run, once")
	for _, st := range []eventstore.Stream{first, second} {
		recs, err := s.ReadStream(ctx, st, 0)
		require.NoError(t, err)
		assert.Len(t, recs, 1, "%s", st)
	}
}

// TestTransactGivesUpAfterMaxAttempts: a unit of work that always
// conflicts ends with the conflict, having stored nothing.
func TestTransactGivesUpAfterMaxAttempts(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamAccount)
	attempts := 0
	err := s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		attempts++
		if _, err := tx.Append(ctx, st, 0, counterOpened{}); err != nil {
			return err
		}
		return &eventstore.ConflictError{Stream: st, Expected: 1}
	})
	require.ErrorIs(t, err, eventstore.ErrConflict)
	assert.Equal(t, eventstore.MaxAttempts, attempts)
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// TestTransactOtherErrorsRollBack: an error that is not a conflict is
// returned as is, after one attempt, with nothing stored.
func TestTransactOtherErrorsRollBack(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamAccount)
	want := errors.New("refused")
	attempts := 0
	err := s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		attempts++
		if _, err := tx.Append(ctx, st, 0, counterOpened{}); err != nil {
			return err
		}
		return want
	})
	require.ErrorIs(t, err, want)
	assert.Equal(t, 1, attempts)
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// TestUpdateTxOfSeveralAggregatesInOneUnitOfWork: one unit of work decides
// on several aggregates; all commit together.
func TestUpdateTxOfSeveralAggregatesInOneUnitOfWork(t *testing.T) {
	s := mustStore(t)
	repo := mustCounters(t, s)
	ctx := context.Background()
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	err := s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		for _, id := range ids {
			if _, err := repo.UpdateTx(ctx, tx, id, increment("once")); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	for _, id := range ids {
		l, err := repo.Load(ctx, s.Pool(), id)
		require.NoError(t, err)
		assert.EqualValues(t, 1, l.Version)
		assert.True(t, l.State.applied["once"])
	}
}
