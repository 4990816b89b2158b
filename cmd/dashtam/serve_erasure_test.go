package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/eventstore"
)

// The personal data of the erasure test's user, each distinctive enough to
// be searched for everywhere.
const (
	eraseEmail  = "erin.erasure@example.com"
	eraseIP     = "203.0.113.77"
	eraseUA     = "ErinBrowser/9.9 (erasure test)"
	eraseAlias1 = "Erins Household Checking"
	eraseAlias2 = "Erins Rainy Day Savings"
	erasePass   = "a long and unusual passphrase"
)

// asErin sends a request from Erin's address and browser.
func asErin(t *testing.T, srv *identityServer, method, path string, body any, token string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.client.base+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", eraseUA)
	req.Header.Set("X-Forwarded-For", eraseIP)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &r.Body))
	}
	return r
}

// dumpDatabase renders every row of every table of the public schema as
// text, table by table: where personal data could hide.
func dumpDatabase(t *testing.T, srv *identityServer) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := srv.pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "events")
	out := map[string]string{}
	for _, tbl := range tables {
		var dump *string
		require.NoError(t, srv.pool.QueryRow(ctx, `SELECT string_agg(t::text, E'\n') FROM `+pgx.Identifier{tbl}.Sanitize()+` t`).Scan(&dump))
		if dump != nil {
			out[tbl] = *dump
		}
	}
	return out
}

func assertNoPersonalData(t *testing.T, where, s string) {
	t.Helper()
	for _, secret := range []string{eraseEmail, eraseIP, eraseUA, "ErinBrowser", eraseAlias1, eraseAlias2, strings.ToLower(eraseAlias2)} {
		assert.NotContains(t, s, secret, "%s still holds %q", where, secret)
	}
}

