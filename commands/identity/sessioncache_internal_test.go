package identity

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
)

var (
	t0      = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	aUser   = uuid.MustParse("0193a4f0-0000-7000-8000-000000000001")
	aSess   = uuid.MustParse("0193a4f0-0000-7000-8000-000000000002")
	another = uuid.MustParse("0193a4f0-0000-7000-8000-000000000003")
	check   = sessionCheck{expiresAt: t0.Add(time.Hour), minVersion: 5, roles: []user.Role{user.RoleUser}}
)

func enabledCache() *sessionCache {
	c := newSessionCache()
	c.flush(true)
	return c
}

// A disabled cache (no listener) neither stores nor answers.
func TestSessionCacheDisabled(t *testing.T) {
	c := newSessionCache()
	c.put(c.begin(), aUser, aSess, check, t0)
	_, ok := c.get(aUser, aSess, t0)
	require.False(t, ok)

	c = enabledCache()
	c.put(c.begin(), aUser, aSess, check, t0)
	c.flush(false)
	_, ok = c.get(aUser, aSess, t0)
	require.False(t, ok, "disabling forgets")
}

// A read that began before an invalidation, of any user, is not stored:
// it may have seen the state from before the change.
func TestSessionCacheReadRacingInvalidation(t *testing.T) {
	c := enabledCache()
	epoch := c.begin()
	c.invalidate(aUser) // a revocation commits while the read is in flight
	c.put(epoch, aUser, aSess, check, t0)
	_, ok := c.get(aUser, aSess, t0)
	require.False(t, ok)

	epoch = c.begin()
	c.flushKeep() // a global rotation
	c.put(epoch, aUser, aSess, check, t0)
	_, ok = c.get(aUser, aSess, t0)
	require.False(t, ok)

	epoch = c.begin()
	c.flush(true) // the listener reconnected
	c.put(epoch, aUser, aSess, check, t0)
	_, ok = c.get(aUser, aSess, t0)
	require.False(t, ok)

	c.put(c.begin(), aUser, aSess, check, t0)
	got, ok := c.get(aUser, aSess, t0)
	require.True(t, ok)
	require.Equal(t, check, got)
}

// Invalidating a user forgets that user's sessions only; entries age out.
func TestSessionCacheInvalidateAndAge(t *testing.T) {
	c := enabledCache()
	c.put(c.begin(), aUser, aSess, check, t0)
	c.put(c.begin(), another, another, check, t0)
	c.invalidate(aUser)
	_, ok := c.get(aUser, aSess, t0)
	require.False(t, ok)
	_, ok = c.get(another, another, t0)
	require.True(t, ok)
	require.Equal(t, 1, c.stats().Entries)

	_, ok = c.get(another, another, t0.Add(sessionCacheMaxAge))
	require.False(t, ok, "an entry is not used past its maximum age")
}

// The cache never grows past its bound.
func TestSessionCacheBounded(t *testing.T) {
	c := enabledCache()
	for range sessionCacheMaxEntries + 10 {
		c.put(c.begin(), uuid.New(), uuid.New(), check, t0)
	}
	require.LessOrEqual(t, c.stats().Entries, sessionCacheMaxEntries)
}

// accepts mirrors the refresh rules: within lifetime, a current version,
// or the one just superseded during the grace of the latest rotation.
func TestSessionCheckAccepts(t *testing.T) {
	c := sessionCheck{expiresAt: t0.Add(time.Hour), minVersion: 5, rotatedAt: t0}
	grace := time.Minute
	require.True(t, c.accepts(5, t0, grace))
	require.True(t, c.accepts(6, t0, grace))
	require.True(t, c.accepts(4, t0.Add(grace-time.Microsecond), grace))
	require.False(t, c.accepts(4, t0.Add(grace), grace))
	require.False(t, c.accepts(3, t0, grace), "two versions behind is refused even within grace")
	require.False(t, c.accepts(5, t0.Add(time.Hour), grace), "expired")
	require.False(t, sessionCheck{expiresAt: t0.Add(time.Hour), minVersion: 5}.accepts(4, t0, grace), "never rotated")
}
