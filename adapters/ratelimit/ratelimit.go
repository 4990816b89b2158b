// Package ratelimit owns the token buckets that throttle requests, kept in
// PostgreSQL so that every server instance draws from the same buckets. One
// check is one atomic statement; the caller supplies the time, so tests and
// benchmarks control the clock and skewed server clocks cannot mint tokens.
package ratelimit

import (
	policy "github.com/dashtam/dashtam/commands/ratelimit"

	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// slack is how far below one token a bucket may be and still grant one:
// refill adds elapsed/per in floating point, and ten refills of a tenth of a
// token sum to 0.9999999999999999. A billionth of a token is nanoseconds of
// refill.
const slack = 1e-9

// allowSQL refills the bucket by the time elapsed since its last check,
// caps it at the burst, and takes one token if a whole one is there — all in
// one upsert, so concurrent checks on a key serialise on its row lock and
// never both spend the same token. A new key starts full, minus this check.
// The clock only moves forward per bucket (GREATEST): an instance whose
// clock lags another's gets no refill rather than a negative one. Every
// parameter is cast: left to infer, PostgreSQL types $5 in "1 - $5" as
// integer, and the slack is lost without an error.
const allowSQL = `
INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at, allowed)
VALUES ($1::text, $2::float8 - 1, $3::timestamptz, true)
ON CONFLICT (key) DO UPDATE SET (tokens, updated_at, allowed) = (
    SELECT CASE WHEN r.ok THEN GREATEST(r.t - 1, 0) ELSE r.t END, GREATEST(b.updated_at, $3::timestamptz), r.ok
    FROM (SELECT f.t, f.t >= 1 - $5::float8 AS ok
          FROM (SELECT LEAST($2::float8, b.tokens + GREATEST(extract(epoch FROM $3::timestamptz - b.updated_at)::float8, 0) / $4::float8) AS t) f) r)
RETURNING tokens, allowed`

// DB is the part of a pgx pool or connection the limiter uses.
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Policy and Decision are the limiter's vocabulary, declared with the
// named policies in commands/ratelimit so that web can name them without
// importing an adapter.
type (
	// Policy is commands/ratelimit.Policy.
	Policy = policy.Policy
	// Decision is commands/ratelimit.Decision.
	Decision = policy.Decision
)

// Limiter checks requests against token buckets stored in PostgreSQL; it is
// safe for concurrent use, and instances on the same database share buckets.
type Limiter struct {
	db DB
}

// New returns a Limiter over db, which must hold the migrated
// rate_limit_buckets table.
func New(db DB) (*Limiter, error) {
	if db == nil {
		return nil, errors.New("ratelimit: db is nil")
	}
	return &Limiter{db: db}, nil
}

// Allow charges one token of policy's bucket for key at time now. It returns
// an error only for an invalid policy or a failing database; a denial is a
// Decision with Allowed false, not an error.
func (l *Limiter) Allow(ctx context.Context, policy Policy, key string, now time.Time) (Decision, error) {
	if err := policy.Validate(); err != nil {
		return Decision{}, err
	}
	var (
		tokens  float64
		allowed bool
	)
	err := l.db.QueryRow(ctx, allowSQL,
		policy.Name+":"+key, float64(policy.Burst), now, policy.Per.Seconds(), slack,
	).Scan(&tokens, &allowed)
	if err != nil {
		return Decision{}, fmt.Errorf("check rate limit %s: %w", policy.Name, err)
	}
	return decide(policy, tokens, allowed), nil
}

// decide turns the bucket's state after a check into the client's view.
func decide(p Policy, tokens float64, allowed bool) Decision {
	d := Decision{
		Allowed:   allowed,
		Limit:     p.Burst,
		Remaining: int(math.Floor(tokens + slack)),
		Reset:     tokensTime(p, float64(p.Burst)-tokens),
	}
	if !allowed {
		d.RetryAfter = tokensTime(p, 1-tokens)
	}
	return d
}

// tokensTime is how long refilling n tokens takes. It rounds to the nearest
// nanosecond rather than up: n carries floating-point error far below one,
// and rounding up would turn an exact 7 s into 7 s + 1 ns, which clients see
// as 8 whole seconds.
func tokensTime(p Policy, n float64) time.Duration {
	if n <= slack {
		return 0
	}
	return time.Duration(math.Round(n * float64(p.Per)))
}

// Sweep deletes the buckets no check has touched since before, returning how
// many went. A bucket idle for its policy's FullAfter is full, exactly as if
// absent, so before must be at least the longest FullAfter of any policy in
// use ago; sooner, and a swept bucket would hand back tokens it had not yet
// regained.
func (l *Limiter) Sweep(ctx context.Context, before time.Time) (int64, error) {
	tag, err := l.db.Exec(ctx, `DELETE FROM rate_limit_buckets WHERE updated_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("sweep rate limit buckets: %w", err)
	}
	return tag.RowsAffected(), nil
}
