package ratelimit_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/ratelimit"
	policy "github.com/dashtam/dashtam/commands/ratelimit"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// t0 is an arbitrary instant; every test moves its own clock from here.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// MustLimiter returns a Limiter on a fresh database.
func MustLimiter(tb testing.TB) *ratelimit.Limiter {
	tb.Helper()
	l, err := ratelimit.New(testdb.New(tb))
	require.NoError(tb, err)
	return l
}

// allower is what both stores offer: the database Limiter and Memory.
type allower interface {
	Allow(ctx context.Context, p ratelimit.Policy, key string, now time.Time) (ratelimit.Decision, error)
}

// stores builds each store afresh, so that every behaviour both must share
// is tested on both: a policy must answer alike wherever its buckets live.
var stores = map[string]func(testing.TB) allower{
	"postgres": func(tb testing.TB) allower { return MustLimiter(tb) },
	"memory": func(tb testing.TB) allower {
		m, err := ratelimit.NewMemory(ratelimit.DefaultMemoryKeys)
		require.NoError(tb, err)
		return m
	},
}

// MustAllow checks key and fails the test on a store error.
func MustAllow(tb testing.TB, l allower, p ratelimit.Policy, key string, now time.Time) ratelimit.Decision {
	tb.Helper()
	d, err := l.Allow(context.Background(), p, key, now)
	require.NoError(tb, err)
	return d
}

func TestAllowBucketMaths(t *testing.T) {
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			p := ratelimit.Policy{Name: "test", Burst: 3, Per: 10 * time.Second}
			l := newStore(t)
			steps := []struct {
				name string
				at   time.Duration // since t0
				want ratelimit.Decision
			}{
				{"new key starts full", 0, ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 2, Reset: 10 * time.Second}},
				{"burst", 0, ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 1, Reset: 20 * time.Second}},
				{"last token", 0, ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 0, Reset: 30 * time.Second}},
				{"empty", 0, ratelimit.Decision{Allowed: false, Limit: 3, Remaining: 0, Reset: 30 * time.Second, RetryAfter: 10 * time.Second}},
				{"denial takes nothing", 4 * time.Second, ratelimit.Decision{Allowed: false, Limit: 3, Remaining: 0, Reset: 26 * time.Second, RetryAfter: 6 * time.Second}},
				{"one token refilled", 10 * time.Second, ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 0, Reset: 30 * time.Second}},
				{"partial refill", 25 * time.Second, ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 0, Reset: 25 * time.Second}},
				{"refill caps at burst", time.Hour, ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 2, Reset: 10 * time.Second}},
			}
			for _, s := range steps {
				got := MustAllow(t, l, p, "k", t0.Add(s.at))
				assert.Equal(t, s.want, got, s.name)
			}
		})
	}
}

// Refill is summed in floating point, one denied check at a time: ten
// refills of a tenth of a token add up to 0.9999999999999999, and that must
// still buy the request.
func TestAllowRefillHasNoRoundingLoss(t *testing.T) {
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			for _, c := range []struct {
				p     ratelimit.Policy
				steps int
			}{{policy.Reads, 10}, {policy.Login, 5}, {policy.Login, 6}} {
				l := newStore(t)
				for range c.p.Burst {
					MustAllow(t, l, c.p, "u", t0)
				}
				now := t0
				for round := range 3 {
					for step := 1; step < c.steps; step++ {
						now = now.Add(c.p.Per / time.Duration(c.steps))
						require.False(t, MustAllow(t, l, c.p, "u", now).Allowed, "%s round %d step %d", c.p.Name, round, step)
					}
					now = now.Add(c.p.Per / time.Duration(c.steps))
					require.True(t, MustAllow(t, l, c.p, "u", now).Allowed, "%s round %d: a whole token is back", c.p.Name, round)
				}
			}
		})
	}
}

func TestAllowKeysArePerPolicy(t *testing.T) {
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			l := newStore(t)
			a := ratelimit.Policy{Name: "a", Burst: 1, Per: time.Minute}
			b := ratelimit.Policy{Name: "b", Burst: 1, Per: time.Minute}
			assert.True(t, MustAllow(t, l, a, "same", t0).Allowed)
			assert.False(t, MustAllow(t, l, a, "same", t0).Allowed)
			assert.True(t, MustAllow(t, l, b, "same", t0).Allowed, "policy b has its own bucket")
			assert.True(t, MustAllow(t, l, a, "other", t0).Allowed, "key other has its own bucket")
		})
	}
}

