package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/commands"
)

// Pacer spaces the calls to each provider evenly at its rate across every
// instance (commands.ProviderPacer): each call books the next slot of the
// provider's row in provider_pace, one interval after the previous one's
// (a generic cell rate algorithm with no burst), so calls never arrive
// faster than the provider allows, however many workers make them.
type Pacer struct {
	pool     *pgxpool.Pool
	interval map[string]time.Duration
}

var _ commands.ProviderPacer = (*Pacer)(nil)

// NewPacer returns a pacer allowing PaceShare of perMinute calls a minute
// to each provider named; a provider not named is not paced.
func NewPacer(pool *pgxpool.Pool, perMinute map[string]int) (*Pacer, error) {
	if pool == nil {
		return nil, errors.New("ratelimit: nil pool")
	}
	p := &Pacer{pool: pool, interval: map[string]time.Duration{}}
	for name, n := range perMinute {
		if n <= 0 {
			return nil, fmt.Errorf("ratelimit: provider %s: rate must be positive", name)
		}
		p.interval[name] = Interval(n)
	}
	return p, nil
}

// PaceShare is the share of a provider's stated rate the pacer spends. The
// provider counts arrivals by its own clock, and a call leaves on time
// only as far as the machine's scheduling allows: paced at exactly the
// rate, a late call followed by punctual ones drew a 429 now and then (one
// in 10,000 refreshes at 6,000 a minute). Two percent of headroom lets the
// provider's allowance refill faster than the calls spend it.
const PaceShare = 0.98

// Interval is the spacing of the calls to a provider allowing perMinute a
// minute: a minute over PaceShare of that rate, to the microsecond (the
// resolution of the interval stored beside the slot).
func Interval(perMinute int) time.Duration {
	return time.Duration(float64(time.Minute) / (float64(perMinute) * PaceShare)).Truncate(time.Microsecond)
}

// bookSQL books provider's next slot when it is at most $3 away: the slot
// is the later of the stored next slot and now, and the stored one moves
// one interval ($2) past it. It answers the wait for the booked slot, or
// no row when the slot is further away (or the provider has no row yet).
const bookSQL = `UPDATE provider_pace SET next_at = greatest(next_at, now()) + $2::interval
	WHERE provider = $1 AND greatest(next_at, now()) <= now() + $3::interval
	RETURNING extract(epoch FROM next_at - $2::interval - now())::float8`

// Reserve books the next slot of provider; see commands.ProviderPacer. The
// common case is one statement; a refusal costs one more to say how long.
func (p *Pacer) Reserve(ctx context.Context, provider string, maxWait time.Duration) (time.Duration, bool, error) {
	interval, ok := p.interval[provider]
	if !ok {
		return 0, true, nil
	}
	// Twice at most: a first call that loses the race to create the row
	// books again on the row the winner created.
	for range 2 {
		var secs float64
		err := p.pool.QueryRow(ctx, bookSQL, provider, interval, maxWait).Scan(&secs)
		if err == nil {
			return max(time.Duration(secs*float64(time.Second)), 0), true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, false, fmt.Errorf("reserve a call slot of %s: %w", provider, err)
		}
		// The first call ever takes the first slot; otherwise the slot is
		// too far, or a concurrent first call created the row after the
		// booking statement looked (next is near, or NULL when the row is
		// not visible to this statement either).
		var inserted bool
		var next *float64
		err = p.pool.QueryRow(ctx, `WITH ins AS (
				INSERT INTO provider_pace (provider, next_at) VALUES ($1, now() + $2::interval)
				ON CONFLICT (provider) DO NOTHING RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM ins),
				(SELECT extract(epoch FROM greatest(next_at, now()) - now())::float8 FROM provider_pace WHERE provider = $1)`,
			provider, interval).Scan(&inserted, &next)
		if err != nil {
			return 0, false, fmt.Errorf("reserve a call slot of %s: %w", provider, err)
		}
		if inserted {
			return 0, true, nil
		}
		if next != nil {
			wait := max(time.Duration(*next*float64(time.Second)), 0)
			if wait > maxWait {
				return wait, false, nil
			}
		}
		// The row appeared after the booking statement looked (a concurrent
		// first call created it): book on it.
	}
	return 0, false, fmt.Errorf("reserve a call slot of %s: the provider's row is not visible", provider)
}
