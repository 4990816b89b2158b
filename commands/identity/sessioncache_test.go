package identity_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/identity"
)

// peer returns another server's Handler over e's database and adapters,
// without a session cache of its own: it writes as a second server or the
// command line would.
func (e *env) peer() *identity.Handler {
	e.tb.Helper()
	h, err := identity.NewHandler(e.deps)
	require.NoError(e.tb, err)
	return h
}

// mustCache authenticates tok on e.h until an answer comes from the cache
// (the first reads the database; a reconnecting listener may empty the
// cache meanwhile) and returns the cache's size then.
func (e *env) mustCache(tok identity.Tokens) int {
	e.tb.Helper()
	waitFor(e.tb, "a check answered from the cache", func() bool {
		before := e.h.SessionCacheStats().Hits
		e.MustAuthenticate(tok.AccessToken)
		return e.h.SessionCacheStats().Hits > before
	})
	n := e.h.SessionCacheStats().Entries
	require.Positive(e.tb, n)
	return n
}

// waitForgotten waits until the cache holds fewer entries than it did:
// the proof that an invalidation was heard, not merely that a later check
// read the database.
func (e *env) waitForgotten(had int) {
	e.tb.Helper()
	waitFor(e.tb, "the invalidation to be heard", func() bool { return e.h.SessionCacheStats().Entries < had })
}

// TestSessionCacheOwnWrites: a session check is answered from the cache,
// and this server's own revocation refuses the token on the very next
// request, with no wait for a notification.
func TestSessionCacheOwnWrites(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	e.MustRegister("ann@example.com")
	tok := e.MustLogin("ann@example.com")
	e.mustCache(tok)

	require.NoError(t, e.h.RevokeSession(ctx, e.MustAuthenticate(tok.AccessToken), tok.SessionID, rc))
	_, err := e.h.Authenticate(ctx, tok.AccessToken)
	require.ErrorIs(t, err, identity.ErrSessionRevoked)
}

// TestSessionCacheHearsOtherServers: every change another server (or the
// command line, or an operator's SQL) makes that could refuse a cached
// session reaches this server's cache: revocation, role change, a user's
// and the global token rotation, password reset.
func TestSessionCacheHearsOtherServers(t *testing.T) {
	t.Parallel()
	e := MustEnv(t, func(d *identity.Deps) { d.RotationGrace = 0 })
	ctx := context.Background()
	other := e.peer()
	_, err := other.CreateUser(ctx, "root@example.com", goodPassword, user.RoleAdmin, true)
	require.NoError(t, err)
	adminTok, err := other.Login(ctx, identity.LoginInput{Email: "root@example.com", Password: goodPassword, RequestContext: rc})
	require.NoError(t, err)
	admin, err := other.Authenticate(ctx, adminTok.AccessToken)
	require.NoError(t, err)
	v := e.MustRegister("bo@example.com")
	login := func() identity.Tokens {
		tok, err := other.Login(ctx, identity.LoginInput{Email: "bo@example.com", Password: goodPassword, RequestContext: rc})
		require.NoError(t, err)
		return tok
	}
	refused := func(tok identity.Tokens) {
		t.Helper()
		_, err := e.h.Authenticate(ctx, tok.AccessToken)
		require.ErrorIs(t, err, identity.ErrSessionRevoked)
	}

	t.Log("revocation")
	tok := login()
	had := e.mustCache(tok)
	p, err := other.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)
	require.NoError(t, other.RevokeSession(ctx, p, tok.SessionID, rc))
	e.waitForgotten(had)
	refused(tok)

	t.Log("role change")
	tok = login()
	had = e.mustCache(tok)
	_, err = other.SetRoles(ctx, admin, v.ID, []user.Role{user.RoleReadonly}, rc)
	require.NoError(t, err)
	e.waitForgotten(had)
	require.Equal(t, []user.Role{user.RoleReadonly}, e.MustAuthenticate(tok.AccessToken).Roles)

	t.Log("user rotation")
	had = e.mustCache(tok)
	require.NoError(t, other.RotateUserTokens(ctx, admin, v.ID, "laptop stolen", rc))
	e.waitForgotten(had)
	refused(tok)

	t.Log("global rotation")
	tok = login()
	had = e.mustCache(tok)
	_, err = other.RotateAllTokens(ctx, admin, "signing key exposed", rc)
	require.NoError(t, err)
	e.waitForgotten(had)
	refused(tok)

	t.Log("password reset")
	tok = login()
	had = e.mustCache(tok)
	require.NoError(t, other.RequestPasswordReset(ctx, "bo@example.com", rc))
	require.NoError(t, other.ResetPassword(ctx, e.MustMailedToken("bo@example.com", identity.ResetPasswordPath), "a brand new passphrase 7", rc))
	e.waitForgotten(had)
	refused(tok)

	t.Log("an operator's SQL")
	tok, err = other.Login(ctx, identity.LoginInput{Email: "bo@example.com", Password: "a brand new passphrase 7", RequestContext: rc})
	require.NoError(t, err)
	had = e.mustCache(tok)
	_, err = e.pool.Exec(ctx, `UPDATE auth_sessions SET status = 'revoked', ended_at = now() WHERE id = $1`, tok.SessionID)
	require.NoError(t, err)
	e.waitForgotten(had)
	refused(tok)
}

