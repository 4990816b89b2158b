package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
)

// TestAppendManyStoresOneEventPerStream: one unit of work appends the first
// event of 3,000 new streams (more than one statement's worth) and the next
// event of existing ones; every chain verifies.
func TestAppendManyStoresOneEventPerStream(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	existing := make([]eventstore.Stream, 10)
	for i := range existing {
		existing[i] = newStream(eventstore.StreamTransaction)
		_, err := s.Append(ctx, existing[i], 0, counterOpened{Name: "old"})
		require.NoError(t, err)
	}
	var batch []eventstore.StreamEvent
	fresh := make([]eventstore.Stream, 3000)
	for i := range fresh {
		fresh[i] = newStream(eventstore.StreamTransaction)
		batch = append(batch, eventstore.StreamEvent{Stream: fresh[i], Event: counterOpened{Name: fmt.Sprint(i)}})
	}
	for _, st := range existing {
		batch = append(batch, eventstore.StreamEvent{Stream: st, ExpectedVersion: 1, Event: counterIncremented{CommandID: "next", Amount: "1"}})
	}
	var last int64
	require.NoError(t, s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		var err error
		last, err = tx.AppendMany(ctx, batch)
		return err
	}))
	assert.Positive(t, last)
	for _, st := range []eventstore.Stream{fresh[0], fresh[2999], existing[3]} {
		recs, err := s.ReadStream(ctx, st, 0)
		require.NoError(t, err)
		require.NotEmpty(t, recs)
		assert.LessOrEqual(t, recs[len(recs)-1].GlobalPosition, last)
	}
	rep, brk, err := s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	require.Nil(t, brk)
	assert.EqualValues(t, 3010, rep.Streams)
	assert.EqualValues(t, 3020, rep.Events)
}

// TestAppendManyRefusesAMovedStream: one stream not at its expected version
// fails the unit of work as a conflict and nothing of it is stored.
func TestAppendManyRefusesAMovedStream(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	moved := newStream(eventstore.StreamTransaction)
	_, err := s.Append(ctx, moved, 0, counterOpened{}, counterIncremented{CommandID: "a", Amount: "1"})
	require.NoError(t, err)
	fresh := newStream(eventstore.StreamTransaction)
	err = s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		_, err := tx.AppendMany(ctx, []eventstore.StreamEvent{
			{Stream: fresh, Event: counterOpened{}},
			{Stream: moved, ExpectedVersion: 1, Event: counterIncremented{CommandID: "b", Amount: "1"}},
		})
		return err
	})
	require.ErrorIs(t, err, eventstore.ErrConflict)
	recs, err := s.ReadStream(ctx, fresh, 0)
	require.NoError(t, err)
	assert.Empty(t, recs, "the unit of work rolled back")
}

// TestUpdateManyIsIdempotentAndRetriesConflicts: many aggregates decided in
// one unit of work; deciding the same again appends nothing; two such
// units of work racing over the same streams both end, each command
// applied exactly once.
func TestUpdateManyIsIdempotentAndRetriesConflicts(t *testing.T) {
	s := mustStoreConns(t, 8)
	repo := mustCounters(t, s)
	ctx := context.Background()
	ids := make([]uuid.UUID, 500)
	for i := range ids {
		ids[i] = uuid.New()
	}
	run := func(cmd string) error {
		return s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			_, err := repo.UpdateMany(ctx, tx, ids, func(id uuid.UUID, c *counter) ([]counterEvent, error) {
				if c.applied[cmd] {
					return nil, nil
				}
				return []counterEvent{counterIncremented{CommandID: cmd, Amount: "1"}}, nil
			})
			return err
		})
	}
	require.NoError(t, run("first"))
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, 500, n)
	require.NoError(t, run("first"))
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, 500, n, "the same decision again appends nothing")

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = run(fmt.Sprintf("racer-%d", i)) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	loaded, err := repo.LoadMany(ctx, s.Pool(), ids)
	require.NoError(t, err)
	for _, id := range ids {
		l := loaded[id]
		assert.EqualValues(t, 3, l.Version, "stream %s", id)
		assert.True(t, l.State.applied["racer-0"] && l.State.applied["racer-1"])
	}
	_, brk, err := s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	require.Nil(t, brk)
}
