package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// stateScenario drives one aggregate through a history on the generic
// path; step is called after each decision with the stream's id.
type stateScenario func(t *testing.T, ctx context.Context, store *eventstore.Store, now func() time.Time, step func(id uuid.UUID))

// stateScenarios has one history per described aggregate; the test fails
// for an aggregate described without one, so a new aggregate gets its
// as-of test when it plugs in.
var stateScenarios = map[eventstore.StreamType]stateScenario{
	eventstore.StreamUser:        userScenario,
	eventstore.StreamConnection:  connectionScenario,
	eventstore.StreamAccount:     accountScenario,
	eventstore.StreamTransaction: transactionScenario,
}

func update[A any, E eventstore.Event](t *testing.T, ctx context.Context, repo *eventstore.Repository[A, E], id uuid.UUID, decide func(A) ([]E, error)) {
	t.Helper()
	_, err := repo.Update(ctx, id, func(_ context.Context, _ *eventstore.Tx, a A) (eventstore.Decision[E], error) {
		events, err := decide(a)
		return eventstore.Decision[E]{Events: events}, err
	})
	require.NoError(t, err)
}

func userScenario(t *testing.T, ctx context.Context, store *eventstore.Store, now func() time.Time, step func(uuid.UUID)) {
	repo, err := eventstore.NewRepository(store, commands.UserAggregate())
	require.NoError(t, err)
	repo.SetSnapshotEvery(3) // the live path loads from snapshots; as-of must agree anyway
	id, s1, s2, req := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	do := func(decide func(*user.User) ([]user.Event, error)) {
		update(t, ctx, repo, id, decide)
		step(id)
	}
	login := func(sid uuid.UUID, ok bool) func(*user.User) ([]user.Event, error) {
		return func(u *user.User) ([]user.Event, error) {
			at := now()
			events, err := u.Login(user.LoginAttempt{SessionID: sid, PasswordMatches: ok, IP: "192.0.2.9", UserAgent: "ua",
				Device: "Firefox on Linux", At: at, ExpiresAt: at.Add(7 * time.Minute)})
			if !ok && errors.Is(err, user.ErrInvalidCredentials) {
				err = nil
			}
			return events, err
		}
	}
	do(func(u *user.User) ([]user.Event, error) {
		return u.Register(id, "ann@example.com", user.RoleUser, now())
	})
	do(func(u *user.User) ([]user.Event, error) { return u.RequestVerification(req, now()) })
	do(func(u *user.User) ([]user.Event, error) { return u.VerifyEmail(req, now()) })
	do(login(s1, false))
	do(login(s1, true))
	do(login(s2, true))
	do(func(u *user.User) ([]user.Event, error) {
		return u.SetRoles([]user.Role{user.RoleUser, user.RoleAuditor}, now())
	})
	do(func(u *user.User) ([]user.Event, error) { return u.Logout(s1, now()) })
	do(func(u *user.User) ([]user.Event, error) { return u.RotateTokens("audit drill", now()) })
	do(func(u *user.User) ([]user.Event, error) { return u.SetRoles([]user.Role{user.RoleAuditor}, now()) })
}