// listenerPID returns the backend of the session cache's listening
// connection in this test's database.
func (e *env) listenerPID() int {
	e.tb.Helper()
	var pid int
	require.NoError(e.tb, e.pool.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'dashtam identity invalidations'`).Scan(&pid))
	return pid
}

// TestSessionCacheListenerLost: when the listening connection dies, the
// cache is emptied, and it is used again only once listening resumes, so
// nothing cached before the loss outlives it.
func TestSessionCacheListenerLost(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	other := e.peer()
	e.MustRegister("cy@example.com")
	tok := e.MustLogin("cy@example.com")
	e.mustCache(tok)
	listens := e.h.SessionCacheStats().Listens

	_, err := e.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, e.listenerPID())
	require.NoError(t, err)
	waitFor(t, "the listener to reconnect", func() bool {
		s := e.h.SessionCacheStats()
		return s.Listens > listens && s.Enabled
	})
	require.Zero(t, e.h.SessionCacheStats().Entries, "a reconnected cache starts empty")

	e.mustCache(tok)
	p, err := other.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)
	require.NoError(t, other.RevokeSession(ctx, p, tok.SessionID, rc))
	waitFor(t, "the revocation to be heard", func() bool { return e.h.SessionCacheStats().Entries == 0 })
	_, err = e.h.Authenticate(ctx, tok.AccessToken)
	require.ErrorIs(t, err, identity.ErrSessionRevoked)
}

// TestSessionCacheSilentListener: a listening connection that stops
// delivering without failing (its server process frozen, as behind a
// network partition) misses a revocation; the heartbeat notices, and the
// cache reconnects empty, so the missed revocation is enforced.
func TestSessionCacheSilentListener(t *testing.T) {
	t.Parallel()
	e := MustEnv(t, func(d *identity.Deps) { d.Heartbeat = 100 * time.Millisecond })
	ctx := context.Background()
	other := e.peer()
	e.MustRegister("di@example.com")
	tok := e.MustLogin("di@example.com")
	e.mustCache(tok)

	pid := e.listenerPID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Skipf("cannot freeze the listener's server process %d (the database is not local or not ours): %v", pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	listens := e.h.SessionCacheStats().Listens

	p, err := other.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)
	require.NoError(t, other.RevokeSession(ctx, p, tok.SessionID, rc)) // its NOTIFY never arrives
	waitFor(t, "the heartbeat to give up on the frozen listener", func() bool {
		s := e.h.SessionCacheStats()
		return s.Listens > listens && s.Enabled
	})
	_, err = e.h.Authenticate(ctx, tok.AccessToken)
	require.ErrorIs(t, err, identity.ErrSessionRevoked)
}
