package eventsink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// mustStore returns a store over a fresh database with every domain event registered.
func mustStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(tb))
	require.NoError(tb, err)
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	s, err := eventstore.New(pool, reg)
	require.NoError(tb, err)
	return s
}

func mustDeriver(tb testing.TB, s *eventstore.Store) *fanout.Deriver {
	tb.Helper()
	c, err := fanout.NewCursors([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(tb, err)
	d, err := fanout.NewDeriver(s, c)
	require.NoError(tb, err)
	return d
}

// seed appends, for users users, a connection with accounts accounts and
// balances balances each, every append its own unit of work, and returns
// the integration events the log derives, in commit order.
func seed(tb testing.TB, s *eventstore.Store, users, accounts, balances int) []fanout.Event {
	tb.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	next := func() time.Time { at = at.Add(time.Second); return at }
	app := func(owner uuid.UUID, stream eventstore.Stream, v int64, e eventstore.Event) {
		ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: owner, Actor: "test"})
		_, err := s.Append(ctx, stream, v, e)
		require.NoError(tb, err)
	}
	for u := 0; u < users; u++ {
		owner := uuid.New()
		conn := uuid.New()
		cs := eventstore.Stream{Type: eventstore.StreamConnection, ID: conn}
		app(owner, cs, 0, connection.ProviderConnectionAttempted{ConnectionID: conn, UserID: owner, ProviderSlug: "sandbox",
			Alias: "alias", ExpiresAt: next(), At: next()})
		app(owner, cs, 1, connection.ProviderConnectionSucceeded{ConnectionID: conn, At: next(),
			Credentials: connection.Credentials{KeyID: "k", Fingerprint: "f", AccessExpiresAt: next()}})
		for a := 0; a < accounts; a++ {
			id := eventstore.AccountStreamID(conn, fmt.Sprint(a))
			as := eventstore.Stream{Type: eventstore.StreamAccount, ID: id}
			app(owner, as, 0, account.AccountOpened{AccountID: id, ConnectionID: conn, UserID: owner, SyncID: uuid.New(),
				Details: account.Details{ProviderAccountID: fmt.Sprint(a), Name: "n", Type: "checking", Currency: "USD"}, At: next()})
			for b := 0; b < balances; b++ {
				app(owner, as, int64(b+1), account.AccountBalanceRecorded{AccountID: id, SyncID: uuid.New(),
					Balance: account.Balance{Current: decimal.NewFromInt(int64(b)), Currency: "USD"}, At: next()})
			}
		}
	}
	return derived(tb, s)
}

// derived returns what the whole log derives, in commit order.
func derived(tb testing.TB, s *eventstore.Store) []fanout.Event {
	tb.Helper()
	var recs []eventstore.Record
	require.Eventually(tb, func() bool {
		var n int
		require.NoError(tb, s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
		var err error
		recs, err = s.ReadAll(context.Background(), eventstore.Position{}, n+1)
		require.NoError(tb, err)
		return len(recs) == n
	}, 30*time.Second, 5*time.Millisecond, "every event behind the horizon")
	events, failures, err := mustDeriver(tb, s).Derive(context.Background(), s.Pool(), recs)
	require.NoError(tb, err)
	require.Empty(tb, failures)
	return events
}

// runUntilCaughtUp runs r until its checkpoint reaches the log's head, then stops it.
func runUntilCaughtUp(tb testing.TB, s *eventstore.Store, r *projections.Runner, name string) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	require.Eventually(tb, func() bool { return caughtUp(tb, s, name) }, 30*time.Second, 10*time.Millisecond)
	cancel()
	<-done
}

// caughtUp reports whether checkpoint name is at the log's last event.
func caughtUp(tb testing.TB, s *eventstore.Store, name string) bool {
	var ok bool
	err := s.Pool().QueryRow(context.Background(), `SELECT coalesce((SELECT (c.transaction_id, c.global_position) =
			(SELECT transaction_id, global_position FROM events ORDER BY transaction_id DESC, global_position DESC LIMIT 1)
		FROM projection_checkpoints c WHERE c.name = $1), false)`, name).Scan(&ok)
	require.NoError(tb, err)
	return ok
}

// ids returns the events' ids in order.
func ids(events []fanout.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID.String()
	}
	return out
}