// TestErasureLeavesNoPersonalDataAndTheLogVerifies is the erasure, end to
// end: Erin registers, logs in twice and names two connections; an auditor
// sees her data (decrypted) while the database holds only ciphertext; she
// erases herself; afterwards her email, addresses, user agent and aliases
// appear nowhere — events decrypted, every table, the logs, the API's
// answers — while audit verify still passes and the erasure is recorded.
func TestErasureLeavesNoPersonalDataAndTheLogVerifies(t *testing.T) {
	srv := startIdentityServer(t, func(env map[string]string) { env["DASHTAM_TRUSTED_PROXIES"] = "127.0.0.0/8" })
	ctx := context.Background()
	c := srv.client

	reg := asErin(t, srv, "POST", "/api/v1/users", map[string]string{"email": eraseEmail, "password": erasePass}, "").Want(t, 201, "register")
	erin := reg.Str("id")
	erinID := uuid.MustParse(erin)
	tok := mustMailToken(t, srv.mailDir, eraseEmail, identity.VerifyEmailPath)
	asErin(t, srv, "POST", "/api/v1/email-verifications", map[string]string{"token": tok}, "").Want(t, 204, "verify")
	asErin(t, srv, "POST", "/api/v1/sessions", map[string]string{"email": eraseEmail, "password": "wrong password here"}, "").Want(t, 401, "a failed login")
	asErin(t, srv, "POST", "/api/v1/sessions", map[string]string{"email": eraseEmail, "password": erasePass}, "").Want(t, 201, "login")
	login := asErin(t, srv, "POST", "/api/v1/sessions", map[string]string{"email": eraseEmail, "password": erasePass}, "").Want(t, 201, "login again")
	refreshed := asErin(t, srv, "POST", "/api/v1/tokens", map[string]string{"refresh_token": login.Str("refresh_token")}, "").Want(t, 200, "refresh")
	access := refreshed.Str("access_token")

	// Two connection events with aliases she typed, on her connection's stream.
	conns, err := eventstore.NewRepository(srv.store, commands.ConnectionAggregate())
	require.NoError(t, err)
	connID := uuid.New()
	cctx := commands.WithMetadata(ctx, erinID, commands.ActorUser(erinID), "connect", commands.RequestContext{UserAgent: eraseUA})
	now := time.Now().UTC().Truncate(time.Microsecond)
	_, err = conns.Update(cctx, connID, func(_ context.Context, _ *eventstore.Tx, c *connection.Connection) (eventstore.Decision[connection.Event], error) {
		return eventstore.Decide(c.Start(connection.Start{UserID: erinID, ProviderSlug: "sandbox", Alias: eraseAlias1, ExpiresAt: now.Add(time.Hour), At: now}))
	})
	require.NoError(t, err)
	_, err = conns.Update(cctx, connID, func(_ context.Context, _ *eventstore.Tx, c *connection.Connection) (eventstore.Decision[connection.Event], error) {
		return eventstore.Decide(c.Rename(eraseAlias2, now))
	})
	require.NoError(t, err)

	// An auditor sees it all, decrypted; the database holds only ciphertext.
	_, err = srv.identity.CreateUser(ctx, "auditor@example.com", "another long passphrase", user.RoleAuditor, true)
	require.NoError(t, err)
	audTok := c.Do("POST", "/api/v1/sessions", map[string]string{"email": "auditor@example.com", "password": "another long passphrase"}, "").Want(t, 201, "auditor").Str("access_token")
	before := c.Do("GET", "/api/v1/audit-events?user_id="+erin+"&limit=100", nil, audTok).Want(t, 200, "erin's events")
	for _, want := range []string{eraseEmail, eraseIP, eraseUA} {
		assert.Contains(t, before.Raw, want, "the auditor reads Erin's data before the erasure")
	}
	connState := c.Do("GET", "/api/v1/audit/streams/connection/"+connID.String(), nil, audTok).Want(t, 200, "connection state")
	assert.Equal(t, eraseAlias2, connState.Body["state"].(map[string]any)["alias"])
	var events string
	require.NoError(t, srv.pool.QueryRow(ctx, `SELECT string_agg(payload::text || metadata::text, E'\n') FROM events`).Scan(&events))
	assertNoPersonalData(t, "the stored events", events)
	assert.Contains(t, events, eventstore.SealedPrefix)

	// The erasure: a wrong password first.
	asErin(t, srv, "DELETE", "/api/v1/users/me", map[string]string{"password": "not the password at all"}, access).Want(t, 401, "wrong password")
	asErin(t, srv, "DELETE", "/api/v1/users/me", map[string]string{"password": erasePass}, access).Want(t, 204, "erase")

	asErin(t, srv, "GET", "/api/v1/users/me", nil, access).Want(t, 401, "every session ended")

	// Nowhere: the API's answers, every table, the logs.
	after := c.Do("GET", "/api/v1/audit-events?user_id="+erin+"&limit=100", nil, audTok).Want(t, 200, "erin's events after")
	assertNoPersonalData(t, "the audit API", after.Raw)
	assert.Contains(t, after.Raw, eventstore.ErasedValue)
	assert.Contains(t, after.Raw, "UserErased")
	for _, item := range after.Body["items"].([]any) {
		e := item.(map[string]any)
		d := c.Do("GET", "/api/v1/audit-events/"+e["id"].(string), nil, audTok).Want(t, 200, "one event")
		assertNoPersonalData(t, "an event", d.Raw)
	}
	assertNoPersonalData(t, "the connection's events",
		c.Do("GET", "/api/v1/audit-events?stream=connection:"+connID.String(), nil, audTok).Want(t, 200, "connection events").Raw)
	assertNoPersonalData(t, "the user's state", c.Do("GET", "/api/v1/audit/streams/user/"+erin, nil, audTok).Want(t, 200, "user state").Raw)
	assertNoPersonalData(t, "the connection's state", c.Do("GET", "/api/v1/audit/streams/connection/"+connID.String(), nil, audTok).Want(t, 200, "connection state").Raw)
	// The connections read model erases her aliases when its projector
	// reaches UserErased; an alias folded after it opens as erased.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, srv.pool.QueryRow(ctx, `SELECT count(*) FROM connections WHERE user_id = $1 AND alias <> $2`,
			erinID, eventstore.ErasedValue).Scan(&n))
		return n == 0
	}, 30*time.Second, 10*time.Millisecond)
	for tbl, rows := range dumpDatabase(t, srv) {
		assertNoPersonalData(t, "table "+tbl, rows)
	}
	assertNoPersonalData(t, "the server's logs", srv.logs.String())

	// The log still verifies, chains and checkpoints, and replays without her data.
	require.Eventually(t, func() bool {
		_, err := srv.checkpoints.CheckpointAll(ctx, true)
		require.NoError(t, err)
		var n int64
		require.NoError(t, srv.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
		ck, _, err := srv.store.NewestCheckpoint(ctx)
		require.NoError(t, err)
		return ck.TreeSize == n
	}, 30*time.Second, 10*time.Millisecond)
	signer, err := eventstore.ParseSigningKey(srv.env["DASHTAM_AUDIT_SIGNING_KEY"])
	require.NoError(t, err)
	code, stdout, stderr := runAuditCLI(t, "--database-url", srv.opts.databaseURL, "--data-dir", t.TempDir(), "audit", "verify",
		"--public-key", eventstore.EncodePublicKey(signer.PublicKey()))
	require.Equal(t, 0, code, "verify after the erasure:\n%s%s", stdout, stderr)
	code, stdout, _ = runAuditCLI(t, "--database-url", srv.opts.databaseURL, "audit", "replay", "--format", "jsonl", "--user", erin)
	require.Equal(t, 0, code)
	assertNoPersonalData(t, "audit replay", stdout)
	code, stdout, _ = runAuditCLI(t, "--database-url", srv.opts.databaseURL, "--data-dir", t.TempDir(), "audit", "state", "--stream", "user:"+erin, "--as-of", time.Now().UTC().Format(time.RFC3339Nano))
	require.Equal(t, 0, code)
	assertNoPersonalData(t, "audit state", stdout)

	// No login any more (a new request from her address, after the scans:
	// its rate-limit bucket is new), and her address is free again.
	asErin(t, srv, "POST", "/api/v1/sessions", map[string]string{"email": eraseEmail, "password": erasePass}, "").Want(t, 401, "no login")
	c.Do("POST", "/api/v1/users", map[string]string{"email": eraseEmail, "password": erasePass}, "").Want(t, 201, "the email can be registered again")
}

