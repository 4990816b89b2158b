package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/cmd/dashtam/internal/devdb"
	"github.com/dashtam/dashtam/commands/identity"
)

// TestDatabaseOutageAnswers503AndRecovers runs the real server on a
// PostgreSQL cluster of its own, stops the cluster mid-test and starts it
// again. While it is down, every route that needs it answers 503
// problem+json with Retry-After (it used to answer 500 internal), without
// naming the database's address; once it is back, the same server serves
// again without a restart.
func TestDatabaseOutageAnswers503AndRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Not t.TempDir: when root, the cluster runs as postgres, which cannot
	// enter a 0700 parent.
	dataDir, err := os.MkdirTemp("", "dashtam-outage-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	url, err := devdb.StartWith(ctx, dataDir, nil, devdb.Options{Throwaway: true})
	if err != nil {
		t.Skipf("no PostgreSQL cluster can be started here: %v", err)
	}
	t.Cleanup(func() { _ = devdb.Stop(context.Background(), dataDir) })

	ownerURL, err := devdb.OwnerURL(dataDir)
	require.NoError(t, err)
	srv := startIdentityServerAt(t, url, ownerURL)
	c := srv.client
	const password = "a long and unusual passphrase"
	alice := "alice@example.com"
	c.Do("POST", "/api/v1/users", map[string]string{"email": alice, "password": password}, "").Want(t, 201, "register")
	c.Do("POST", "/api/v1/email-verifications", map[string]string{"token": mustMailToken(t, srv.mailDir, alice, identity.VerifyEmailPath)}, "").Want(t, 204, "verify")
	login := c.Do("POST", "/api/v1/sessions", map[string]string{"email": alice, "password": password}, "").Want(t, 201, "login")
	access, refresh := login.Str("access_token"), login.Str("refresh_token")

	require.NoError(t, devdb.Stop(ctx, dataDir))
	for _, call := range []struct {
		what, method, path string
		body               any
		token              string
	}{
		{"login", "POST", "/api/v1/sessions", map[string]string{"email": alice, "password": password}, ""},
		{"register", "POST", "/api/v1/users", map[string]string{"email": "bob@example.com", "password": password}, ""},
		{"refresh", "POST", "/api/v1/tokens", map[string]string{"refresh_token": refresh}, ""},
		{"me", "GET", "/api/v1/users/me", nil, access},
		{"sessions", "GET", "/api/v1/sessions", nil, access},
		{"reset request", "POST", "/api/v1/password-reset-tokens", map[string]string{"email": alice}, ""},
		{"verification", "POST", "/api/v1/email-verifications", map[string]string{"token": "unknown"}, ""},
	} {
		r := c.Do(call.method, call.path, call.body, call.token).Want(t, 503, call.what+" while the database is down")
		assert.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), call.what)
		assert.Equal(t, "unavailable", r.Str("code"), call.what)
		assert.Equal(t, "5", r.Header.Get("Retry-After"), call.what)
		assert.NotContains(t, r.Raw, "127.0.0.1", call.what)
		assert.NotContains(t, r.Raw, "connect", call.what)
	}
	c.Do("GET", "/ready", nil, "").Want(t, 503, "not ready while the database is down")
	c.Do("GET", "/health", nil, "").Want(t, 200, "alive all the same")

	_, err = devdb.StartWith(ctx, dataDir, nil, devdb.Options{Throwaway: true})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return c.Do("GET", "/api/v1/users/me", nil, access).Status == 200
	}, time.Minute, 100*time.Millisecond, "the server recovers once the database is back")
	c.Do("POST", "/api/v1/sessions", map[string]string{"email": alice, "password": password}, "").Want(t, 201, "login after the outage")
	c.Do("POST", "/api/v1/tokens", map[string]string{"refresh_token": refresh}, "").Want(t, 200, "refresh after the outage")
	c.Do("POST", "/api/v1/users", map[string]string{"email": "bob@example.com", "password": password}, "").Want(t, 201, "register after the outage")
}
