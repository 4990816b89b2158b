package fanout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// startHub runs a hub over s until the test ends.
func startHub(t *testing.T, s *eventstore.Store, cfg fanout.HubConfig) *fanout.Hub {
	t.Helper()
	cfg.NotifyChannel = projections.NotifyChannel
	h, err := fanout.NewHub(s, mustDeriver(t, s), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// next receives the stream's next live event.
func next(t *testing.T, s *fanout.Stream) fanout.Event {
	t.Helper()
	select {
	case e := <-s.Live():
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event reached the stream")
		return fanout.Event{}
	}
}

// TestHubStreamsOnlyTheUsersEventsInOrder: a stream receives its user's
// integration events as they commit, in order, and nobody else's.
func TestHubStreamsOnlyTheUsersEventsInOrder(t *testing.T) {
	s := mustStore(t)
	h := startHub(t, s, fanout.HubConfig{})
	alice, bob := uuid.New(), uuid.New()
	st, err := h.Open(context.Background(), alice, "")
	require.NoError(t, err)
	defer st.Close()

	w := newWorld(t, s)
	w.connect(bob)
	conn := w.connect(alice)
	a := w.openAccount(alice, conn, 1)
	w.balance(alice, a, 5)
	var got []string
	for range 4 {
		e := next(t, st)
		assert.Equal(t, alice, e.UserID)
		got = append(got, e.Type)
	}
	assert.Equal(t, []string{"connection.status_changed", "connection.status_changed", "account.updated", "account.updated"}, got)
}

// TestHubReachesStreamsOfAnotherInstance: two hubs with stores of their
// own stand for two serve instances on one database. An event committed
// through the first reaches a stream held by the second through NOTIFY
// (the second hub's poll is an hour, so nothing else could wake it).
func TestHubReachesStreamsOfAnotherInstance(t *testing.T) {
	one := mustStore(t)
	pool2, err := pgxpool.NewWithConfig(context.Background(), one.Pool().Config())
	require.NoError(t, err)
	defer pool2.Close()
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	two, err := eventstore.New(pool2, reg)
	require.NoError(t, err)

	notifier, err := projections.NewNotifier(one, 0, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = notifier.Run(ctx) }()

	h2 := startHub(t, two, fanout.HubConfig{PollInterval: time.Hour})
	user := uuid.New()
	st, err := h2.Open(ctx, user, "")
	require.NoError(t, err)
	defer st.Close()
	newWorld(t, one).connect(user)
	e := next(t, st)
	assert.Equal(t, "connection.status_changed", e.Type)
	assert.Equal(t, user, e.UserID)
}

// TestHubResumesAfterLastEventID: a stream opened with the id of an event
// it got reads the events after it from the log, then continues live,
// missing nothing and repeating nothing.
func TestHubResumesAfterLastEventID(t *testing.T) {
	s := mustStore(t)
	h := startHub(t, s, fanout.HubConfig{})
	user := uuid.New()
	first, err := h.Open(context.Background(), user, "")
	require.NoError(t, err)
	w := newWorld(t, s)
	conn := w.connect(user)
	acct := w.openAccount(user, conn, 1)
	for i := range 5 {
		w.balance(user, acct, int64(i))
	}
	var all []fanout.Event
	for range 8 {
		all = append(all, next(t, first))
	}
	first.Close()

	resumed, err := h.Open(context.Background(), user, fanout.EventID(all[2]))
	require.NoError(t, err)
	defer resumed.Close()
	w.balance(user, acct, 99)
	var got []fanout.Event
	require.NoError(t, resumed.CatchUp(context.Background(), func(e fanout.Event) error { got = append(got, e); return nil }))
	got = append(got, next(t, resumed))
	require.Len(t, got, 6)
	assert.Equal(t, ids(all[3:]), ids(got[:5]))
	assert.Equal(t, "balance_recorded", got[5].Data.(fanout.AccountUpdatedData).Change)

	_, err = h.Open(context.Background(), user, "not-an-id")
	assert.True(t, errors.Is(err, fanout.ErrInvalidEventID))
}

// TestHubLimitsStreamsPerUserAndCutsLaggards: a user holds at most the
// configured number of streams; a stream that does not keep up is cut
// rather than holding the tailer back.
func TestHubLimitsStreamsPerUserAndCutsLaggards(t *testing.T) {
	s := mustStore(t)
	h := startHub(t, s, fanout.HubConfig{MaxStreamsPerUser: 2, Buffer: 2})
	user := uuid.New()
	a, err := h.Open(context.Background(), user, "")
	require.NoError(t, err)
	b, err := h.Open(context.Background(), user, "")
	require.NoError(t, err)
	_, err = h.Open(context.Background(), user, "")
	assert.True(t, errors.Is(err, fanout.ErrTooManyStreams))
	b.Close()
	c, err := h.Open(context.Background(), user, "")
	require.NoError(t, err, "a closed stream frees its place")
	defer c.Close()

	w := newWorld(t, s)
	conn := w.connect(user)
	acct := w.openAccount(user, conn, 1)
	w.balance(user, acct, 1)
	select {
	case <-a.Lost():
	case <-time.After(20 * time.Second):
		t.Fatal("a stream that read nothing was not cut")
	}
	a.Close()
}
