package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web"
)

// streamBench is one server with a real hub over a fresh database.
type streamBench struct {
	store *eventstore.Store
	srv   *testServer
	id    *fakeIdentity
}

func newStreamBench(b *testing.B) *streamBench {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(b))
	require.NoError(b, err)
	cfg.MaxConns = 16
	testdb.ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(pool, reg)
	require.NoError(b, err)
	cursors, err := fanout.NewCursors([]byte(strings.Repeat("k", 32)))
	require.NoError(b, err)
	deriver, err := fanout.NewDeriver(store, cursors)
	require.NoError(b, err)
	hub, err := fanout.NewHub(store, deriver, fanout.HubConfig{NotifyChannel: projections.NotifyChannel})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	id := newFakeIdentity(b, &fakeClock{now: testEpoch})
	srv := MustServer(b, web.Options{Identity: id, Streams: web.HubStreams{Hub: hub}})
	return &streamBench{store: store, srv: srv, id: id}
}

// listen opens perUser streams for each of users users and calls got with
// the connection id of every event a stream receives; it returns the
// users' ids once every stream is open, and a function closing them.
func (sb *streamBench) listen(b *testing.B, users, perUser int, got func(conn string)) ([]uuid.UUID, func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, users)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: perUser * users}}
	for u := range users {
		token, p := sb.id.MustToken(b, user.RoleUser)
		ids[u] = p.UserID
		for range perUser {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, sb.srv.URL+"/api/v1/events", nil)
			require.NoError(b, err)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			require.NoError(b, err)
			require.Equal(b, http.StatusOK, resp.StatusCode)
			wg.Go(func() {
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					line, ok := strings.CutPrefix(sc.Text(), "data: ")
					if !ok {
						continue
					}
					var e struct {
						Data struct {
							ConnectionID string `json:"connection_id"`
						} `json:"data"`
					}
					if json.Unmarshal([]byte(line), &e) == nil {
						got(e.Data.ConnectionID)
					}
				}
			})
		}
	}
	return ids, func() { cancel(); wg.Wait() }
}

// measure appends rounds rounds of one event per user (a connection
// attempt, which derives connection.status_changed), eight appenders at a
// time, and returns each stream's delay from just before the append's
// commit to the event's arrival.
func (sb *streamBench) measure(b *testing.B, users, perUser, rounds, eventsPerRound int) []time.Duration {
	b.Helper()
	var (
		mu       sync.Mutex
		sent     = map[string]time.Time{}
		delays   []time.Duration
		received = make(chan struct{}, 1<<16)
	)
	owners, stop := sb.listen(b, users, perUser, func(conn string) {
		now := time.Now()
		mu.Lock()
		delays = append(delays, now.Sub(sent[conn]))
		mu.Unlock()
		received <- struct{}{}
	})
	defer stop()
	for range rounds {
		work := make(chan uuid.UUID)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for owner := range work {
					conn := uuid.New()
					ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: owner, Actor: "bench"})
					mu.Lock()
					sent[conn.String()] = time.Now()
					mu.Unlock()
					_, err := sb.store.Append(ctx, eventstore.Stream{Type: eventstore.StreamConnection, ID: conn}, 0,
						connection.ProviderConnectionAttempted{ConnectionID: conn, UserID: owner, ProviderSlug: "sandbox",
							ExpiresAt: testEpoch.Add(time.Hour), At: testEpoch})
					if err != nil {
						b.Error(err)
					}
				}
			})
		}
		for i := range eventsPerRound {
			work <- owners[i%len(owners)]
		}
		close(work)
		wg.Wait()
		for range eventsPerRound * perUser {
			select {
			case <-received:
			case <-time.After(time.Minute):
				b.Fatal("an event did not reach its streams")
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(delays)
}

// percentile returns the p-th percentile of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// BenchmarkEventStreams: 1,000 Server-Sent Events streams held open on
// one instance (200 users, five streams each, the per-user limit); each
// round commits one event for every user, and every stream of the user
// must receive it. Reported: the 50th and 99th percentile of the delay
// from commit to arrival, over every stream. Baseline, same run: one
// stream receiving the same number of events.
func BenchmarkEventStreams(b *testing.B) {
	const users, perUser = 200, 5
	sb := newStreamBench(b)
	sb.measure(b, 1, 1, 1, users) // warms the hub, the pools and the statement caches
	base := sb.measure(b, 1, 1, max(b.N, 3), users)
	b.ResetTimer()
	delays := sb.measure(b, users, perUser, b.N, users)
	b.StopTimer()
	require.Len(b, delays, b.N*users*perUser)
	b.ReportMetric(float64(percentile(delays, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(percentile(delays, 0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(percentile(base, 0.99).Microseconds())/1000, "baseline_1_stream_p99_ms")
	b.ReportMetric(users*perUser, "streams")
}
