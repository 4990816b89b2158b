package connections_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// The provider the refresh benchmark runs against: it answers after
// benchLatency and allows benchPerMinute refreshes a minute, refusing
// with 429 beyond it.
const (
	benchLatency   = 50 * time.Millisecond
	benchPerMinute = 6000
	// benchBurst is the limiter's tolerance, in requests: a token bucket
	// of benchPerMinute a minute holding benchBurst tokens, the usual
	// shape of an API gateway's limit. It forgives 100 ms of jitter in
	// the arrival of paced calls, never a sustained excess (see
	// docs/connections.md on strict sliding windows).
	benchBurst = 10
	// benchWorkers is river's MaxWorkers: 100 calls/s × 50 ms needs 5
	// in flight, the rest covers the database work around each call on a
	// loaded machine. 50 ran no faster and, competing for two cores, kept
	// transactions (and so the projectors' horizon) open longer.
	benchWorkers = 20
)

// benchProvider is a provider whose token endpoint is a benchServer; it
// only refreshes.
type benchProvider struct {
	url    string
	client *http.Client
}

// Info names the bench provider.
func (benchProvider) Info() commands.ProviderInfo {
	return commands.ProviderInfo{Slug: "bench", Name: "Bench Bank", AuthType: "oauth2"}
}

// AuthorizationURL is never followed: the benchmark seeds its connections.
func (benchProvider) AuthorizationURL(state, _ string) string {
	return "http://bench.invalid/?state=" + state
}

// Exchange, Accounts, Transactions and Holdings are not benchmarked.
func (benchProvider) Exchange(context.Context, string, string) (commands.Credentials, error) {
	return commands.Credentials{}, commands.ErrProviderUnavailable
}
func (benchProvider) Accounts(context.Context, commands.Credentials) ([]commands.ProviderAccount, error) {
	return nil, commands.ErrProviderUnavailable
}
func (benchProvider) Transactions(context.Context, commands.Credentials, string, time.Time, time.Time) ([]commands.ProviderTransaction, error) {
	return nil, commands.ErrProviderUnavailable
}
func (benchProvider) Holdings(context.Context, commands.Credentials, string) ([]commands.ProviderHolding, error) {
	return nil, commands.ErrProviderUnavailable
}

