package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// identityClient talks JSON to a running server.
type identityClient struct {
	tb   testing.TB
	base string
}

// reply is one decoded answer.
type reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// Do sends method to path with body (marshalled unless nil) and token.
func (c identityClient) Do(method, path string, body any, token string) reply {
	c.tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.tb, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.tb, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.tb, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.tb, err)
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		require.NoError(c.tb, json.Unmarshal(raw, &r.Body), "%s %s: %s", method, path, raw)
	}
	return r
}

// Want asserts the status and returns the reply for chaining.
func (r reply) Want(tb testing.TB, status int, what string) reply {
	tb.Helper()
	require.Equal(tb, status, r.Status, "%s: %s", what, r.Raw)
	return r
}

// Str returns a string member of the body.
func (r reply) Str(name string) string {
	s, _ := r.Body[name].(string)
	return s
}

// mustMailToken returns the token of the link to path in the newest mail
// to addr in the file:// outbox dir, waiting for one to arrive: mails are
// sent by the server's background workers. A test that needs the mail of
// a later request drains the jobs first (identityServer.drainJobs).
func mustMailToken(tb testing.TB, dir, addr, path string) string {
	tb.Helper()
	var token string
	require.Eventually(tb, func() bool {
		msgs := mailtest.ReadOutbox(tb, dir)
		for i := len(msgs) - 1; i >= 0; i-- {
			if strings.Contains(msgs[i].To, addr) {
				if t, ok := mailtest.FindLinkToken(msgs[i].Text, path); ok {
					token = t
					return true
				}
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "no mail with a %s link to %s in %s", path, addr, dir)
	return token
}

// drainJobs waits until the server's job queue holds nothing to run now:
// every mail enqueued so far has been sent (or has failed for good).
func (s *identityServer) drainJobs(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job
			WHERE state IN ('available', 'running', 'pending') OR (state IN ('scheduled', 'retryable') AND scheduled_at <= now())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	}, 30*time.Second, 10*time.Millisecond, "the server's jobs did not drain")
}

// identityServer is the real server over a fresh database, with a file
// outbox, for end-to-end identity tests.
type identityServer struct {
	*server
	client  identityClient
	opts    *globalOptions
	mailDir string
	env     map[string]string // the server's environment
	logs    *strings.Builder
	stop    func() error // stops serving and returns what Run returned
}

// startIdentityServer starts an identityServer that is stopped and closed
// when the test ends, if the test has not stopped it; change adjusts the
// server's environment first.
func startIdentityServer(t *testing.T, change ...func(env map[string]string)) *identityServer {
	t.Helper()
	appURL, ownerURL := testdb.NewEmptyURLs(t)
	return startIdentityServerAt(t, appURL, ownerURL, change...)
}

// startIdentityServerAt is startIdentityServer over the database that
// appURL (the application role) and ownerURL (the owner) reach.
func startIdentityServerAt(t *testing.T, appURL, ownerURL string, change ...func(env map[string]string)) *identityServer {
	t.Helper()
	mailDir := t.TempDir()
	o := &globalOptions{dataDir: t.TempDir(), databaseURL: appURL, databaseMigrateURL: ownerURL}
	env := map[string]string{
		"DASHTAM_HTTP_ADDR":         "127.0.0.1:0",
		"DASHTAM_ENCRYPTION_KEY":    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_AUDIT_SIGNING_KEY": testAuditSigningKey,
		"DASHTAM_JWT_SECRET":        strings.Repeat("j", 40),
		"DASHTAM_MAIL_URL":          "file://" + mailDir,
	}
	for _, f := range change {
		f(env)
	}
	logs := &strings.Builder{}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openServer(ctx, o, func(k string) string { return env[k] }, logs)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop(); app.Close() })
	return &identityServer{server: app, client: identityClient{tb: t, base: "http://" + app.Addr()},
		opts: o, mailDir: mailDir, env: env, logs: logs, stop: stop}
}

