package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrMemoryFull means a Memory limiter holds as many buckets as it may and
// none of them is idle enough to drop; the caller lets the request pass, as
// it does when the database limiter fails.
var ErrMemoryFull = errors.New("ratelimit: in-memory buckets are full")

// DefaultMemoryKeys bounds a Memory limiter's buckets: at ~100 bytes each,
// 100,000 clients cost ~10 MB.
const DefaultMemoryKeys = 100_000

// memBucket is one key's bucket and how long its policy takes to refill it.
type memBucket struct {
	tokens    float64
	updated   time.Time
	fullAfter time.Duration
}

// Memory checks requests against token buckets kept in this process. It
// serves the policies marked Local: routes cheaper to answer than a
// database round trip, for which a shared bucket would cost more than the
// request it guards. Its arithmetic is the database limiter's, so a policy
// answers alike in either store; each process grants the allowance on its
// own. It is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	buckets map[string]*memBucket
	maxKeys int
}

// NewMemory returns a Memory limiter holding at most maxKeys buckets.
func NewMemory(maxKeys int) (*Memory, error) {
	if maxKeys < 1 {
		return nil, fmt.Errorf("ratelimit: memory limiter needs room for at least one bucket, not %d", maxKeys)
	}
	return &Memory{buckets: make(map[string]*memBucket), maxKeys: maxKeys}, nil
}

// Allow charges one token of policy's bucket for key at time now, exactly as
// Limiter.Allow does in the database. It returns an error for an invalid
// policy, and ErrMemoryFull when a new key finds no room; a denial is a
// Decision with Allowed false.
func (m *Memory) Allow(_ context.Context, policy Policy, key string, now time.Time) (Decision, error) {
	if err := policy.Validate(); err != nil {
		return Decision{}, err
	}
	k := policy.Name + ":" + key
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.buckets[k]
	if !ok {
		if len(m.buckets) >= m.maxKeys {
			m.sweepLocked(now)
			if len(m.buckets) >= m.maxKeys {
				return Decision{}, fmt.Errorf("check rate limit %s: %w", policy.Name, ErrMemoryFull)
			}
		}
		// A new key starts full, minus this check, as in allowSQL.
		m.buckets[k] = &memBucket{tokens: float64(policy.Burst) - 1, updated: now, fullAfter: policy.FullAfter()}
		return decide(policy, float64(policy.Burst)-1, true), nil
	}
	// The refill of allowSQL: never negative, capped at the burst, and the
	// bucket's clock only moves forward.
	t := min(float64(policy.Burst), b.tokens+max(now.Sub(b.updated).Seconds(), 0)/policy.Per.Seconds())
	allowed := t >= 1-slack
	if allowed {
		t = max(t-1, 0)
	}
	b.tokens = t
	if now.After(b.updated) {
		b.updated = now
	}
	return decide(policy, t, allowed), nil
}

// Sweep drops the buckets that have refilled by now (a full bucket answers
// exactly as a missing one) and returns how many went. Allow also sweeps
// when it runs out of room, so calling Sweep only returns memory sooner.
func (m *Memory) Sweep(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sweepLocked(now)
}

// sweepLocked is Sweep with m.mu held.
func (m *Memory) sweepLocked(now time.Time) int {
	n := 0
	for k, b := range m.buckets {
		if !now.Before(b.updated.Add(b.fullAfter)) {
			delete(m.buckets, k)
			n++
		}
	}
	return n
}

// Len returns how many buckets m holds.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.buckets)
}
