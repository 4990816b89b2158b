package projections

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// sharedWorld is a store of idleTicked events and consumers of Streams,
// EventTypeCounts and Syncs (which selects connection streams only) that
// share their reads, as a Manager's live runners do.
func sharedWorld(t *testing.T, opts ...Option) (*eventstore.Store, *sharedReads, map[string]*consumer) {
	t.Helper()
	pool := testdb.New(t)
	reg := eventstore.NewRegistry()
	eventstore.Register[idleTicked](reg, 1)
	store, err := eventstore.New(pool, reg)
	require.NoError(t, err)
	ps := []Projector{Streams{}, EventTypeCounts{}, Syncs{}}
	require.NoError(t, Ensure(context.Background(), testdb.Owner(t, pool), ps...))
	cfg := newConfig(opts)
	cfg.batches = newBatchXIDs()
	sr := newSharedReads(pool, cfg.batches)
	cs := map[string]*consumer{}
	for _, p := range ps {
		c := newConsumer(pool, p, p.Name(), LiveTables(p), cfg, nil)
		c.shared = sr
		cs[p.Name()] = c
	}
	return store, sr, cs
}

// appendTicks appends n events to a new account stream in one transaction.
func appendTicks(t *testing.T, store *eventstore.Store, n int) {
	t.Helper()
	evs := make([]eventstore.Event, n)
	for i := range evs {
		evs[i] = idleTicked{}
	}
	_, err := store.Append(context.Background(), eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}, 0, evs...)
	require.NoError(t, err)
}

// waitReadable waits until a read from the start sees n events: the xid
// horizon is cluster-wide, and other tests' transactions hold it back.
func waitReadable(t *testing.T, store *eventstore.Store, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		recs, err := store.ReadAll(context.Background(), eventstore.Position{}, n+1)
		require.NoError(t, err)
		return len(recs) == n
	}, time.Minute, time.Millisecond)
}

// TestSharedReadsReadOnceForConsumersAtOnePosition: three consumers at one
// position read a full batch from the database once between them, each
// applies what its selection keeps, and the one that selects none of these
// events still moves its checkpoint past them.
func TestSharedReadsReadOnceForConsumersAtOnePosition(t *testing.T) {
	t.Parallel()
	store, sr, cs := sharedWorld(t, WithBatchSize(2))
	ctx := context.Background()
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)

	for _, name := range []string{"streams", "event_type_counts"} {
		res, err := cs[name].step(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, res.processed, name)
		require.True(t, res.more, name)
	}
	res, err := cs["syncs"].step(ctx)
	require.NoError(t, err)
	require.Zero(t, res.processed, "syncs selects no account stream")
	require.True(t, res.more)
	require.EqualValues(t, 1, sr.fromDB.Load(), "one read for the three")

	want := cs["streams"].pos
	for name := range cs {
		pos, err := readCheckpoint(ctx, store.Pool(), name)
		require.NoError(t, err)
		require.Equal(t, want, pos, "%s's checkpoint", name)
	}
	var events int64
	require.NoError(t, store.Pool().QueryRow(ctx, `SELECT events FROM event_type_counts WHERE event_type = 'IdleTicked'`).Scan(&events))
	require.EqualValues(t, 2, events)
}

// TestSharedReadsAShortReadThatEndedIsNotShared: a consumer that comes
// after a short read has ended reads afresh and takes in one batch what
// committed since, instead of applying the old read and stepping again.
func TestSharedReadsAShortReadThatEndedIsNotShared(t *testing.T) {
	t.Parallel()
	store, sr, cs := sharedWorld(t)
	ctx := context.Background()
	first, late := cs["streams"], cs["event_type_counts"]
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)
	res, err := first.step(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, res.processed)
	require.False(t, res.more)

	appendTicks(t, store, 2)
	waitReadable(t, store, 5)
	res, err = late.step(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, res.processed, "all that committed, in one batch")
	require.False(t, res.more)
	require.EqualValues(t, 2, sr.fromDB.Load())

	res, err = first.step(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, res.processed)
	require.Equal(t, first.pos, late.pos)
}