// TestIdentityJourneyEndToEnd walks the identity journey (docs/identity.md) against the real
// server, database and file outbox: register, read the mail, verify, log
// in, call /users/me, refresh, replay the old refresh token (the session is
// revoked), log in again, log out; another user's session is 404; and the
// first admin is bootstrapped with `users create`.
func TestIdentityJourneyEndToEnd(t *testing.T) {
	srv := startIdentityServer(t)
	c, mailDir, o := srv.client, srv.mailDir, srv.opts
	const password = "a long and unusual passphrase"

	// Register and verify.
	alice := "alice@example.com"
	u := c.Do("POST", "/api/v1/users", map[string]string{"email": alice, "password": password}, "").Want(t, 201, "register")
	assert.Equal(t, alice, u.Str("email"))
	assert.Equal(t, false, u.Body["email_verified"])
	assert.NotContains(t, u.Raw, password)
	c.Do("POST", "/api/v1/users", map[string]string{"email": alice, "password": password}, "").Want(t, 409, "duplicate email")

	p := c.Do("POST", "/api/v1/sessions", map[string]string{"email": alice, "password": password}, "").Want(t, 403, "login before verification")
	assert.Equal(t, "email_not_verified", p.Str("code"))

	verification := mustMailToken(t, mailDir, alice, identity.VerifyEmailPath)
	c.Do("POST", "/api/v1/email-verifications", map[string]string{"token": verification}, "").Want(t, 204, "verify")
	c.Do("POST", "/api/v1/email-verifications", map[string]string{"token": verification}, "").Want(t, 400, "verify twice")

	// Log in, use the token, refresh.
	login := c.Do("POST", "/api/v1/sessions", map[string]string{"email": alice, "password": password}, "").Want(t, 201, "login")
	assert.Equal(t, "Bearer", login.Str("token_type"))
	assert.Equal(t, "no-store", login.Header.Get("Cache-Control"))
	access1, refresh1, session1 := login.Str("access_token"), login.Str("refresh_token"), login.Str("session_id")
	me := c.Do("GET", "/api/v1/users/me", nil, access1).Want(t, 200, "me")
	assert.Equal(t, alice, me.Str("email"))
	assert.Equal(t, true, me.Body["email_verified"])
	assert.Equal(t, []any{"user"}, me.Body["roles"])
	assert.NotContains(t, me.Raw, "hash")

	refreshed := c.Do("POST", "/api/v1/tokens", map[string]string{"refresh_token": refresh1}, "").Want(t, 200, "refresh")
	access2 := refreshed.Str("access_token")
	assert.Equal(t, session1, refreshed.Str("session_id"), "a refresh keeps the session")
	assert.NotEqual(t, refresh1, refreshed.Str("refresh_token"))
	c.Do("GET", "/api/v1/users/me", nil, access2).Want(t, 200, "me with the refreshed token")

	// Theft detection: the spent refresh token revokes the whole session.
	c.Do("POST", "/api/v1/tokens", map[string]string{"refresh_token": refresh1}, "").Want(t, 401, "old refresh token again")
	c.Do("GET", "/api/v1/users/me", nil, access2).Want(t, 401, "the session is revoked at once")
	c.Do("POST", "/api/v1/tokens", map[string]string{"refresh_token": refreshed.Str("refresh_token")}, "").Want(t, 401, "and its newest refresh token too")

	// Log in again; another user's session is 404, exactly as a missing one.
	again := c.Do("POST", "/api/v1/sessions", map[string]string{"email": alice, "password": password}, "").Want(t, 201, "login again")
	access3, session3 := again.Str("access_token"), again.Str("session_id")
	sessions := c.Do("GET", "/api/v1/sessions", nil, access3).Want(t, 200, "list sessions")
	assert.Contains(t, sessions.Raw, session3)
	assert.NotContains(t, sessions.Raw, again.Str("refresh_token"))
	c.Do("GET", "/api/v1/sessions/"+session3, nil, access3).Want(t, 200, "own session")

	bob := "bob@example.com"
	c.Do("POST", "/api/v1/users", map[string]string{"email": bob, "password": password}, "").Want(t, 201, "register bob")
	// Bob uses the page the mailed link opens rather than the API: the
	// link's path is the one web serves the page on.
	bobToken := mustMailToken(t, mailDir, bob, identity.VerifyEmailPath)
	page, err := http.Get(c.base + identity.VerifyEmailPath + "?token=" + url.QueryEscape(bobToken))
	require.NoError(t, err)
	body, err := io.ReadAll(page.Body)
	page.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, string(body), `action="`+identity.VerifyEmailPath+`"`)
	page, err = http.PostForm(c.base+identity.VerifyEmailPath, url.Values{"token": {bobToken}})
	require.NoError(t, err)
	page.Body.Close()
	require.Equal(t, http.StatusOK, page.StatusCode, "verify bob through the page")
	bobLogin := c.Do("POST", "/api/v1/sessions", map[string]string{"email": bob, "password": password}, "").Want(t, 201, "bob logs in")
	bobAccess := bobLogin.Str("access_token")
	missing := c.Do("GET", "/api/v1/sessions/00000000-0000-4000-8000-000000000000", nil, bobAccess).Want(t, 404, "a missing session")
	other := c.Do("GET", "/api/v1/sessions/"+session3, nil, bobAccess).Want(t, 404, "alice's session as bob")
	assert.Equal(t, missing.Str("detail"), other.Str("detail"))
	c.Do("DELETE", "/api/v1/sessions/"+session3, nil, bobAccess).Want(t, 404, "bob cannot end alice's session")
	c.Do("GET", "/api/v1/admin/security/config", nil, bobAccess).Want(t, 403, "a user is no admin")

	// Log out.
	c.Do("DELETE", "/api/v1/sessions/current", nil, access3).Want(t, 204, "logout")
	c.Do("GET", "/api/v1/users/me", nil, access3).Want(t, 401, "me after logout")

	// Bootstrap an admin from the command line, against the same database;
	// the CLI reads the process environment, as an operator's shell has it.
	for _, k := range []string{"DASHTAM_ENCRYPTION_KEY", "DASHTAM_JWT_SECRET", "DASHTAM_MAIL_URL"} {
		t.Setenv(k, srv.env[k])
	}
	code, stdout, stderr := runWithStdin(t, password+"\n", "users", "create", "--email", "root@example.com",
		"--role", "admin", "--verified", "--database-url", o.databaseURL, "--database-migrate-url", o.databaseMigrateURL, "--data-dir", o.dataDir)
	require.Equal(t, 0, code, "users create: %s", stderr)
	assert.Contains(t, stdout, "<root@example.com> role=admin verified=true")
	assert.NotContains(t, stdout+stderr, password)
	admin := c.Do("POST", "/api/v1/sessions", map[string]string{"email": "root@example.com", "password": password}, "").Want(t, 201, "admin logs in")
	cfg := c.Do("GET", "/api/v1/admin/security/config", nil, admin.Str("access_token")).Want(t, 200, "security config")
	assert.Contains(t, cfg.Body, "global_token_version")

	require.NoError(t, srv.stop())
	for _, secret := range []string{password, refresh1, access1, verification} {
		assert.NotContains(t, srv.logs.String(), secret, "no secret in the logs")
	}
}

