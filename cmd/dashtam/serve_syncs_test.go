package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/web"
)

// TestSyncEndToEnd walks the sync through the real server, its workers,
// projectors and mounted sandbox: the first sync follows the
// authorisation on its own and completes; a second one too soon is
// refused with Retry-After, a forced one is answered 202 with a Location
// that answers at once and reaches completed, unchanged where nothing
// changed; another user sees none of it; disconnecting closes the
// accounts.
func TestSyncEndToEnd(t *testing.T) {
	srv := startConnectionsServer(t)
	token := srv.mustUser(t, "dora@example.com")
	other := srv.mustUser(t, "eve@example.com")
	created := srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Household"}, token).
		Want(t, 201, "connect")
	id := created.Str("id")
	landed := srv.submitSandbox(t, created.Str("authorization_url"), "approve")
	require.Contains(t, landed.Body, `id="connected"`)
	base := "/api/v1/connections/" + id + "/syncs"

	// The first sync: requested by a job the callback enqueued, run by a
	// worker, seen in the read model.
	// Polls stay within the reads allowance (100 a minute).
	const poll = 700 * time.Millisecond
	var first map[string]any
	require.Eventually(t, func() bool {
		list := srv.api("GET", base, nil, token)
		items, _ := list.Body["items"].([]any)
		if len(items) == 0 {
			return false
		}
		first, _ = items[0].(map[string]any)
		return first["status"] == "completed"
	}, 60*time.Second, poll, "the first sync completes")
	assert.Equal(t, "first", first["trigger"])
	counts := first["counts"].(map[string]any)
	assert.Greater(t, counts["created"].(float64), 100.0, "a year of the sandbox household")
	assert.Equal(t, 4.0, first["accounts"])
	assert.Empty(t, first["account_errors"])
	window := first["window"].(map[string]any)
	assert.Equal(t, time.Now().UTC().AddDate(-1, 0, 0).Format(time.DateOnly), window["from"])

	tooSoon := srv.api("POST", base, nil, token).Want(t, 429, "a second sync at once")
	assert.Equal(t, "rate_limited", tooSoon.Str("code"))
	assert.NotEmpty(t, tooSoon.Header.Get("Retry-After"))

	started := srv.api("POST", base, map[string]bool{"force": true}, token).Want(t, 202, "a forced sync")
	assert.Equal(t, "queued", started.Str("status"))
	assert.Equal(t, "manual", started.Str("trigger"))
	header, err := strconv.ParseInt(started.Header.Get(web.HeaderPosition), 10, 64)
	require.NoError(t, err, "the request answers its position")
	assert.Equal(t, float64(header), started.Body["position"], "the body's position is the header's")
	loc := started.Header.Get("Location")
	require.Equal(t, base+"/"+started.Str("id"), loc)
	srv.api("GET", loc, nil, token).Want(t, 200, "the Location answers at once")
	srv.api("GET", loc, nil, other).Want(t, 404, "another user's sync")
	srv.api("GET", base, nil, other).Want(t, 404, "another user's connection")
	srv.api("POST", base, nil, other).Want(t, 404, "another user's connection")
	var done reply
	require.Eventually(t, func() bool {
		done = srv.api("GET", loc, nil, token)
		return done.Status == 200 && done.Str("status") == "completed"
	}, 60*time.Second, poll, "the forced sync completes")
	assert.NotEmpty(t, done.Str("picked_up_at"))
	assert.NotEmpty(t, done.Str("finished_at"))
	assert.Greater(t, done.Body["counts"].(map[string]any)["unchanged"].(float64), 0.0)

	srv.api("DELETE", "/api/v1/connections/"+id, nil, token).Want(t, 204, "disconnect")
	require.Eventually(t, func() bool {
		var open int
		err := srv.pool.QueryRow(context.Background(), `SELECT count(*) FROM sync_accounts
			WHERE connection_id = $1 AND active`, id).Scan(&open)
		return err == nil && open == 0
	}, 60*time.Second, 50*time.Millisecond, "the accounts close")
	var closed int
	require.NoError(t, srv.pool.QueryRow(context.Background(), `SELECT count(*) FROM events e JOIN sync_accounts a ON a.account_id = e.stream_id
		WHERE a.connection_id = $1 AND e.event_type = 'AccountClosed' AND e.payload->>'reason' = 'connection_disconnected'`, id).Scan(&closed))
	assert.Equal(t, 4, closed)
	srv.api("POST", base, map[string]bool{"force": true}, token).Want(t, 409, "no sync of a disconnected connection")
}