// A server whose clock lags another's must neither refill by a negative
// amount nor move the bucket's time backwards.
func TestAllowIgnoresClockGoingBackwards(t *testing.T) {
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			l := newStore(t)
			p := ratelimit.Policy{Name: "skew", Burst: 2, Per: 10 * time.Second}
			MustAllow(t, l, p, "k", t0)
			MustAllow(t, l, p, "k", t0)
			assert.False(t, MustAllow(t, l, p, "k", t0.Add(-time.Hour)).Allowed, "an earlier clock mints nothing")
			assert.True(t, MustAllow(t, l, p, "k", t0.Add(10*time.Second)).Allowed, "refill still counts from the latest time")
			assert.False(t, MustAllow(t, l, p, "k", t0.Add(10*time.Second)).Allowed)
		})
	}
}

func TestAllowRejectsInvalidPolicies(t *testing.T) {
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			l := newStore(t)
			for _, p := range []ratelimit.Policy{
				{Name: "", Burst: 1, Per: time.Second},
				{Name: "a:b", Burst: 1, Per: time.Second},
				{Name: "zero_burst", Burst: 0, Per: time.Second},
				{Name: "zero_per", Burst: 1},
			} {
				_, err := l.Allow(context.Background(), p, "k", t0)
				assert.Error(t, err, "%+v", p)
			}
		})
	}
}

func TestNewRefusesNilDB(t *testing.T) {
	_, err := ratelimit.New(nil)
	assert.Error(t, err)
}

// Many checks racing on one key spend exactly the burst: the row lock of
// the upsert serialises them, and none reads a stale token count.
func TestAllowConcurrentChecksSpendExactlyTheBurst(t *testing.T) {
	pool := testdb.New(t)
	l, err := ratelimit.New(pool)
	require.NoError(t, err)
	p := ratelimit.Policy{Name: "race", Burst: 25, Per: time.Hour}
	const workers, each = 50, 8

	var allowed, denied atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			<-start
			for range each {
				d, err := l.Allow(context.Background(), p, "hot", t0)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					allowed.Add(1)
				} else {
					denied.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	assert.Equal(t, int64(p.Burst), allowed.Load())
	assert.Equal(t, int64(workers*each-p.Burst), denied.Load())
}

// Two server instances (two pools, one database) draw from one bucket.
func TestLimitersOnOneDatabaseShareBuckets(t *testing.T) {
	url := testdb.NewURL(t)
	limiter := func() *ratelimit.Limiter {
		pool, err := pgxpool.New(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		l, err := ratelimit.New(pool)
		require.NoError(t, err)
		return l
	}
	a, b := limiter(), limiter()
	p := policy.Login
	for i := range p.Burst {
		l := a
		if i%2 == 1 {
			l = b
		}
		assert.True(t, MustAllow(t, l, p, "203.0.113.7", t0).Allowed, "attempt %d", i+1)
	}
	da := MustAllow(t, a, p, "203.0.113.7", t0)
	db := MustAllow(t, b, p, "203.0.113.7", t0)
	assert.False(t, da.Allowed, "instance a sees the burst spent")
	assert.False(t, db.Allowed, "instance b sees the burst spent")
	assert.Equal(t, p.Per, db.RetryAfter)
}

func TestSweepDeletesOnlyIdleBuckets(t *testing.T) {
	pool := testdb.New(t)
	l, err := ratelimit.New(pool)
	require.NoError(t, err)
	p := ratelimit.Policy{Name: "sweep", Burst: 2, Per: time.Minute}
	MustAllow(t, l, p, "idle", t0)
	MustAllow(t, l, p, "busy", t0)
	MustAllow(t, l, p, "busy", t0.Add(5*time.Minute))

	n, err := l.Sweep(context.Background(), t0.Add(5*time.Minute-p.FullAfter()))
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	var keys []string
	rows, err := pool.Query(context.Background(), "SELECT key FROM rate_limit_buckets ORDER BY key")
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys = append(keys, k)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"sweep:busy"}, keys)
	// A swept bucket comes back full, which is what it had refilled to.
	assert.Equal(t, 1, MustAllow(t, l, p, "idle", t0.Add(5*time.Minute)).Remaining)
}