// TestLockoutDoesNotTellEmailsApart: five wrong-password logins to a
// registered address and to an address that belongs to nobody get answers
// that differ in nothing but their trace ids — status, problem body and
// headers, Retry-After included — each from its own client address so
// that the per-IP limit stays out of the way.
func TestLockoutDoesNotTellEmailsApart(t *testing.T) {
	srv := startIdentityServer(t, func(env map[string]string) { env["DASHTAM_TRUSTED_PROXIES"] = "127.0.0.0/8" })
	printf := func(format string, a ...any) string { return fmt.Sprintf(format, a...) }
	srv.client.Do("POST", "/api/v1/users", map[string]string{"email": "kim@example.com", "password": "a long and unusual passphrase"}, "").
		Want(t, 201, "register")
	login := func(email string, n int) (int, string, http.Header) {
		body, _ := json.Marshal(map[string]string{"email": email, "password": "the wrong passphrase entirely"})
		req, err := http.NewRequest("POST", srv.client.base+"/api/v1/sessions", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", printf("198.51.100.%d", n))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(raw, &doc), "%s", raw)
		delete(doc, "trace_id")
		delete(doc, "instance")
		canonical, _ := json.Marshal(doc)
		h := resp.Header.Clone()
		for _, k := range []string{"Date", "X-Trace-Id", "Content-Length"} {
			h.Del(k)
		}
		return resp.StatusCode, string(canonical), h
	}
	for i := 1; i <= 6; i++ {
		ks, kb, kh := login("kim@example.com", i)
		us, ub, uh := login("nobody@example.com", 100+i)
		require.Equal(t, ks, us, "attempt %d: status", i)
		require.Equal(t, kb, ub, "attempt %d: body", i)
		// Retry-After counts down from two lockouts that began a few
		// milliseconds apart: it may differ by the one second a tick fell
		// between them, never more.
		kr, ur := kh.Get("Retry-After"), uh.Get("Retry-After")
		kh.Del("Retry-After")
		uh.Del("Retry-After")
		require.Equal(t, kh, uh, "attempt %d: headers", i)
		if i < 5 {
			require.Equal(t, "", kr+ur, "attempt %d: Retry-After before a lockout", i)
			continue
		}
		require.Equal(t, http.StatusForbidden, ks, "attempt %d: %s", i, kb)
		require.Contains(t, kb, "account_locked")
		kn, err1 := strconv.Atoi(kr)
		un, err2 := strconv.Atoi(ur)
		require.NoError(t, errors.Join(err1, err2), "Retry-After %q and %q", kr, ur)
		require.InDelta(t, kn, un, 1, "attempt %d: Retry-After", i)
	}
}

// TestMailSurvivesARestart: a registration committed by a server that
// stops before sending the verification mail (here, one that runs no
// workers at all: DASHTAM_ROLE=api) loses nothing: the mail is a job
// committed with the user, and the next server with workers sends it.
func TestMailSurvivesARestart(t *testing.T) {
	appURL, ownerURL := testdb.NewEmptyURLs(t)
	mailDir := t.TempDir()
	first := startIdentityServerAt(t, appURL, ownerURL, func(env map[string]string) {
		env["DASHTAM_ROLE"] = "api"
		env["DASHTAM_MAIL_URL"] = "file://" + mailDir
	})
	first.client.Do("POST", "/api/v1/users", map[string]string{"email": "durable@example.com", "password": "a long and unusual passphrase"}, "").
		Want(t, 201, "register")
	require.NoError(t, first.stop())
	assert.Empty(t, mailsTo(t, mailDir, "durable@example.com"), "an API-only server sends no mail")

	startIdentityServerAt(t, appURL, ownerURL, func(env map[string]string) {
		env["DASHTAM_ROLE"] = "worker"
		env["DASHTAM_MAIL_URL"] = "file://" + mailDir
	})
	mustMailToken(t, mailDir, "durable@example.com", identity.VerifyEmailPath)
}