// Refresh posts the refresh token and maps the answer.
func (p benchProvider) Refresh(ctx context.Context, c commands.Credentials) (commands.Credentials, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, strings.NewReader(url.Values{"refresh_token": {c.RefreshToken}}.Encode()))
	if err != nil {
		return commands.Credentials{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		return commands.Credentials{}, fmt.Errorf("%w: %w", commands.ErrProviderUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return commands.Credentials{}, &commands.RateLimitedError{RetryAfter: time.Duration(secs) * time.Second}
	case resp.StatusCode != http.StatusOK:
		return commands.Credentials{}, commands.ErrProviderUnavailable
	}
	var tok struct {
		Access    string `json:"access_token"`
		Refresh   string `json:"refresh_token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return commands.Credentials{}, commands.ErrProviderInvalidResponse
	}
	return commands.Credentials{AccessToken: tok.Access, RefreshToken: tok.Refresh, TokenType: "Bearer",
		AccessExpiresAt: start.Add(time.Duration(tok.ExpiresIn) * time.Second)}, nil
}

// benchServer is the provider's token endpoint: a token bucket in front of
// benchLatency of work, counting what it answered and when requests came.
type benchServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	tokens   float64
	last     time.Time
	arrivals []time.Time
	ok, r429 int
}

func newBenchServer(tb testing.TB) *benchServer {
	s := &benchServer{tokens: benchBurst}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		s.mu.Lock()
		if !s.last.IsZero() {
			s.tokens = min(benchBurst, s.tokens+now.Sub(s.last).Seconds()*benchPerMinute/60)
		}
		s.last = now
		s.arrivals = append(s.arrivals, now)
		allowed := s.tokens >= 1
		if allowed {
			s.tokens--
			s.ok++
		} else {
			s.r429++
		}
		s.mu.Unlock()
		if !allowed {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		time.Sleep(benchLatency) // the provider's own work, not synchronisation
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + hex.EncodeToString(b[:12]),
			"refresh_token": "rt-" + hex.EncodeToString(b[12:]), "expires_in": 1800})
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

// counts returns the answers so far: refreshes served and 429s.
func (s *benchServer) counts() (ok, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok, s.r429
}

// maxPerMinute is the most requests that arrived within any 60 seconds.
func (s *benchServer) maxPerMinute() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, j := 0, 0
	for i, t := range s.arrivals {
		for t.Sub(s.arrivals[j]) >= time.Minute {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func (s *benchServer) provider() benchProvider {
	c := s.srv.Client()
	c.Timeout = 30 * time.Second
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 2 * benchWorkers
	return benchProvider{url: s.srv.URL + "/token", client: c}
}

// benchPools opens the application and owner pools of a fresh database.
func benchPools(b *testing.B, appConns int32) (app, owner *pgxpool.Pool) {
	b.Helper()
	appURL, ownerURL := testdb.NewURLs(b)
	open := func(u string, n int32) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(u)
		require.NoError(b, err)
		cfg.MaxConns = n
		p, err := pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(b, err)
		b.Cleanup(p.Close)
		warm(b, p)
		return p
	}
	return open(appURL, appConns), open(ownerURL, 2)
}

// warm opens every connection pool may hold, as a server that has been
// busy before holds them: opening fifty connections at once on a
// two-core machine takes seconds (each a new PostgreSQL backend), during
// which the projectors, waiting for theirs, fall seconds behind.
func warm(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	n := int(pool.Config().MaxConns)
	conns := make([]*pgxpool.Conn, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := pool.Acquire(context.Background())
			if err != nil {
				b.Error(err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			c.Release()
		}
	}
}

// seedConnected stores n connected connections of the bench provider
// whose refresh is due now, in transactions of 500: both events of each
// (through the store's Append), its alias, its sealed credentials and its
// refresh job, as a completed authorisation leaves them, without n OAuth
// flows.
func seedConnected(b *testing.B, store *eventstore.Store, kr *vault.Keyring, client *jobs.Client, n int) {
	b.Helper()
	ctx := context.Background()
	issued := time.Now().UTC().Add(-25 * time.Minute).Truncate(time.Microsecond)
	expires := issued.Add(30 * time.Minute)
	user := uuid.New()
	for from := 0; from < n; from += 500 {
		err := store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			var ids, users []uuid.UUID
			var aliases, keys []string
			var blobs [][]byte
			var fps []string
			var params []river.InsertManyParams
			for i := from; i < min(from+500, n); i++ {
				id, err := uuid.NewV7()
				if err != nil {
					return err
				}
				creds := commands.Credentials{AccessToken: "seed-access-" + id.String(), RefreshToken: "seed-refresh-" + id.String(),
					TokenType: "Bearer", AccessExpiresAt: expires}
				plain, err := json.Marshal(creds)
				if err != nil {
					return err
				}
				blob, keyID, err := kr.Seal(id, plain)
				if err != nil {
					return err
				}
				fp := commands.Fingerprint(creds)
				alias := fmt.Sprintf("Account %05d", i)
				mctx := commands.WithMetadata(ctx, user, commands.ActorSystem, "bench seed", commands.RequestContext{})
				if _, err := tx.Append(mctx, eventstore.Stream{Type: eventstore.StreamConnection, ID: id}, 0,
					connection.ProviderConnectionAttempted{ConnectionID: id, UserID: user, ProviderSlug: "bench", Alias: alias,
						ExpiresAt: issued.Add(connections.AuthorizationTTL), At: issued.Add(-time.Second)},
					connection.ProviderConnectionSucceeded{ConnectionID: id, At: issued,
						Credentials: connection.Credentials{KeyID: keyID, Fingerprint: fp, AccessExpiresAt: expires}}); err != nil {
					return err
				}
				ids, users, aliases, keys, blobs, fps = append(ids, id), append(users, user), append(aliases, strings.ToLower(alias)),
					append(keys, keyID), append(blobs, blob), append(fps, fp)
				params = append(params, river.InsertManyParams{Args: connections.RefreshJob{ConnectionID: id}})
			}
			if _, err := tx.Exec(ctx, `INSERT INTO connection_aliases (connection_id, user_id, provider_slug, alias_key, live)
				SELECT id, u, 'bench', a, true FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS t(id, u, a)`, ids, users, aliases); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO provider_credentials (connection_id, key_id, blob, fingerprint, access_expires_at, updated_at)
				SELECT id, k, bl, f, $5, $6 FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[]) AS t(id, k, bl, f)`,
				ids, keys, blobs, fps, expires, issued); err != nil {
				return err
			}
			_, err := client.River().InsertManyTx(ctx, tx.Tx, params)
			return err
		})
		require.NoError(b, err)
	}
}

