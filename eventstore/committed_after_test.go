package eventstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
)

// openAppend appends n events to a new stream in a transaction it leaves
// open until the returned func is called with whether to commit.
func openAppend(t *testing.T, s *eventstore.Store, n int) (end func(commit bool)) {
	t.Helper()
	ctx := context.Background()
	appended, release, done := make(chan error, 1), make(chan bool), make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			evs := make([]eventstore.Event, n)
			evs[0] = counterOpened{Name: "held"}
			for i := 1; i < n; i++ {
				evs[i] = counterIncremented{CommandID: "c", Amount: "1"}
			}
			_, err := tx.Append(ctx, newStream(eventstore.StreamAccount), 0, evs...)
			appended <- err
			if err != nil || !<-release {
				return context.Canceled // any error rolls the transaction back
			}
			return nil
		})
	}()
	require.NoError(t, <-appended)
	var once bool
	end = func(commit bool) {
		if once {
			return
		}
		once = true
		release <- commit
		<-done
	}
	t.Cleanup(func() { end(false) })
	return end
}

// committedPosition appends one event in its own transaction and returns
// where it sits in commit order.
func committedPosition(t *testing.T, s *eventstore.Store) eventstore.Position {
	t.Helper()
	ctx := context.Background()
	res, err := s.Append(ctx, newStream(eventstore.StreamAccount), 0, counterOpened{Name: "done"})
	require.NoError(t, err)
	pos := eventstore.Position{GlobalPosition: res.LastPosition}
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT transaction_id FROM events WHERE global_position = $1`,
		res.LastPosition).Scan(&pos.TransactionID))
	return pos
}

// TestCommittedAfterLooksPastRunningTransactions: the look past the horizon
// answers as a scan of the whole commit order would, while it skips the rows
// of transactions still running: none of them count, a committed event
// after them does, and so does one before the first of them.
func TestCommittedAfterLooksPastRunningTransactions(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	after := func(pos eventstore.Position) bool {
		t.Helper()
		ok, err := eventstore.CommittedAfter(ctx, s.Pool(), pos)
		require.NoError(t, err)
		return ok
	}

	require.False(t, after(eventstore.Position{}), "an empty log")
	first := committedPosition(t, s)
	require.True(t, after(eventstore.Position{}), "a committed event after the start")
	require.False(t, after(first), "nothing after the last event")

	endA := openAppend(t, s, 300)
	require.False(t, after(first), "a running transaction's rows are not committed events")
	second := committedPosition(t, s)
	require.True(t, after(first), "committed after a running transaction")
	require.False(t, after(second))

	endC := openAppend(t, s, 5)
	third := committedPosition(t, s)
	require.True(t, after(first), "committed between and after two running transactions")
	require.True(t, after(second))
	require.False(t, after(third))

	endA(true)
	require.True(t, after(first), "A's events, committed now, sort before the second")
	require.False(t, after(third), "A sorts before third: nothing after it")
	endC(false)
	require.False(t, after(third), "a rolled-back transaction leaves nothing")
}