func connectionScenario(t *testing.T, ctx context.Context, store *eventstore.Store, now func() time.Time, step func(uuid.UUID)) {
	repo, err := eventstore.NewRepository(store, commands.ConnectionAggregate())
	require.NoError(t, err)
	id, owner := uuid.New(), uuid.New()
	do := func(decide func(*connection.Connection) ([]connection.Event, error)) {
		update(t, ctx, repo, id, decide)
		step(id)
	}
	creds := func(fp string) connection.Credentials {
		return connection.Credentials{KeyID: "k1", Fingerprint: fp, AccessExpiresAt: now().Add(time.Hour), RefreshExpiresAt: now().Add(90 * time.Hour)}
	}
	do(func(c *connection.Connection) ([]connection.Event, error) {
		return c.Start(connection.Start{UserID: owner, ProviderSlug: "sandbox", Alias: "Joint checking", ExpiresAt: now().Add(time.Hour), At: now()})
	})
	do(func(c *connection.Connection) ([]connection.Event, error) { return c.Complete(creds("aa"), now()) })
	do(func(c *connection.Connection) ([]connection.Event, error) {
		return c.AttemptRefresh(connection.RefreshScheduled, now())
	})
	do(func(c *connection.Connection) ([]connection.Event, error) {
		return c.RefreshSucceeded(creds("bb"), now())
	})
	do(func(c *connection.Connection) ([]connection.Event, error) { return c.Rename("Household", now()) })
	do(func(c *connection.Connection) ([]connection.Event, error) {
		return c.RefreshFailed(connection.FailedAuthentication, false, now())
	})
	do(func(c *connection.Connection) ([]connection.Event, error) {
		return c.Reauthorize(now().Add(time.Hour), now())
	})
	do(func(c *connection.Connection) ([]connection.Event, error) { return c.Complete(creds("cc"), now()) })
	do(func(c *connection.Connection) ([]connection.Event, error) { return c.AttemptDisconnect(now()) })
	do(func(c *connection.Connection) ([]connection.Event, error) { return c.Disconnected(true, "", now()) })
}

func accountScenario(t *testing.T, ctx context.Context, store *eventstore.Store, now func() time.Time, step func(uuid.UUID)) {
	repo, err := eventstore.NewRepository(store, commands.AccountAggregate())
	require.NoError(t, err)
	id, conn, owner := uuid.New(), uuid.New(), uuid.New()
	do := func(decide func(*account.Account) ([]account.Event, error)) {
		update(t, ctx, repo, id, decide)
		step(id)
	}
	details := account.Details{ProviderAccountID: "acct-1", Name: "Checking", Type: "checking", Currency: "USD",
		MaskedNumber: "****1234", Raw: []byte(`{"id":"acct-1"}`)}
	observe := func(d account.Details, balance string, holdings []account.Holding, known bool) func(*account.Account) ([]account.Event, error) {
		return func(a *account.Account) ([]account.Event, error) {
			o := account.Observation{ConnectionID: conn, UserID: owner, SyncID: uuid.New(), Details: d,
				Holdings: holdings, HoldingsKnown: known, At: now()}
			if balance != "" {
				o.Balance = &account.Balance{Current: decimal.RequireFromString(balance), Currency: "USD"}
			}
			return a.Observe(o)
		}
	}
	apple := account.Holding{Symbol: "AAPL", Quantity: decimal.RequireFromString("3"), MarketValue: decimal.RequireFromString("570.30"), Currency: "USD"}
	do(observe(details, "100.00", nil, false))
	do(observe(details, "250.75", nil, false))
	do(observe(details, "", []account.Holding{apple}, true))
	renamed := details
	renamed.Name = "Everyday checking"
	do(observe(renamed, "", nil, false))
	do(observe(renamed, "-12.50", nil, true)) // a new balance, and the holdings sold
	do(func(a *account.Account) ([]account.Event, error) { return a.Close(account.ClosedDisconnected, now()) })
	do(observe(renamed, "", nil, false)) // reopened by a later sync
}

func transactionScenario(t *testing.T, ctx context.Context, store *eventstore.Store, now func() time.Time, step func(uuid.UUID)) {
	repo, err := eventstore.NewRepository(store, commands.TransactionAggregate())
	require.NoError(t, err)
	id, acct, conn := uuid.New(), uuid.New(), uuid.New()
	do := func(decide func(*transaction.Transaction) ([]transaction.Event, error)) {
		update(t, ctx, repo, id, decide)
		step(id)
	}
	data := transaction.Data{ProviderTransactionID: "tx-1", Type: commands.TransactionTypeBuy, Pending: true,
		Amount: decimal.RequireFromString("-42.10"), Currency: "USD", Description: "Coffee", Date: "2026-03-01",
		Raw: []byte(`{"id":"tx-1"}`)}
	observe := func(d transaction.Data) func(*transaction.Transaction) ([]transaction.Event, error) {
		return func(x *transaction.Transaction) ([]transaction.Event, error) {
			return x.Observe(transaction.Observation{AccountID: acct, ConnectionID: conn, SyncID: uuid.New(), Data: d, At: now()})
		}
	}
	do(observe(data))
	corrected := data
	corrected.Amount = decimal.RequireFromString("-42.60")
	do(observe(corrected))
	do(func(x *transaction.Transaction) ([]transaction.Event, error) { return x.Remove(uuid.New(), now()) })
	do(observe(corrected)) // reappeared
	posted := corrected
	posted.Pending, posted.SettlementDate = false, "2026-03-03"
	do(observe(posted))
}