// processCPU is the user and system CPU this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lagRecorder collects, per appended event, when the last projector
// committed it, from the projectors' after-commit hook.
type lagRecorder struct {
	mu       sync.Mutex
	projs    int
	from     int64 // only events past this position count
	recorded map[int64]time.Time
	seen     map[int64]int
	done     map[int64]time.Time
	// each holds every projector's own lags, to tell which one is last.
	each map[string][]time.Duration
}

func newLagRecorder(projs int) *lagRecorder {
	return &lagRecorder{projs: projs, recorded: map[int64]time.Time{}, seen: map[int64]int{}, done: map[int64]time.Time{},
		each: map[string][]time.Duration{}}
}

func (l *lagRecorder) afterCommit(name string, batch []eventstore.Record) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range batch {
		if r.GlobalPosition <= l.from {
			continue
		}
		l.each[name] = append(l.each[name], now.Sub(r.RecordedAt))
		l.recorded[r.GlobalPosition] = r.RecordedAt
		l.seen[r.GlobalPosition]++
		if l.seen[r.GlobalPosition] == l.projs {
			l.done[r.GlobalPosition] = now
		}
	}
}

// start forgets what was recorded and counts only events appended after
// position from.
func (l *lagRecorder) start(from int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.from = from
	l.recorded, l.seen, l.done = map[int64]time.Time{}, map[int64]int{}, map[int64]time.Time{}
	l.each = map[string][]time.Duration{}
}

// perProjector describes each projector's own lag p50/p99 in milliseconds.
func (l *lagRecorder) perProjector() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.each))
	for name := range l.each {
		names = append(names, name)
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, name := range names {
		lags := slices.Clone(l.each[name])
		slices.Sort(lags)
		q := func(f float64) float64 {
			return float64(lags[min(len(lags)-1, int(f*float64(len(lags))))].Microseconds()) / 1000
		}
		fmt.Fprintf(&sb, " %s %.1f/%.1f", name, q(0.5), q(0.99))
	}
	return sb.String()
}

// caughtUp reports whether every projector committed n events past from.
func (l *lagRecorder) caughtUp(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done) >= n
}

// quantiles returns the lags' p50, p99 and max, in milliseconds; the lag
// of an event runs from its recorded_at (stamped just before its append's
// INSERT, so it includes that append's commit) to the commit of the last
// projector's batch that holds it.
func (l *lagRecorder) quantiles() (p50, p99, maxMs float64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lags := make([]time.Duration, 0, len(l.done))
	for pos, at := range l.done {
		lags = append(lags, max(0, at.Sub(l.recorded[pos])))
	}
	if len(lags) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(lags)
	q := func(f float64) float64 {
		return float64(lags[min(len(lags)-1, int(f*float64(len(lags))))].Microseconds()) / 1000
	}
	return q(0.5), q(0.99), q(1), len(lags)
}

// headPosition is the log's last global position.
func headPosition(b *testing.B, pool *pgxpool.Pool) int64 {
	var pos int64
	require.NoError(b, pool.QueryRow(context.Background(), `SELECT coalesce(max(global_position), 0) FROM events`).Scan(&pos))
	return pos
}

