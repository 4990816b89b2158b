package identity

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
)

// Limits of the session cache.
const (
	// sessionCacheMaxAge bounds how long one database answer is reused even
	// when no invalidation arrives: a safety net under the notifications,
	// not the mechanism. A session in use costs one read per max age.
	sessionCacheMaxAge = 30 * time.Second
	// sessionCacheMaxEntries bounds the memory of the cache (~200 bytes an
	// entry); past it, stale entries are dropped, then everything.
	sessionCacheMaxEntries = 100_000
)

// sessionCheck is what the database says about one session: enough to
// decide, for any access token of it, whether it is accepted now.
type sessionCheck struct {
	expiresAt  time.Time
	minVersion int64     // the user's token version plus the global one
	rotatedAt  time.Time // the latest rotation, user's or global; zero if none
	roles      []user.Role
}

// accepts reports whether an access token issued at version is accepted at
// now: the session is within its lifetime, and the version is current, or
// the one just superseded while the latest rotation's grace lasts. Older
// versions are refused even within grace, erring on the side of the
// rotation (as user.User.AcceptsTokenVersion does for refresh tokens).
func (c sessionCheck) accepts(version int64, now time.Time, grace time.Duration) bool {
	if !now.Before(c.expiresAt) {
		return false
	}
	if version >= c.minVersion {
		return true
	}
	return version == c.minVersion-1 && now.Before(c.rotatedAt.Add(grace))
}

// cachedCheck is a sessionCheck and when it was read.
type cachedCheck struct {
	sessionCheck
	readAt time.Time
}

// sessionCache keeps the database's answers about active sessions so that
// the per-request check needs no round trip (a 50 µs budget, docs/identity.md; a bare
// round trip costs more on its own). It is only ever trusted to accept: a
// cached answer that would refuse is checked against the database again,
// so an out-of-date entry can only wrongly accept, and invalidation exists
// to close exactly that:
//
//   - every write that could refuse a token (a session ending, a role or
//     token version change, a global rotation) sends a NOTIFY from a
//     trigger in its own transaction (migration 00006), and the listener
//     drops the user's entries, or all of them for a global change;
//   - this process's own writes drop the user's entries synchronously after
//     commit, before the request that made them is answered;
//   - while the listener is not connected, or its heartbeat goes unheard,
//     the cache is empty and disabled, and every check reads the database;
//     when it connects again it starts empty, because what changed in
//     between was never heard;
//   - a read that began before an invalidation is not stored after it (the
//     epoch), so a slow read cannot put back what a revocation removed.
type sessionCache struct {
	mu      sync.RWMutex
	enabled bool
	epoch   uint64 // raised by every invalidation
	users   map[uuid.UUID]map[uuid.UUID]cachedCheck
	size    int
	hits    atomic.Uint64
	misses  atomic.Uint64
	listens atomic.Uint64 // times LISTEN took effect and the cache was enabled
}

func newSessionCache() *sessionCache {
	return &sessionCache{users: map[uuid.UUID]map[uuid.UUID]cachedCheck{}}
}

// get returns the cached check of the session if the cache is enabled and
// the entry is younger than sessionCacheMaxAge at now.
func (c *sessionCache) get(userID, sessionID uuid.UUID, now time.Time) (sessionCheck, bool) {
	c.mu.RLock()
	e, ok := c.users[userID][sessionID]
	ok = ok && c.enabled && now.Sub(e.readAt) < sessionCacheMaxAge
	c.mu.RUnlock()
	if !ok {
		c.misses.Add(1)
		return sessionCheck{}, false
	}
	c.hits.Add(1)
	return e.sessionCheck, true
}

// begin returns the epoch to hand to put for a database read about to start.
func (c *sessionCache) begin() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epoch
}

// put stores what a read begun at epoch found, unless the cache is disabled
// or anything was invalidated since the read began: the read may then have
// seen the state from before the change.
func (c *sessionCache) put(epoch uint64, userID, sessionID uuid.UUID, check sessionCheck, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled || epoch != c.epoch {
		return
	}
	if c.size >= sessionCacheMaxEntries {
		c.dropStale(now)
		if c.size >= sessionCacheMaxEntries {
			c.clear()
		}
	}
	sessions := c.users[userID]
	if sessions == nil {
		sessions = map[uuid.UUID]cachedCheck{}
		c.users[userID] = sessions
	}
	if _, ok := sessions[sessionID]; !ok {
		c.size++
	}
	sessions[sessionID] = cachedCheck{sessionCheck: check, readAt: now}
}

// invalidate forgets every session of the user.
func (c *sessionCache) invalidate(userID uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.size -= len(c.users[userID])
	delete(c.users, userID)
}

// flush forgets everything and sets whether the cache may be used.
func (c *sessionCache) flush(enabled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.clear()
	c.enabled = enabled
}

// flushKeep forgets everything and leaves the cache enabled or not.
func (c *sessionCache) flushKeep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.clear()
}

func (c *sessionCache) clear() {
	clear(c.users)
	c.size = 0
}

func (c *sessionCache) dropStale(now time.Time) {
	for u, sessions := range c.users {
		for s, e := range sessions {
			if now.Sub(e.readAt) >= sessionCacheMaxAge || !now.Before(e.expiresAt) {
				delete(sessions, s)
				c.size--
			}
		}
		if len(sessions) == 0 {
			delete(c.users, u)
		}
	}
}

// SessionCacheStats describes the session cache, for metrics and tests.
type SessionCacheStats struct {
	// Enabled is true while invalidations are being heard, the only time the cache is used.
	Enabled bool
	// Entries is the number of sessions cached.
	Entries int
	// Hits and Misses count checks answered from the cache and not.
	Hits, Misses uint64
	// Listens counts the times the listener connected and enabled the cache.
	Listens uint64
}

func (c *sessionCache) stats() SessionCacheStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return SessionCacheStats{Enabled: c.enabled, Entries: c.size, Hits: c.hits.Load(), Misses: c.misses.Load(), Listens: c.listens.Load()}
}
