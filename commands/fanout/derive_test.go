package fanout_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
)

// deriveAll derives the whole log in batches of size n.
func deriveAll(t *testing.T, s *eventstore.Store, n int) []fanout.Event {
	t.Helper()
	settled(t, s)
	d := mustDeriver(t, s)
	var out []fanout.Event
	var at eventstore.Position
	for {
		recs, err := s.ReadAll(context.Background(), at, n)
		require.NoError(t, err)
		if len(recs) == 0 {
			return out
		}
		evs, failures, err := d.Derive(context.Background(), s.Pool(), recs)
		require.NoError(t, err)
		require.Empty(t, failures)
		out = append(out, evs...)
		at = recs[len(recs)-1].Position()
	}
}

// TestDeriveIsDeterministicAndCarriesNoPersonalData drives a connection
// through its life, a sync with transactions and account changes, and
// checks what the log derives: the types and their order, the statuses,
// the per-account counts; that the same events with the same ids come out
// however the log is cut into batches; and that no alias, name,
// description or amount leaves.
func TestDeriveIsDeterministicAndCarriesNoPersonalData(t *testing.T) {
	s := mustStore(t)
	w := newWorld(t, s)
	owner := uuid.New()
	conn := w.connect(owner)
	cs := eventstore.Stream{Type: eventstore.StreamConnection, ID: conn}
	a1, a2 := w.openAccount(owner, conn, 1), w.openAccount(owner, conn, 2)
	w.balance(owner, a1, 100)

	sync := uuid.New()
	w.appendTo(owner, cs, connection.SyncStarted{ConnectionID: conn, SyncID: sync, Trigger: connection.SyncManual, From: "2026-01-01", To: "2026-03-01", At: w.now()})
	// Account 1: three new, one of them removed again by the same sync; account 2: one new.
	var tx1 []uuid.UUID
	for i := 0; i < 3; i++ {
		id := eventstore.TransactionStreamID(a1, txData(i, true, 5).ProviderTransactionID)
		tx1 = append(tx1, id)
		w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamTransaction, ID: id}, transaction.TransactionRecorded{TransactionID: id,
			AccountID: a1, ConnectionID: conn, SyncID: sync, Data: txData(i, true, 5), At: w.now()})
	}
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamTransaction, ID: tx1[2]}, transaction.TransactionRemoved{TransactionID: tx1[2], SyncID: sync, Reason: transaction.ReasonDisappeared, At: w.now()})
	t2 := eventstore.TransactionStreamID(a2, "t-9")
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamTransaction, ID: t2}, transaction.TransactionRecorded{TransactionID: t2,
		AccountID: a2, ConnectionID: conn, SyncID: sync, Data: txData(9, false, 7), At: w.now()})
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamAccount, ID: a2}, account.AccountHoldingsRecorded{AccountID: a2, SyncID: sync,
		Holdings: []account.Holding{{Symbol: "AAPL", Currency: "USD"}, {Symbol: "MSFT", Currency: "USD"}}, At: w.now()})
	w.appendTo(owner, cs, connection.SyncCompleted{ConnectionID: conn, SyncID: sync, Accounts: 2,
		Counts: connection.SyncCounts{Created: 4, Removed: 1}, At: w.now()})

	// A later sync updates one of account 1's and removes another.
	sync2 := uuid.New()
	w.appendTo(owner, cs, connection.SyncStarted{ConnectionID: conn, SyncID: sync2, Trigger: connection.SyncScheduled, From: "2026-01-01", To: "2026-03-01", At: w.now()})
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamTransaction, ID: tx1[0]}, transaction.TransactionUpdated{TransactionID: tx1[0], SyncID: sync2,
		Data: txData(0, false, 5), Changed: []string{"status"}, At: w.now()})
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamTransaction, ID: tx1[1]}, transaction.TransactionRemoved{TransactionID: tx1[1], SyncID: sync2, Reason: transaction.ReasonDisappeared, At: w.now()})
	w.appendTo(owner, cs, connection.SyncCompleted{ConnectionID: conn, SyncID: sync2, Accounts: 2, At: w.now()})

	// Credentials refused, then the connection ends.
	w.appendTo(owner, cs, connection.ProviderReauthenticationRequired{ConnectionID: conn, Reason: connection.FailedAuthentication, At: w.now()})
	w.appendTo(owner, cs, connection.ProviderDisconnectionSucceeded{ConnectionID: conn, At: w.now()})
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamAccount, ID: a1}, account.AccountClosed{AccountID: a1, Reason: account.ClosedDisconnected, At: w.now()})

	whole := deriveAll(t, s, 1000)
	var types []string
	for _, e := range whole {
		types = append(types, e.Type)
		assert.Equal(t, owner, e.UserID)
		assert.Equal(t, fanout.Version, e.Version)
	}
	assert.Equal(t, []string{
		"connection.status_changed", "connection.status_changed", // pending, active
		"account.updated", "account.updated", "account.updated", // two opened, a balance
		"sync.started", "holdings.changed",
		"transactions.changed", "transactions.changed", "sync.completed",
		"sync.started", "transactions.changed", "sync.completed",
		"connection.status_changed", "connection.reauthorization_required", "connection.status_changed",
		"account.updated",
	}, types)

	status := func(e fanout.Event) fanout.ConnectionStatusChangedData {
		return e.Data.(fanout.ConnectionStatusChangedData)
	}
	assert.Equal(t, "pending", status(whole[0]).Status)
	assert.Equal(t, "", status(whole[0]).PreviousStatus)
	assert.Equal(t, "active", status(whole[1]).Status)
	assert.Equal(t, "needs_reauth", status(whole[13]).Status)
	assert.Equal(t, "authentication", status(whole[13]).Reason)
	assert.Equal(t, "disconnected", status(whole[15]).Status)
	assert.Equal(t, "needs_reauth", status(whole[15]).PreviousStatus)

	changed := map[uuid.UUID]fanout.TransactionsChangedData{}
	for _, e := range whole[7:9] {
		d := e.Data.(fanout.TransactionsChangedData)
		changed[d.AccountID] = d
		assert.NotEmpty(t, d.Cursor)
	}
	assert.Equal(t, 2, changed[a1].Added, "the one recorded and removed by the same sync is not counted")
	assert.Equal(t, 1, changed[a2].Added)
	later := whole[11].Data.(fanout.TransactionsChangedData)
	assert.Equal(t, a1, later.AccountID)
	assert.Equal(t, 1, later.Modified)
	assert.Equal(t, 1, later.Removed)
	assert.Equal(t, 2, whole[6].Data.(fanout.HoldingsChangedData).Holdings)
	assert.Equal(t, conn, whole[6].Data.(fanout.HoldingsChangedData).ConnectionID, "found from the account's first event")
	closed := whole[16].Data.(fanout.AccountUpdatedData)
	assert.False(t, closed.IsActive)
	assert.Equal(t, conn, closed.ConnectionID)

	// Batches of any size derive the same events with the same ids.
	for _, n := range []int{1, 3, 7} {
		assert.Equal(t, ids(whole), ids(deriveAll(t, s, n)), "batches of %d", n)
	}
	seen := map[uuid.UUID]bool{}
	for _, e := range whole {
		assert.False(t, seen[e.ID], "ids are unique")
		seen[e.ID] = true
		b, err := e.Marshal()
		require.NoError(t, err)
		for _, secret := range []string{"secret alias", "Private name", "coffee shop", "1234", "\"amount\"", "balance\":"} {
			assert.NotContains(t, string(b), secret)
		}
		var back map[string]any
		require.NoError(t, json.Unmarshal(b, &back))
		for _, k := range []string{"id", "type", "version", "user_id", "position", "timestamp", "data"} {
			assert.Contains(t, back, k)
		}
	}
	assert.True(t, strings.HasPrefix(whole[0].Timestamp.Format("2006"), "2026"))
}

func ids(events []fanout.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID.String()
	}
	return out
}

// TestDeriveReportsEventsItCannotDerive: an event without an owner cannot
// be delivered to anyone; it is a failure to park, not a silent skip.
func TestDeriveReportsEventsItCannotDerive(t *testing.T) {
	s := mustStore(t)
	conn := uuid.New()
	_, err := s.Append(context.Background(), eventstore.Stream{Type: eventstore.StreamConnection, ID: conn}, 0,
		connection.ProviderConnectionAttempted{ConnectionID: conn, ProviderSlug: "sandbox"})
	require.NoError(t, err)
	settled(t, s)
	recs, err := s.ReadAll(context.Background(), eventstore.Position{}, 10)
	require.NoError(t, err)
	evs, failures, err := mustDeriver(t, s).Derive(context.Background(), s.Pool(), recs)
	require.NoError(t, err)
	assert.Empty(t, evs)
	require.Len(t, failures, 1)
	assert.Contains(t, failures[0].Error(), "no owner")
}