// TestAdminErasesAUser: an administrator erases another user; a second
// erasure is harmless; an unknown user is 404 and a user is no admin.
func TestAdminErasesAUser(t *testing.T) {
	srv := startIdentityServer(t)
	c := srv.client
	ctx := context.Background()
	bobID, bobToken := auditAPIUser(t, srv, "bob.erased@example.com")
	c.Do("POST", "/api/v1/admin/users/"+bobID+"/erasures", nil, bobToken).Want(t, 403, "a user cannot erase others")
	_, err := srv.identity.CreateUser(ctx, "root@example.com", "a long admin passphrase", user.RoleAdmin, true)
	require.NoError(t, err)
	admin := c.Do("POST", "/api/v1/sessions", map[string]string{"email": "root@example.com", "password": "a long admin passphrase"}, "").Want(t, 201, "admin").Str("access_token")
	c.Do("POST", "/api/v1/admin/users/"+bobID+"/erasures", nil, admin).Want(t, 204, "erase bob")
	c.Do("GET", "/api/v1/users/me", nil, bobToken).Want(t, 401, "bob's sessions ended")
	c.Do("POST", "/api/v1/admin/users/"+bobID+"/erasures", nil, admin).Want(t, 204, "again")
	c.Do("POST", "/api/v1/admin/users/"+uuid.NewString()+"/erasures", nil, admin).Want(t, 404, "nobody")
	var by string
	require.NoError(t, srv.pool.QueryRow(ctx, `SELECT payload->>'by' FROM events WHERE stream_id = $1 AND event_type = 'UserErased'`, bobID).Scan(&by))
	var adminID string
	require.NoError(t, srv.pool.QueryRow(ctx, `SELECT user_id::text FROM user_emails WHERE email = 'root@example.com'`).Scan(&adminID))
	assert.Equal(t, adminID, by, "the erasure names who asked")
	assertNoPersonalData(t, "x", "") // keeps the helper's list in one place
	var emails int
	require.NoError(t, srv.pool.QueryRow(ctx, `SELECT count(*) FROM user_emails WHERE email = 'bob.erased@example.com'`).Scan(&emails))
	assert.Zero(t, emails)
}
