package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/migrations/testdb"
)

// testAuditSigningKey is the audit signing key (base64 of an Ed25519 seed)
// of every test server: serve refuses to start without one.
const testAuditSigningKey = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

// TestServeEndToEnd opens the real server on 127.0.0.1:0 against a fresh
// database, migrating as the owner and serving as the application role,
// talks to it over HTTP and shuts it down gracefully.
func TestServeEndToEnd(t *testing.T) {
	appURL, ownerURL := testdb.NewEmptyURLs(t)
	o := &globalOptions{dataDir: t.TempDir(), databaseURL: appURL, databaseMigrateURL: ownerURL}
	env := map[string]string{
		"DASHTAM_HTTP_ADDR":         "127.0.0.1:0",
		"DASHTAM_ENCRYPTION_KEY":    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_AUDIT_SIGNING_KEY": testAuditSigningKey,
		"DASHTAM_JWT_SECRET":        strings.Repeat("j", 40),
	}
	var logs strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := openServer(ctx, o, func(k string) string { return env[k] }, &logs)
	require.NoError(t, err)
	defer app.Close()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	base := "http://" + app.Addr()

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}

	resp, _ := get("/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("X-Trace-Id"))

	resp, body := get("/ready")
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "streams", "the projectors are part of readiness")

	resp, body = get("/api/v1/providers")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	var list struct {
		Items []struct{ Slug string } `json:"items"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Items, 1)
	assert.Equal(t, "sandbox", list.Items[0].Slug)

	resp, body = get("/no/such/route")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	assert.Contains(t, string(body), `"trace_id"`)

	resp, body = get("/metrics")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `dashtam_projection_parked_events{projection="streams"} 0`)

	// A parked event degrades readiness without failing it, and is counted.
	pool, err := pgxpool.New(ctx, o.databaseURL)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `INSERT INTO projection_parked_events (projection, global_position, transaction_id,
		event_id, stream_type, stream_id, version, event_type, error, attempts)
		VALUES ('streams', 1, '1', gen_random_uuid(), 'user', gen_random_uuid(), 1, 'Poison', 'cannot decode', 3)`)
	require.NoError(t, err)
	resp, body = get("/ready")
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, string(body), `"status":"degraded"`)
	assert.Contains(t, string(body), `"parked_events":1`)
	_, body = get("/metrics")
	assert.Contains(t, string(body), `dashtam_projection_parked_events{projection="streams"} 1`)

	cancel()
	require.NoError(t, <-done)
	assert.Contains(t, logs.String(), `"dashtam listening"`)
	assert.NotContains(t, logs.String(), env["DASHTAM_JWT_SECRET"])
	if appURL != ownerURL {
		assert.NotContains(t, logs.String(), "can rewrite the event log")
	}
}

// TestServeWarnsWhenOneRoleDoesBoth: with no migrate URL the database URL's
// role migrates, so owns the log, and serves; serve says so once.
func TestServeWarnsWhenOneRoleDoesBoth(t *testing.T) {
	t.Setenv("DATABASE_MIGRATE_URL", "")
	o := &globalOptions{dataDir: t.TempDir(), databaseURL: testdb.NewEmptyURL(t)}
	env := map[string]string{
		"DASHTAM_HTTP_ADDR":         "127.0.0.1:0",
		"DASHTAM_ENCRYPTION_KEY":    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_AUDIT_SIGNING_KEY": testAuditSigningKey,
		"DASHTAM_JWT_SECRET":        strings.Repeat("j", 40),
	}
	var logs strings.Builder
	app, err := openServer(context.Background(), o, func(k string) string { return env[k] }, &logs)
	require.NoError(t, err)
	app.Close()
	assert.Equal(t, 1, strings.Count(logs.String(), "can rewrite the event log"), logs.String())
	assert.Contains(t, logs.String(), `"level":"WARN"`)
}

// TestServeAsApplicationRoleOnly: a release job migrated as the owner; serve
// holding only the application role's credentials finds nothing to do and
// serves, with no warning. Were a migration pending, it would say which
// role it needs.
func TestServeAsApplicationRoleOnly(t *testing.T) {
	t.Setenv("DATABASE_MIGRATE_URL", "")
	appURL, ownerURL := testdb.NewEmptyURLs(t)
	if appURL == ownerURL {
		t.Skip("DATABASE_MIGRATE_URL is unset: one role does both (make test sets both)")
	}
	env := map[string]string{
		"DASHTAM_HTTP_ADDR":         "127.0.0.1:0",
		"DASHTAM_ENCRYPTION_KEY":    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_AUDIT_SIGNING_KEY": testAuditSigningKey,
		"DASHTAM_JWT_SECRET":        strings.Repeat("j", 40),
	}
	o := &globalOptions{dataDir: t.TempDir(), databaseURL: appURL}
	_, err := openServer(context.Background(), o, func(k string) string { return env[k] }, io.Discard)
	require.Error(t, err, "migrating as the application role")
	assert.Contains(t, err.Error(), "need the owner role: set DATABASE_MIGRATE_URL")

	var stderr strings.Builder
	code := runWith(context.Background(), []string{"--database-url", appURL, "--database-migrate-url", ownerURL, "migrate"}, io.Discard, &stderr)
	require.Equal(t, 0, code, stderr.String())
	var logs strings.Builder
	app, err := openServer(context.Background(), o, func(k string) string { return env[k] }, &logs)
	require.NoError(t, err)
	app.Close()
	assert.Contains(t, logs.String(), "dashtam listening")
	assert.NotContains(t, logs.String(), "can rewrite the event log")
}

// TestServeRefusesMismatchedURLs: an owner URL of another database than the
// application's would migrate one and serve the other.
func TestServeRefusesMismatchedURLs(t *testing.T) {
	appURL, _ := testdb.NewEmptyURLs(t)
	o := &globalOptions{dataDir: t.TempDir(), databaseURL: appURL, databaseMigrateURL: testdb.NewEmptyURL(t)}
	env := map[string]string{
		"DASHTAM_ENCRYPTION_KEY":    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_AUDIT_SIGNING_KEY": testAuditSigningKey,
		"DASHTAM_JWT_SECRET":        strings.Repeat("j", 40),
	}
	_, err := openServer(context.Background(), o, func(k string) string { return env[k] }, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "must name the same one")
}

func TestServeRefusesMissingSecret(t *testing.T) {
	var stderr strings.Builder
	t.Setenv("DASHTAM_ENCRYPTION_KEY", "")
	code := runWith(context.Background(), []string{"serve", "--database-url", "postgres://127.0.0.1:1/x"}, io.Discard, &stderr)
	assert.Equal(t, 1, code)
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, stderr.String())
	assert.Contains(t, stderr.String(), "DASHTAM_ENCRYPTION_KEY")
}
