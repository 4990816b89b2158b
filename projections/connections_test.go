package projections_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// syncNoticed stands for the event types later features add to a
// connection's stream (syncs): the projector must pass over them.
type syncNoticed struct {
	At time.Time `json:"at"`
}

func (syncNoticed) EventType() string { return "TestSyncNoticed" }

// connectionStore returns a store whose registry knows the connection
// events, as the application's does.
func connectionStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	reg := eventstore.NewRegistry()
	eventstore.Register[connection.ProviderConnectionAttempted](reg, 1)
	eventstore.Register[connection.ProviderConnectionSucceeded](reg, 1)
	eventstore.Register[connection.ProviderConnectionFailed](reg, 1)
	eventstore.Register[connection.ProviderTokenRefreshAttempted](reg, 1)
	eventstore.Register[connection.ProviderTokenRefreshSucceeded](reg, 1)
	eventstore.Register[connection.ProviderTokenRefreshFailed](reg, 1)
	eventstore.Register[connection.ProviderReauthenticationRequired](reg, 1)
	eventstore.Register[connection.ProviderConnectionRenamed](reg, 1)
	eventstore.Register[connection.ProviderDisconnectionAttempted](reg, 1)
	eventstore.Register[connection.ProviderDisconnectionSucceeded](reg, 1)
	eventstore.Register[connection.ProviderDisconnectionFailed](reg, 1)
	eventstore.Register[connection.SyncStarted](reg, 1)
	eventstore.Register[connection.SyncPickedUp](reg, 1)
	eventstore.Register[connection.SyncCompleted](reg, 1)
	eventstore.Register[connection.SyncFailed](reg, 1)
	eventstore.Register[syncNoticed](reg, 1)
	s, err := eventstore.New(mustPool(tb), reg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// walk is one connection driven through its aggregate at random.
type walk struct {
	c       *connection.Connection
	version int64
	user    uuid.UUID
}

// connectionLog appends n connections' random lives (interleaved, one
// decision per append, as the use cases append them) for users, and
// returns the aggregates as they end up: the truth the read model must
// match. Every decision is the aggregate's own, so the log holds only
// what the application could write.
func connectionLog(t *testing.T, store *eventstore.Store, rng *rand.Rand, users []uuid.UUID, n, steps int) map[uuid.UUID]*walk {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	walks := map[uuid.UUID]*walk{}
	var order []uuid.UUID
	appendTo := func(w *walk, events []connection.Event) {
		if len(events) == 0 {
			return
		}
		evs := make([]eventstore.Event, len(events))
		for i, e := range events {
			evs[i] = e
		}
		res, err := store.Append(ctx, eventstore.Stream{Type: eventstore.StreamConnection, ID: w.c.ID()}, w.version, evs...)
		if err != nil {
			t.Fatal(err)
		}
		w.version = res.Version
		w.c.Apply(events...)
	}
	creds := func(at time.Time) connection.Credentials {
		fp := make([]byte, 8)
		for i := range fp {
			fp[i] = byte(rng.IntN(256))
		}
		c := connection.Credentials{KeyID: "k1", Fingerprint: hex.EncodeToString(fp), AccessExpiresAt: at.Add(30 * time.Minute)}
		if rng.IntN(3) > 0 {
			c.RefreshExpiresAt = at.Add(7 * 24 * time.Hour)
		}
		return c
	}
	reasons := []connection.FailureReason{connection.FailedAccessDenied, connection.FailedExpired, connection.FailedProviderError,
		connection.FailedAuthentication, connection.FailedRefreshTokenExpired}
	for i := range n * steps {
		now = now.Add(time.Duration(1+rng.IntN(10)) * time.Second).Add(time.Duration(rng.IntN(1_000_000)) * time.Microsecond)
		if i%steps == 0 {
			id := uuid.New()
			w := &walk{c: connection.New(id), user: users[rng.IntN(len(users))]}
			walks[id], order = w, append(order, id)
			events, err := w.c.Start(connection.Start{UserID: w.user, ProviderSlug: []string{"sandbox", "schwab"}[rng.IntN(2)],
				Alias: fmt.Sprintf("  Account %d ", i), ExpiresAt: now.Add(10 * time.Minute), At: now})
			if err != nil {
				t.Fatal(err)
			}
			appendTo(w, events)
			continue
		}
		// Mostly one of the newest connections, whose authorisation is
		// still in time; now and then any of them.
		pick := order[max(len(order)-3, 0):]
		if rng.IntN(4) == 0 {
			pick = order
		}
		w := walks[pick[rng.IntN(len(pick))]]
		var (
			events []connection.Event
			err    error
		)
		switch rng.IntN(13) {
		case 0, 1:
			events, err = w.c.Complete(creds(now), now)
		case 2:
			events, err = w.c.Fail(reasons[rng.IntN(len(reasons))], now)
		case 3:
			events, err = w.c.Reauthorize(now.Add(10*time.Minute), now)
		case 4:
			events, err = w.c.AttemptRefresh(connection.RefreshManual, now)
		case 5:
			events, err = w.c.RefreshSucceeded(creds(now), now)
		case 6:
			events, err = w.c.RefreshFailed(reasons[rng.IntN(len(reasons))], rng.IntN(2) == 0, now)
		case 7:
			events, err = w.c.RequireReauthentication(connection.FailedRefreshTokenExpired, now)
		case 8:
			events, err = w.c.Rename(fmt.Sprintf("Renamed %d", i), now)
		case 9:
			if rng.IntN(3) == 0 {
				events, err = w.c.AttemptDisconnect(now)
			} else {
				var failure connection.FailureReason // success, or the provider could not revoke
				if rng.IntN(2) == 0 {
					failure = connection.FailedProviderUnavailable
				}
				events, err = w.c.Disconnected(failure == "", failure, now)
			}
		case 10, 11:
			// A sync, started and (mostly) completed: its completion is
			// the list's last_sync_at.
			day := now.Format(time.DateOnly)
			syncID := uuid.New()
			events, err = w.c.StartSync(connection.SyncRequest{SyncID: syncID, Trigger: connection.SyncManual,
				Force: true, From: day, To: day, At: now})
			if err == nil && rng.IntN(4) > 0 {
				appendTo(w, events)
				events, err = w.c.CompleteSync(syncID, connection.SyncResult{Accounts: 1}, now.Add(time.Second))
			}
		case 12:
			// A type the projector does not fold, between the others.
			res, err := store.Append(ctx, eventstore.Stream{Type: eventstore.StreamConnection, ID: w.c.ID()}, w.version, syncNoticed{At: now})
			if err != nil {
				t.Fatal(err)
			}
			w.version = res.Version
			continue
		}
		if err != nil {
			continue // the aggregate refused: nothing is appended, as in the use cases
		}
		appendTo(w, events)
	}
	return walks
}

// wantView is what the list must show of w's connection: the aggregate's
// state, shown the way commands/connections' view shows it.
func wantView(w *walk) projections.ConnectionView {
	c := w.c
	v := projections.ConnectionView{ID: c.ID(), UserID: c.UserID(), ProviderSlug: c.ProviderSlug(), Alias: c.Alias(),
		Status: c.Status(), CreatedAt: c.CreatedAt(), ConnectedAt: ptr(c.ConnectedAt()), ReauthorizeBy: ptr(c.ReauthorizeBy()),
		DisconnectedAt: ptr(c.DisconnectedAt()), LastSyncAt: ptr(c.LastSyncAt())}
	if c.Status() == connection.StatusActive {
		v.AccessExpiresAt = ptr(c.Credentials().AccessExpiresAt)
	}
	return v
}

func ptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// listAll pages through user's connections limit at a time.
func listAll(t *testing.T, q eventstore.Querier, user uuid.UUID, limit int) []projections.ConnectionView {
	t.Helper()
	var all []projections.ConnectionView
	var after *projections.ConnectionKey
	for {
		page, err := projections.ListConnections(context.Background(), q, user, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		k := page[len(page)-1].Key()
		after = &k
	}
}

// checkConnections asserts that every user's list holds exactly their
// connections, oldest first, each as its aggregate shows it.
func checkConnections(t *testing.T, q eventstore.Querier, users []uuid.UUID, walks map[uuid.UUID]*walk) {
	t.Helper()
	for _, u := range users {
		var want []projections.ConnectionView
		for _, w := range walks {
			if w.user == u {
				want = append(want, wantView(w))
			}
		}
		slices.SortFunc(want, func(a, b projections.ConnectionView) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return slices.Compare(a.ID[:], b.ID[:])
		})
		got := listAll(t, q, u, 4)
		if len(got) != len(want) {
			t.Fatalf("user %s: %d connections listed, want %d", u, len(got), len(want))
		}
		for i := range want {
			if msg := diffView(got[i], want[i]); msg != "" {
				t.Errorf("user %s, connection %d (%s): %s", u, i, want[i].ID, msg)
			}
		}
	}
}

func diffView(got, want projections.ConnectionView) string {
	sameTime := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	switch {
	case got.ID != want.ID || got.UserID != want.UserID || got.ProviderSlug != want.ProviderSlug:
		return fmt.Sprintf("identity %+v, want %+v", got, want)
	case got.Alias != want.Alias:
		return fmt.Sprintf("alias %q, want %q", got.Alias, want.Alias)
	case got.Status != want.Status:
		return fmt.Sprintf("status %s, want %s", got.Status, want.Status)
	case !got.CreatedAt.Equal(want.CreatedAt), !sameTime(got.ConnectedAt, want.ConnectedAt),
		!sameTime(got.ReauthorizeBy, want.ReauthorizeBy), !sameTime(got.AccessExpiresAt, want.AccessExpiresAt),
		!sameTime(got.DisconnectedAt, want.DisconnectedAt), !sameTime(got.LastSyncAt, want.LastSyncAt):
		return fmt.Sprintf("times %+v, want %+v", got, want)
	}
	return ""
}

// TestConnectionsProjectorFoldsLikeTheAggregate drives a hundred
// connections through random lives decided by the aggregate itself,
// projects the log live in small batches, and checks every user's list
// against the aggregates, paged; then rebuilds and checks again.
func TestConnectionsProjectorFoldsLikeTheAggregate(t *testing.T) {
	t.Parallel()
	store := connectionStore(t)
	users := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	rng := rand.New(rand.NewPCG(7, 11))
	walks := connectionLog(t, store, rng, users, 100, 12)
	statuses := map[connection.Status]int{}
	for _, w := range walks {
		statuses[w.c.Status()]++
	}
	for _, s := range []connection.Status{connection.StatusPending, connection.StatusActive, connection.StatusNeedsReauth,
		connection.StatusFailed, connection.StatusDisconnected} {
		if statuses[s] == 0 {
			t.Fatalf("the random lives reach no %s connection (%v): change the seed", s, statuses)
		}
	}

	m, err := projections.NewManager(store, []projections.Projector{projections.Connections{}},
		opts(projections.WithBatchSize(7), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, m.Start)
	eventually(t, "the connections projector catching up", caughtUp(t, m))
	checkConnections(t, store.Pool(), users, walks)
	stop()

	if err := m.Rebuild(context.Background(), "connections", nil); err != nil {
		t.Fatal(err)
	}
	checkConnections(t, store.Pool(), users, walks)
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Parked != 0 {
		t.Fatalf("%d events parked", st[0].Parked)
	}
}

// TestConnectionsProjectorToleratesBatchesAgain applies the log, then the
// same batches again and overlapping ones, within one transaction, as a
// consumer does after a savepoint rollback or a repeated delivery: the
// rows end as after one pass.
func TestConnectionsProjectorToleratesBatchesAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := connectionStore(t)
	users := []uuid.UUID{uuid.New(), uuid.New()}
	walks := connectionLog(t, store, rand.New(rand.NewPCG(3, 5)), users, 20, 10)
	if err := projections.Ensure(ctx, testdb.Owner(t, store.Pool()), projections.Connections{}); err != nil {
		t.Fatal(err)
	}
	// The log is read behind the cluster-wide horizon, which other tests'
	// transactions hold back: wait until it has passed every event.
	var records []eventstore.Record
	eventually(t, "the horizon passing the log", func() bool {
		var err error
		if records, err = store.ReadAll(ctx, eventstore.Position{}, 100_000); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return len(records) == n
	})
	p, tables := projections.Connections{}, projections.LiveTables(projections.Connections{})
	err := pgx.BeginFunc(ctx, store.Pool(), func(tx pgx.Tx) error {
		for i := 0; i < len(records); i += 9 {
			batch := records[i:min(i+9, len(records))]
			for range 2 {
				if err := p.Apply(ctx, tx, tables, batch); err != nil {
					return err
				}
			}
			// A batch overlapping the one before it and, sometimes, this one.
			if err := p.Apply(ctx, tx, tables, records[max(i-5, 0):min(i+4, len(records))]); err != nil {
				return err
			}
		}
		checkConnections(t, tx, users, walks)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConnectionsProjectorRefusesWhatItCannotFold: an event it folds that
// does not decode, comes in an unknown schema version or before the
// connection was attempted is an error (the consumer parks it), never a
// silently wrong row.
func TestConnectionsProjectorRefusesWhatItCannotFold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := connectionStore(t)
	if err := projections.Ensure(ctx, testdb.Owner(t, store.Pool()), projections.Connections{}); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	stream := eventstore.Stream{Type: eventstore.StreamConnection, ID: id}
	attempted := `{"connection_id":"` + id.String() + `","user_id":"` + uuid.NewString() +
		`","provider_slug":"sandbox","alias":"A","expires_at":"2025-01-01T00:10:00Z","at":"2025-01-01T00:00:00Z"}`
	for name, batch := range map[string][]eventstore.Record{
		"before the attempt": {{Stream: stream, Version: 1, EventType: "ProviderConnectionSucceeded", SchemaVersion: 1, Payload: []byte(`{}`)}},
		"unknown schema version": {{Stream: stream, Version: 1, EventType: "ProviderConnectionAttempted", SchemaVersion: 2,
			Payload: []byte(attempted)}},
		"malformed payload": {
			{Stream: stream, Version: 1, EventType: "ProviderConnectionAttempted", SchemaVersion: 1, Payload: []byte(attempted)},
			{Stream: stream, Version: 2, EventType: "ProviderConnectionRenamed", SchemaVersion: 1, Payload: []byte(`{"alias": 5}`)},
		},
	} {
		tx, err := store.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = projections.Connections{}.Apply(ctx, tx, projections.LiveTables(projections.Connections{}), batch)
		_ = tx.Rollback(ctx)
		if err == nil {
			t.Errorf("%s: applied", name)
		}
	}
}