func TestPolicies(t *testing.T) {
	perMinute := func(p ratelimit.Policy) float64 { return float64(time.Minute) / float64(p.Per) }
	for _, c := range []struct {
		p           ratelimit.Policy
		burst       int
		ratePerMin  float64
		local       bool
		description string
	}{
		{policy.Login, 5, 5, false, "login 5/min"},
		{policy.Register, 3, 3, false, "register 3/min"},
		{policy.PasswordReset, 3, 3, false, "password reset 3/min"},
		{policy.VerificationResend, 3, 3, false, "verification resend 3/min"},
		{policy.EmailVerification, 10, 10, false, "email verification 10/min"},
		{policy.PasswordResetCompletion, 5, 5, false, "password reset completion 5/min"},
		{policy.TokenRefreshIP, 30, 30, false, "token refresh per IP 30/min"},
		{policy.TokenRefresh, 10, 10, false, "token refresh 10/min"},
		{policy.ProviderConnect, 5, 5, false, "provider connect 5/min"},
		{policy.OAuthCallback, 20, 20, false, "oauth callback 20/min"},
		{policy.Sync, 10, 5, false, "sync burst 10 then 5/min"},
		{policy.Reads, 100, 100, false, "reads 100/min"},
		{policy.Writes, 50, 50, false, "writes 50/min"},
		{policy.PublicReads, 120, 120, true, "public reads burst 120 then 2/s, in memory"},
	} {
		assert.NoError(t, c.p.Validate(), c.description)
		assert.Equal(t, c.burst, c.p.Burst, c.description)
		assert.InDelta(t, c.ratePerMin, perMinute(c.p), 1e-9, c.description)
		assert.Equal(t, c.local, c.p.Local, c.description)
		got, ok := policy.ByName(c.p.Name)
		assert.True(t, ok, c.description)
		assert.Equal(t, c.p, got, c.description)
	}
	names := map[string]bool{}
	for _, p := range policy.All {
		assert.False(t, names[p.Name], "policy name %s is used twice", p.Name)
		names[p.Name] = true
	}
	assert.Len(t, names, 14)
	_, ok := policy.ByName("no_such_policy")
	assert.False(t, ok)
}

// Concurrent checks on one key of the in-memory store spend exactly the
// burst, as the database's row lock makes them do there.
func TestMemoryConcurrentChecksSpendExactlyTheBurst(t *testing.T) {
	m, err := ratelimit.NewMemory(10)
	require.NoError(t, err)
	p := ratelimit.Policy{Name: "race", Burst: 25, Per: time.Hour}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if MustAllow(t, m, p, "k", t0).Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(p.Burst), allowed.Load())
}

// The in-memory store is bounded: a new key finds room by dropping buckets
// that have refilled, and when none has, the check fails (the web layer
// then lets the request pass) rather than growing without bound.
func TestMemoryIsBounded(t *testing.T) {
	m, err := ratelimit.NewMemory(2)
	require.NoError(t, err)
	p := ratelimit.Policy{Name: "bounded", Burst: 2, Per: time.Minute}
	MustAllow(t, m, p, "a", t0)
	MustAllow(t, m, p, "b", t0.Add(time.Minute))
	_, err = m.Allow(context.Background(), p, "c", t0.Add(time.Minute))
	assert.ErrorIs(t, err, ratelimit.ErrMemoryFull, "no bucket has refilled yet")
	assert.Equal(t, 2, m.Len())

	d := MustAllow(t, m, p, "c", t0.Add(p.FullAfter()))
	assert.True(t, d.Allowed, "a has refilled and made room")
	assert.Equal(t, 2, m.Len())
	later := t0.Add(time.Minute + p.FullAfter())
	assert.Equal(t, 1, MustAllow(t, m, p, "a", later).Remaining, "b has refilled and made room; a comes back full, as it had refilled")

	assert.Equal(t, 0, m.Sweep(later), "a and c are not full yet")
	assert.Equal(t, 2, m.Sweep(t0.Add(time.Hour)))
	assert.Zero(t, m.Len())

	_, err = ratelimit.NewMemory(0)
	assert.Error(t, err)
}

// BenchmarkAllow measures checks per second through a pool: on distinct
// keys (the common case: many clients) and on one hot key, where checks
// serialise on the row lock.
func BenchmarkAllow(b *testing.B) {
	pool := testdb.New(b)
	l, err := ratelimit.New(pool)
	require.NoError(b, err)
	p := ratelimit.Policy{Name: "bench", Burst: 1 << 30, Per: time.Millisecond}
	b.Run("distinct_keys", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			key := fmt.Sprintf("client-%d", next.Add(1))
			for pb.Next() {
				if _, err := l.Allow(context.Background(), p, key, time.Now()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
	b.Run("one_key", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Allow(context.Background(), p, "hot", time.Now()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
}