// TestStateAsOfEqualsLiveState drives every described aggregate through a
// history and, after each decision, records the live state (the generic
// path's Load, snapshots and all) at the moment its last event was
// recorded; then it asks for the state as of each of those moments and
// requires the same state, version and position.
func TestStateAsOfEqualsLiveState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	// Decisions move the clock on; the store stamps events with it as it
	// stands, so each step's events are recorded at its last decision time.
	now := func() time.Time {
		clock = clock.Add(time.Minute)
		return clock
	}
	store, err := eventstore.New(testdb.New(t), newRegistry(), eventstore.WithClock(func() time.Time { return clock }))
	require.NoError(t, err)
	aggs, err := commands.DescribedAggregates(store)
	require.NoError(t, err)
	for _, typ := range aggs.Types() {
		t.Run(string(typ), func(t *testing.T) {
			scenario, ok := stateScenarios[typ]
			require.True(t, ok, "aggregate %s is described but has no as-of scenario here", typ)
			reader, err := aggs.Reader(typ)
			require.NoError(t, err)
			type seen struct {
				at   time.Time
				live eventstore.StateView
			}
			var history []seen
			var stream uuid.UUID
			start := clock
			scenario(t, ctx, store, now, func(id uuid.UUID) {
				stream = id
				live, err := reader.StateNow(ctx, store.Pool(), id, clock)
				require.NoError(t, err)
				require.Equal(t, clock, live.RecordedAt.UTC(), "the head was recorded now")
				history = append(history, seen{at: clock, live: live})
			})
			require.GreaterOrEqual(t, len(history), 5)
			for i, h := range history {
				got, err := reader.StateAsOf(ctx, store.Pool(), stream, h.at)
				require.NoError(t, err)
				require.Equal(t, h.live, got, "step %d, as of %s", i, h.at)
				// Any moment before the next event sees the same state.
				if i+1 < len(history) {
					got, err = reader.StateAsOf(ctx, store.Pool(), stream, h.at.Add(30*time.Second))
					require.NoError(t, err)
					require.Equal(t, h.live.Version, got.Version)
				}
			}
			_, err = reader.StateAsOf(ctx, store.Pool(), stream, start)
			require.ErrorIs(t, err, eventstore.ErrStreamNotFound, "nothing before the first event")
		})
	}
	_, err = aggs.Reader(eventstore.StreamType("ledger"))
	require.ErrorIs(t, err, eventstore.ErrNoStateReader)
}

// TestEveryStreamTypeIsDescribed: audit state answers for every aggregate
// the project has, so every stream type has a reader (and, through
// TestStateAsOfEqualsLiveState, a history proving it).
func TestEveryStreamTypeIsDescribed(t *testing.T) {
	t.Parallel()
	store, err := eventstore.New(testdb.New(t), newRegistry())
	require.NoError(t, err)
	aggs, err := commands.DescribedAggregates(store)
	require.NoError(t, err)
	for _, typ := range eventstore.StreamTypes {
		_, err := aggs.Reader(typ)
		require.NoError(t, err, "stream type %s", typ)
	}
}

func newRegistry() *eventstore.Registry {
	r := eventstore.NewRegistry()
	commands.RegisterEvents(r)
	return r
}
