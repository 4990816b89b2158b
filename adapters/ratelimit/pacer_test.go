package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestPacerSpacesSlotsByTheInterval: each booking moves the provider's next
// slot one interval on, bookings beyond maxWait book nothing, and a
// provider without a rate is not paced. A rate of one call a minute makes
// the test's own duration negligible beside the interval.
func TestPacerSpacesSlotsByTheInterval(t *testing.T) {
	pool := testdb.New(t)
	p, err := ratelimit.NewPacer(pool, map[string]int{"slow": 1})
	require.NoError(t, err)
	ctx := context.Background()
	slot := func() time.Time {
		var at time.Time
		require.NoError(t, pool.QueryRow(ctx, `SELECT next_at FROM provider_pace WHERE provider = 'slow'`).Scan(&at))
		return at
	}
	iv := ratelimit.Interval(1)
	require.Greater(t, iv, time.Minute, "headroom: a little slower than the stated rate")
	require.Less(t, iv, time.Minute*21/20)
	var first time.Time
	for k := range 3 {
		wait, ok, err := p.Reserve(ctx, "slow", 10*time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "booking %d", k)
		require.LessOrEqual(t, wait, time.Duration(k)*iv, "booking %d", k)
		require.Greater(t, wait, time.Duration(k)*iv-30*time.Second, "booking %d", k)
		if k == 0 {
			first = slot().Add(-iv)
		}
		require.Equal(t, first.Add(time.Duration(k+1)*iv), slot(), "after booking %d", k)
	}
	before := slot()
	wait, ok, err := p.Reserve(ctx, "slow", time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "a slot three minutes away is beyond a minute's wait")
	require.Greater(t, wait, 2*time.Minute)
	require.Equal(t, before, slot(), "a refused booking books nothing")

	wait, ok, err = p.Reserve(ctx, "unpaced", 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Zero(t, wait)
}

// TestPacerLosesNoBookingUnderConcurrency: concurrent bookings each get
// their own slot, so the next slot moves by exactly one interval each.
func TestPacerLosesNoBookingUnderConcurrency(t *testing.T) {
	pool := testdb.New(t)
	p, err := ratelimit.NewPacer(pool, map[string]int{"busy": 1})
	require.NoError(t, err)
	ctx := context.Background()
	_, _, err = p.Reserve(ctx, "busy", time.Hour)
	require.NoError(t, err)
	var before time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT next_at FROM provider_pace WHERE provider = 'busy'`).Scan(&before))
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, _, errs[i] = p.Reserve(ctx, "busy", time.Hour) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var after time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT next_at FROM provider_pace WHERE provider = 'busy'`).Scan(&after))
	require.Equal(t, before.Add(n*ratelimit.Interval(1)), after)
}

// TestPacerFirstCallsAllBook: concurrent first calls to a provider that
// has no row yet each book a slot; none is refused as if the slot were far.
func TestPacerFirstCallsAllBook(t *testing.T) {
	pool := testdb.NewWithConns(t, 24)
	p, err := ratelimit.NewPacer(pool, map[string]int{"fresh": 60})
	require.NoError(t, err)
	const n = 20
	var wg sync.WaitGroup
	oks := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, oks[i], errs[i] = p.Reserve(context.Background(), "fresh", time.Hour)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.True(t, oks[i], "call %d refused", i)
	}
	var booked time.Duration
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT (extract(epoch FROM next_at - now()) * 1000000)::bigint * interval '1 microsecond' FROM provider_pace WHERE provider = 'fresh'`).Scan(&booked))
	require.Greater(t, booked, (n-2)*time.Second, "one slot each, a second apart")
}