// countEvents counts the events after position from.
func countEvents(b *testing.B, pool *pgxpool.Pool, from int64) int {
	var n int
	require.NoError(b, pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE global_position > $1`, from).Scan(&n))
	return n
}

// startProjections runs every projector with rec's hook until the
// benchmark ends.
func startProjections(b *testing.B, store *eventstore.Store, owner *pgxpool.Pool, rec *lagRecorder) {
	b.Helper()
	m, err := projections.NewManager(store, projections.All(), projections.WithOwnerPool(owner), projections.WithAfterCommit(rec.afterCommit))
	require.NoError(b, err)
	require.NoError(b, m.Ensure(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			b.Errorf("projections: %v", err)
		}
	})
}

// waitUntil polls cond every interval until it holds, failing after limit.
func waitUntil(b *testing.B, what string, limit, interval time.Duration, cond func() bool) {
	b.Helper()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// BenchmarkRefreshDueAtOnce refreshes 10,000 connections whose refresh is
// due at once, through real river workers and the real pacer set to the
// provider's limit of 6,000 a minute, against a provider that answers in
// 50 ms and refuses with 429 beyond its limit, while every projector runs.
// It reports refreshes/s beside the limit (100/s) and, measured in the
// same run, the rate of the same number of calls paced by the same pacer
// without river, events or the vault (baseline_paced_calls); the 429s;
// and the append-to-read-model lag of the refreshes' events, beside that
// of appends at the same rate with nothing else running (baseline_lag).
func BenchmarkRefreshDueAtOnce(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("DASHTAM_BENCH_REFRESHES")); err == nil && v > 0 {
		n = v // a shorter run while trying a change; the figures of record use 10,000
	}
	var eventRate float64 // of the refresh run, for the lag baseline's rate

	b.Run(fmt.Sprintf("refresh_%d", n), func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			pool, owner := benchPools(b, 40)
			reg := eventstore.NewRegistry()
			commands.RegisterEvents(reg)
			store, err := eventstore.New(pool, reg)
			require.NoError(b, err)
			kr, err := vault.Parse(oldKey)
			require.NoError(b, err)
			srv := newBenchServer(b)
			providers, err := commands.NewProviders(srv.provider())
			require.NoError(b, err)
			pacer, err := ratelimit.NewPacer(pool, map[string]int{"bench": benchPerMinute})
			require.NoError(b, err)
			workers := jobs.NewWorkers()
			client, err := jobs.New(pool, workers, jobs.Config{Work: true, MaxWorkers: benchWorkers, FetchPollInterval: 100 * time.Millisecond})
			require.NoError(b, err)
			h, err := connections.NewHandler(connections.Deps{Store: store, Pool: pool, Providers: providers, Vault: kr, Jobs: client,
				Pacer: pacer, Now: time.Now, Logger: slog.New(slog.DiscardHandler)})
			require.NoError(b, err)
			jobs.Handle(workers, h.RunRefresh)
			jobs.Handle(workers, func(context.Context, commands.UserMail) error { return nil })

			seedStart := time.Now()
			seedConnected(b, store, kr, client, n)
			b.Logf("seeded %d connections in %s", n, time.Since(seedStart).Round(time.Millisecond))
			rec := newLagRecorder(len(projections.All()))
			startProjections(b, store, owner, rec)
			from := headPosition(b, pool)
			waitUntil(b, "the projectors to catch up with the seed", 5*time.Minute, time.Second, func() bool { return rec.caughtUp(2 * n) })
			rec.start(from)

			b.StartTimer()
			start, cpuStart := time.Now(), processCPU(b)
			require.NoError(b, client.Start(context.Background()))
			waitUntil(b, "every refresh", 30*time.Minute, 250*time.Millisecond, func() bool {
				var k int64
				if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM provider_credentials WHERE generation > 1`).Scan(&k); err != nil {
					return false
				}
				return k >= int64(n)
			})
			elapsed, cpu := time.Since(start), processCPU(b)-cpuStart
			b.StopTimer()
			stop, cancel := context.WithTimeout(context.Background(), time.Minute)
			require.NoError(b, client.Stop(stop))
			cancel()
			appended := countEvents(b, pool, from)
			waitUntil(b, "the projectors to catch up", time.Minute, 20*time.Millisecond, func() bool { return rec.caughtUp(appended) })

			ok, refused := srv.counts()
			p50, p99, maxLag, lagged := rec.quantiles()
			refreshRate := float64(n) / elapsed.Seconds()
			eventRate = float64(appended) / elapsed.Seconds()
			b.ReportMetric(refreshRate, "refreshes/s")
			b.ReportMetric(100*refreshRate/(benchPerMinute/60.0), "%-of-limit")
			b.ReportMetric(float64(refused), "429s")
			b.ReportMetric(float64(srv.maxPerMinute()), "max-calls/60s")
			b.ReportMetric(p50, "lag-p50-ms")
			b.ReportMetric(p99, "lag-p99-ms")
			b.ReportMetric(maxLag, "lag-max-ms")
			b.ReportMetric(eventRate, "events/s")
			// This process's CPU (workers, provider fake, pacer, projectors;
			// not PostgreSQL), which the machine's load moves less than the rates.
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "go-cpu-ms/refresh")
			b.Logf("%d refreshes in %s: %d answered, %d refused (429), %d events appended, lag of %d measured",
				n, elapsed.Round(time.Millisecond), ok, refused, appended, lagged)
			b.Logf("lag p50/p99 ms per projector:%s", rec.perProjector())
			b.StartTimer()
		}
	})

	b.Run("baseline_paced_calls", func(b *testing.B) {
		// The same pacer and provider, benchWorkers goroutines calling
		// straight through: the ceiling pacing alone allows.
		const calls = 3000
		for b.Loop() {
			b.StopTimer()
			pool := testdb.NewWithConns(b, benchWorkers+4)
			srv := newBenchServer(b)
			p := srv.provider()
			pacer, err := ratelimit.NewPacer(pool, map[string]int{"bench": benchPerMinute})
			require.NoError(b, err)
			b.StartTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range benchWorkers {
				wg.Go(func() {
					for next.Add(1) <= calls {
						wait, ok, err := pacer.Reserve(context.Background(), "bench", 10*time.Second)
						if err != nil || !ok {
							b.Errorf("reserve: %v %v %v", ok, err, wait)
							return
						}
						time.Sleep(wait) // the slot's wait, as the handler sleeps it
						if _, err := p.Refresh(context.Background(), commands.Credentials{RefreshToken: "x"}); err != nil &&
							!errors.Is(err, commands.ErrProviderRateLimited) {
							b.Errorf("refresh: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			_, refused := srv.counts()
			b.ReportMetric(float64(calls)/elapsed.Seconds(), "calls/s")
			b.ReportMetric(float64(refused), "429s")
			b.StartTimer()
		}
	})

	b.Run("baseline_lag", func(b *testing.B) {
		// Appends at the refresh run's event rate (or 200/s) for 10 s, from
		// four writers, with every projector running and nothing else.
		rate := eventRate
		if rate == 0 {
			rate = 200
		}
		const writers, duration = 4, 10 * time.Second
		for b.Loop() {
			b.StopTimer()
			pool, owner := benchPools(b, 10)
			reg := eventstore.NewRegistry()
			commands.RegisterEvents(reg)
			store, err := eventstore.New(pool, reg)
			require.NoError(b, err)
			rec := newLagRecorder(len(projections.All()))
			startProjections(b, store, owner, rec)
			b.StartTimer()
			ctx, cancel := context.WithTimeout(context.Background(), duration)
			var wg sync.WaitGroup
			var appended atomic.Int64
			for range writers {
				wg.Go(func() {
					id := uuid.New()
					stream := eventstore.Stream{Type: eventstore.StreamConnection, ID: id}
					mctx := commands.WithMetadata(context.Background(), uuid.New(), commands.ActorSystem, "bench", commands.RequestContext{})
					at := time.Now()
					res, err := store.Append(mctx, stream, 0, connection.ProviderConnectionAttempted{ConnectionID: id, UserID: uuid.New(),
						ProviderSlug: "bench", Alias: "Lag", ExpiresAt: at.Add(time.Minute), At: at})
					if err != nil {
						b.Error(err)
						return
					}
					appended.Add(1)
					v := res.Version
					tick := time.NewTicker(time.Duration(float64(time.Second) * writers / rate))
					defer tick.Stop()
					for {
						select {
						case <-ctx.Done():
							return
						case <-tick.C:
						}
						res, err := store.Append(mctx, stream, v, connection.ProviderTokenRefreshAttempted{ConnectionID: id,
							Trigger: connection.RefreshScheduled, At: time.Now()})
						if err != nil {
							b.Error(err)
							return
						}
						v = res.Version
						appended.Add(1)
					}
				})
			}
			wg.Wait()
			cancel()
			b.StopTimer()
			waitUntil(b, "the projectors to catch up", time.Minute, 20*time.Millisecond, func() bool { return rec.caughtUp(int(appended.Load())) })
			p50, p99, maxLag, _ := rec.quantiles()
			b.Logf("lag p50/p99 ms per projector:%s", rec.perProjector())
			b.ReportMetric(p50, "lag-p50-ms")
			b.ReportMetric(p99, "lag-p99-ms")
			b.ReportMetric(maxLag, "lag-max-ms")
			b.ReportMetric(float64(appended.Load())/duration.Seconds(), "events/s")
			b.StartTimer()
		}
	})
}
