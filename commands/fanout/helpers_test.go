package fanout_test

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
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// testKey keys the cursors of every test.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// mustStore returns a store over a fresh database with every domain event
// registered, on a pool wide enough for concurrent writers.
func mustStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(tb))
	require.NoError(tb, err)
	cfg.MaxConns = 24
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	s, err := eventstore.New(pool, reg)
	require.NoError(tb, err)
	return s
}

func mustCursors(tb testing.TB) *fanout.Cursors {
	tb.Helper()
	c, err := fanout.NewCursors(testKey)
	require.NoError(tb, err)
	return c
}

func mustDeriver(tb testing.TB, s *eventstore.Store) *fanout.Deriver {
	tb.Helper()
	d, err := fanout.NewDeriver(s, mustCursors(tb))
	require.NoError(tb, err)
	return d
}

// world appends domain events as the use cases would, each with its owner.
type world struct {
	tb    testing.TB
	store *eventstore.Store
	at    time.Time
}

func newWorld(tb testing.TB, s *eventstore.Store) *world {
	return &world{tb: tb, store: s, at: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (w *world) now() time.Time {
	w.at = w.at.Add(time.Second)
	return w.at
}

// appendTo appends events to one stream of owner at its current version.
func (w *world) appendTo(owner uuid.UUID, stream eventstore.Stream, events ...eventstore.Event) {
	w.tb.Helper()
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: owner, Actor: "test"})
	err := w.store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		var v int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1`, stream.ID).Scan(&v); err != nil {
			return err
		}
		_, err := tx.Append(ctx, stream, v, events...)
		return err
	})
	require.NoError(w.tb, err)
}

// connect creates an active connection of owner and returns its id.
func (w *world) connect(owner uuid.UUID) uuid.UUID {
	id := uuid.New()
	s := eventstore.Stream{Type: eventstore.StreamConnection, ID: id}
	w.appendTo(owner, s, connection.ProviderConnectionAttempted{ConnectionID: id, UserID: owner, ProviderSlug: "sandbox",
		Alias: "secret alias", ExpiresAt: w.at.Add(time.Hour), At: w.now()})
	w.appendTo(owner, s, connection.ProviderConnectionSucceeded{ConnectionID: id,
		Credentials: connection.Credentials{KeyID: "k", Fingerprint: "f", AccessExpiresAt: w.at.Add(time.Hour)}, At: w.now()})
	return id
}

// openAccount opens an account of the connection and returns its id.
func (w *world) openAccount(owner, conn uuid.UUID, n int) uuid.UUID {
	id := eventstore.AccountStreamID(conn, fmt.Sprintf("acct-%d", n))
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamAccount, ID: id}, account.AccountOpened{AccountID: id, ConnectionID: conn,
		UserID: owner, SyncID: uuid.New(), Details: account.Details{ProviderAccountID: fmt.Sprintf("acct-%d", n), Name: "Private name",
			Type: "checking", Currency: "USD", MaskedNumber: "1234"}, At: w.now()})
	return id
}

// balance records a balance of the account.
func (w *world) balance(owner, acct uuid.UUID, amount int64) {
	w.appendTo(owner, eventstore.Stream{Type: eventstore.StreamAccount, ID: acct}, account.AccountBalanceRecorded{AccountID: acct,
		SyncID: uuid.New(), Balance: account.Balance{Current: decimal.NewFromInt(amount), Currency: "USD"}, At: w.now()})
}

// txData is transaction data numbered n.
func txData(n int, pending bool, amount int64) transaction.Data {
	return transaction.Data{ProviderTransactionID: fmt.Sprintf("t-%d", n), Type: "purchase", Pending: pending,
		Amount: decimal.NewFromInt(amount), Currency: "USD", Description: "coffee shop", Date: "2026-02-01"}
}

// settled waits until every committed event is behind the xid horizon: a
// transaction open anywhere in the cluster (another test package) holds
// reads of the log back for as long as it lasts.
func settled(tb testing.TB, s *eventstore.Store) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		var n int
		require.NoError(tb, s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
		recs, err := s.ReadAll(context.Background(), eventstore.Position{}, n+1)
		require.NoError(tb, err)
		return len(recs) == n
	}, 30*time.Second, 5*time.Millisecond)
}