// TestSharedReadsAnOldFullReadStillFindsWhatFollows: a consumer handed a
// full read made before more events committed applies it and is told that
// more follows: an old read is a prefix of the log after its position,
// never a wrong answer.
func TestSharedReadsAnOldFullReadStillFindsWhatFollows(t *testing.T) {
	t.Parallel()
	store, sr, cs := sharedWorld(t, WithBatchSize(2))
	ctx := context.Background()
	first, late := cs["streams"], cs["event_type_counts"]
	appendTicks(t, store, 2)
	waitReadable(t, store, 2)
	res, err := first.step(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, res.processed)

	appendTicks(t, store, 1)
	waitReadable(t, store, 3)
	res, err = late.step(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, res.processed, "the full read shared from before the append")
	require.True(t, res.more)
	require.EqualValues(t, 1, sr.fromDB.Load())
	for _, c := range []*consumer{late, first} {
		res, err = c.step(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, res.processed)
	}
	require.Equal(t, first.pos, late.pos)
}

// TestSharedReadsLimitsAndFailures: a full read serves a smaller limit as a
// full prefix and a larger one as full, a short read says so, and a failed
// read is not kept for the next consumer.
func TestSharedReadsLimitsAndFailures(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := sr.read(cancelled, eventstore.Position{}, 10)
	require.Error(t, err)

	ctx := context.Background()
	recs, full, err := sr.read(ctx, eventstore.Position{}, 2)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.True(t, full, "two of three: more follows")
	recs, full, err = sr.read(ctx, eventstore.Position{}, 1)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.True(t, full)
	require.Equal(t, 1, cap(recs), "a prefix cannot be appended over the shared read")
	recs, full, err = sr.read(ctx, eventstore.Position{}, 10)
	require.NoError(t, err)
	require.Len(t, recs, 2, "the full read of two, shared")
	require.True(t, full, "it was full: more may follow")
	require.EqualValues(t, 2, sr.fromDB.Load(), "the failed read and one more")

	recs, full, err = sr.read(ctx, recs[1].Position(), 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.False(t, full)
	_, _, err = sr.read(ctx, recs[0].Position(), 10)
	require.NoError(t, err)
	_, _, err = sr.read(ctx, recs[0].Position(), 10)
	require.NoError(t, err)
	require.EqualValues(t, 5, sr.fromDB.Load(), "an empty read is not shared")
}

// TestSharedReadsKeepNoEmptyRead: a read that found nothing is not handed to
// the next consumer at that position, who would otherwise poll the same
// empty answer for ever while the events it waits for are committed.
func TestSharedReadsKeepNoEmptyRead(t *testing.T) {
	t.Parallel()
	store, sr, cs := sharedWorld(t)
	ctx := context.Background()
	res, err := cs["streams"].step(ctx)
	require.NoError(t, err)
	require.Zero(t, res.processed)

	appendTicks(t, store, 2)
	waitReadable(t, store, 2)
	res, err = cs["streams"].step(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, res.processed)
	require.EqualValues(t, 2, sr.fromDB.Load())
}

// TestSharedReadsJoinAReadInFlight: a consumer that finds a read in flight
// waits for it and takes it, short or not: it is as fresh as one the
// consumer would start.
func TestSharedReadsJoinAReadInFlight(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)
	ctx := context.Background()
	want, err := store.ReadAll(ctx, eventstore.Position{}, 10)
	require.NoError(t, err)

	inFlight := &sharedRead{limit: 10, done: make(chan struct{})}
	sr.mu.Lock()
	sr.keep(eventstore.Position{}, inFlight)
	sr.mu.Unlock()
	go func() {
		inFlight.recs = want[:1]
		close(inFlight.done)
	}()
	joined, full, err := sr.read(ctx, eventstore.Position{}, 10)
	require.NoError(t, err)
	require.Len(t, joined, 1, "the read in flight, shared")
	require.False(t, full)
	require.Zero(t, sr.fromDB.Load())
}

// TestSharedReadsIdleHoldsNoRecords: once a read comes back empty (its
// consumer has caught up), the full reads kept for others are let go, so
// that an idle Manager holds no batch of records; a short read is never
// kept.
func TestSharedReadsIdleHoldsNoRecords(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)
	ctx := context.Background()
	recs, full, err := sr.read(ctx, eventstore.Position{}, 2)
	require.NoError(t, err)
	require.True(t, full)
	tail, full, err := sr.read(ctx, recs[1].Position(), 2)
	require.NoError(t, err)
	require.False(t, full)
	require.Len(t, tail, 1)
	sr.mu.Lock()
	require.Len(t, sr.reads, 1, "the full read, not the short one")
	sr.mu.Unlock()

	none, _, err := sr.read(ctx, tail[0].Position(), 2)
	require.NoError(t, err)
	require.Empty(t, none)
	sr.mu.Lock()
	defer sr.mu.Unlock()
	require.Empty(t, sr.reads)
	require.Empty(t, sr.order)
}
