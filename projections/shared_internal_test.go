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

// TestSharedReadsABatchTakesWhatWasReadAndWhatCommittedSince: a consumer
// behind takes from memory what another read before it, and what committed
// since in the same batch, from one read of only the new events.
func TestSharedReadsABatchTakesWhatWasReadAndWhatCommittedSince(t *testing.T) {
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
	require.Equal(t, 2, res.processed, "from memory")
	require.Equal(t, first.pos, late.pos)
	require.EqualValues(t, 3, sr.fromDB.Load(), "and one look for more")
}

// TestSharedReadsAConsumerBehindReadsNothingAgain: what the consumer ahead
// read in several batches, the one behind takes in one from memory.
func TestSharedReadsAConsumerBehindReadsNothingAgain(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	appendTicks(t, store, 6)
	waitReadable(t, store, 6)
	ctx := context.Background()
	started, full, err := sr.read(ctx, "behind", eventstore.Position{}, 1)
	require.NoError(t, err)
	require.True(t, full)
	var pos eventstore.Position
	for range 3 {
		recs, full, err := sr.read(ctx, "ahead", pos, 2)
		require.NoError(t, err)
		require.Len(t, recs, 2)
		require.True(t, full)
		pos = recs[1].Position()
	}
	require.EqualValues(t, 4, sr.fromDB.Load(), "each read after the last")
	recs, full, err := sr.read(ctx, "behind", started[0].Position(), 4)
	require.NoError(t, err)
	require.Len(t, recs, 4)
	require.True(t, full)
	require.EqualValues(t, 4, sr.fromDB.Load(), "from memory")
	recs, full, err = sr.read(ctx, "behind", recs[3].Position(), 4)
	require.NoError(t, err)
	require.Len(t, recs, 1, "the rest from memory")
	require.False(t, full)
	require.Equal(t, pos, recs[0].Position())
	require.EqualValues(t, 5, sr.fromDB.Load(), "and one look for more")
}

// TestSharedReadsBeyondTheBoundReadAlone: the records kept are bounded; a
// consumer behind them reads for itself.
func TestSharedReadsBeyondTheBoundReadAlone(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	sr.max = 2
	appendTicks(t, store, 4)
	waitReadable(t, store, 4)
	ctx := context.Background()
	first, _, err := sr.read(ctx, "ahead", eventstore.Position{}, 2)
	require.NoError(t, err)
	_, _, err = sr.read(ctx, "behind", eventstore.Position{}, 1)
	require.NoError(t, err)
	second, full, err := sr.read(ctx, "ahead", first[1].Position(), 2)
	require.NoError(t, err)
	require.Len(t, second, 2)
	require.True(t, full)
	sr.mu.Lock()
	require.Len(t, sr.recs, 2, "the bound")
	require.Equal(t, first[1].Position(), sr.from)
	sr.mu.Unlock()
	alone, full, err := sr.read(ctx, "behind", first[0].Position(), 2)
	require.NoError(t, err)
	require.Equal(t, []eventstore.Position{first[1].Position(), second[0].Position()},
		[]eventstore.Position{alone[0].Position(), alone[1].Position()})
	require.True(t, full)
	require.EqualValues(t, 3, sr.fromDB.Load(), "the one behind read for itself")
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

// TestSharedReadsLimitsAndFailures: a smaller limit is served as a full
// prefix that cannot be appended over, a larger one is extended once and
// answered short, a failed read is not the next consumer's, and an empty
// read is asked again each time.
func TestSharedReadsLimitsAndFailures(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := sr.read(cancelled, "a", eventstore.Position{}, 10)
	require.Error(t, err)

	ctx := context.Background()
	recs, full, err := sr.read(ctx, "a", eventstore.Position{}, 2)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.True(t, full, "two of three: more follows")
	recs, full, err = sr.read(ctx, "b", eventstore.Position{}, 1)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.True(t, full)
	require.Equal(t, 1, cap(recs), "a prefix cannot be appended over the shared records")
	recs, full, err = sr.read(ctx, "c", eventstore.Position{}, 10)
	require.NoError(t, err)
	require.Len(t, recs, 3, "the two kept and the one read after them")
	require.False(t, full)
	require.Equal(t, 3, cap(recs))
	require.EqualValues(t, 3, sr.fromDB.Load(), "the failed read and two more")

	for range 2 {
		none, full, err := sr.read(ctx, "a", recs[2].Position(), 10)
		require.NoError(t, err)
		require.Empty(t, none)
		require.False(t, full)
	}
	require.EqualValues(t, 5, sr.fromDB.Load(), "an empty read is asked again")
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

// TestSharedReadsJoinAReadInFlight: a consumer that needs more than is kept
// while a read after the kept records is in flight waits for it and takes
// what it brought.
func TestSharedReadsJoinAReadInFlight(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)
	ctx := context.Background()
	want, err := store.ReadAll(ctx, eventstore.Position{}, 10)
	require.NoError(t, err)

	inFlight := &tailRead{done: make(chan struct{})}
	sr.mu.Lock()
	sr.kept, sr.ext = true, inFlight
	sr.mu.Unlock()
	type answer struct {
		recs []eventstore.Record
		full bool
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		recs, full, err := sr.read(ctx, "x", eventstore.Position{}, 10)
		answered <- answer{recs, full, err}
	}()
	// The reader enters itself and finds the read in flight in one hold
	// of the lock: once it is entered, it waits for that read.
	require.Eventually(t, func() bool {
		sr.mu.Lock()
		defer sr.mu.Unlock()
		_, ok := sr.at["x"]
		return ok
	}, time.Minute, time.Millisecond)
	sr.mu.Lock()
	sr.recs, sr.ext = want[:1], nil
	sr.mu.Unlock()
	close(inFlight.done)
	got := <-answered
	require.NoError(t, got.err)
	require.Len(t, got.recs, 1, "the read in flight, shared")
	require.False(t, got.full)
	require.Zero(t, sr.fromDB.Load())
}

// TestSharedReadsIdleHoldsNoRecords: what every active consumer has passed
// is let go, so that an idle Manager holds no records, and a consumer that
// left holds nothing back.
func TestSharedReadsIdleHoldsNoRecords(t *testing.T) {
	t.Parallel()
	store, sr, _ := sharedWorld(t)
	appendTicks(t, store, 3)
	waitReadable(t, store, 3)
	ctx := context.Background()
	kept := func() int {
		sr.mu.Lock()
		defer sr.mu.Unlock()
		return len(sr.recs)
	}
	_, _, err := sr.read(ctx, "b", eventstore.Position{}, 1)
	require.NoError(t, err)
	recs, _, err := sr.read(ctx, "a", eventstore.Position{}, 2)
	require.NoError(t, err)
	tail, full, err := sr.read(ctx, "a", recs[1].Position(), 2)
	require.NoError(t, err)
	require.False(t, full)
	require.Len(t, tail, 1)
	require.Equal(t, 3, kept(), "b has applied none")
	_, _, err = sr.read(ctx, "b", recs[1].Position(), 2)
	require.NoError(t, err)
	require.Equal(t, 1, kept(), "both passed the first two")

	none, _, err := sr.read(ctx, "a", tail[0].Position(), 2)
	require.NoError(t, err)
	require.Empty(t, none)
	require.Equal(t, 1, kept(), "b has not applied the third")
	sr.leave("b")
	require.Zero(t, kept(), "b left")
	sr.mu.Lock()
	defer sr.mu.Unlock()
	require.Nil(t, sr.recs)
}
