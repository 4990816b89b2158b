package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
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
	eventstore.StreamUser:       userScenario,
	eventstore.StreamConnection: connectionScenario,
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
	_, err = aggs.Reader(eventstore.StreamAccount)
	require.ErrorIs(t, err, eventstore.ErrNoStateReader)
}

func newRegistry() *eventstore.Registry {
	r := eventstore.NewRegistry()
	commands.RegisterEvents(r)
	return r
}
