package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/webhook"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// sseEvent is one event of a live stream as a client parses it.
type sseEvent struct {
	ID, Type string
	Data     map[string]any
}

// sseClient holds one GET /api/v1/events stream open and parses it.
type sseClient struct {
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

// openStream opens the caller's live stream on base, resuming after
// lastEventID when set, and fails the test unless it answers 200.
func openStream(t *testing.T, base, token, lastEventID string) *sseClient {
	t.Helper()
	resp, cancel := streamRequest(t, base, token, lastEventID)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	c := &sseClient{events: make(chan sseEvent, 100), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Type != "" {
					c.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				e.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e.Data)
			}
		}
	}()
	t.Cleanup(c.Close)
	return c
}

// streamRequest sends GET /api/v1/events and returns the response.
func streamRequest(t *testing.T, base, token, lastEventID string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp, cancel
}

// next returns the stream's next event, failing the test after a while.
func (c *sseClient) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event on the stream")
		return sseEvent{}
	}
}

// Close ends the stream.
func (c *sseClient) Close() {
	c.cancel()
	<-c.done
}

// dataOf returns a member of an event's data.
func dataOf(e sseEvent, name string) string {
	d, _ := e.Data["data"].(map[string]any)
	s, _ := d[name].(string)
	return s
}

// receiver is a webhook endpoint that records every delivery.
type receiver struct {
	mu    sync.Mutex
	got   []*http.Request
	bodys [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, req)
	r.bodys = append(r.bodys, body)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// TestFanoutAcrossTwoInstancesEndToEnd runs two `serve` processes over one
// database. An event committed through instance A reaches a live stream
// held on instance B, and only its owner's; a stream resumed on B with
// Last-Event-ID gets exactly what followed; a user holds at most five
// streams per instance; a registered webhook gets signed deliveries that
// verify with its secret, listed with their attempts; the change feed
// answers and refuses another user's cursor; and the relay publishes every
// integration event into the postgres topic.
func TestFanoutAcrossTwoInstancesEndToEnd(t *testing.T) {
	appURL, ownerURL := testdb.NewEmptyURLs(t)
	addrA := freeAddr(t)
	a := startIdentityServerAt(t, appURL, ownerURL, func(env map[string]string) {
		env["DASHTAM_HTTP_ADDR"] = addrA
		env["DASHTAM_PUBLIC_URL"] = "http://" + addrA
		env["DASHTAM_WEBHOOK_ALLOW_PRIVATE"] = "true"
	})
	b := startIdentityServerAt(t, appURL, ownerURL, func(env map[string]string) {
		// One deployment behind one public URL (the tokens' issuer), and
		// either instance's workers may send a mail: one outbox for both.
		env["DASHTAM_PUBLIC_URL"] = "http://" + addrA
		env["DASHTAM_MAIL_URL"] = "file://" + a.mailDir
		env["DASHTAM_WEBHOOK_ALLOW_PRIVATE"] = "true"
	})
	ca := &connectionsServer{identityServer: a, publicURL: "http://" + addrA, recorded: &recorder{}}
	alice := ca.mustUser(t, "alice@example.com")
	bob := ca.mustUser(t, "bob@example.com")
	baseB := b.client.base

	recv := &receiver{}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	wh := a.client.Do("POST", "/api/v1/webhooks", map[string]any{"url": hook.URL + "/hooks",
		"event_types": []string{"connection.status_changed"}}, alice).Want(t, 201, "register a webhook")
	secret := wh.Str("secret")
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	b.client.Do("GET", "/api/v1/webhooks/"+wh.Str("id"), nil, alice).Want(t, 200, "the webhook, through B")
	b.client.Do("GET", "/api/v1/webhooks/"+wh.Str("id"), nil, bob).Want(t, 404, "another user's webhook")
	assert.NotContains(t, b.client.Do("GET", "/api/v1/webhooks", nil, alice).Raw, secret, "the secret is shown once")

	// Live across instances: committed through A, streamed by B.
	s1 := openStream(t, baseB, alice, "")
	sBob := openStream(t, baseB, bob, "")
	one := a.client.Do("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "One"}, alice).
		Want(t, 201, "connect one")
	e1 := s1.next(t)
	assert.Equal(t, "connection.status_changed", e1.Type)
	assert.Equal(t, one.Str("id"), dataOf(e1, "connection_id"))
	assert.Equal(t, "pending", dataOf(e1, "status"))
	s1.Close()

	// Resumed on B after what it got: only what followed.
	two := a.client.Do("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Two"}, alice).
		Want(t, 201, "connect two")
	s2 := openStream(t, baseB, alice, e1.ID)
	e2 := s2.next(t)
	assert.Equal(t, two.Str("id"), dataOf(e2, "connection_id"), "the resumed stream starts after Last-Event-ID")

	// Bob's stream saw none of Alice's events: his own comes first.
	mine := a.client.Do("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Bob's"}, bob).
		Want(t, 201, "bob connects")
	assert.Equal(t, mine.Str("id"), dataOf(sBob.next(t), "connection_id"))

	// Five streams per user per instance: s2 and four more; the sixth is refused.
	for range 4 {
		openStream(t, baseB, alice, "")
	}
	resp, cancel := streamRequest(t, baseB, alice, "")
	resp.Body.Close()
	cancel()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	resp, cancel = streamRequest(t, baseB, alice, "not-an-id")
	resp.Body.Close()
	cancel()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "a Last-Event-ID this API never sent")

	// Webhook deliveries for both of Alice's connections, signed.
	key, err := webhook.DecodeSecret(secret)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		return len(recv.got) >= 2
	}, 30*time.Second, 10*time.Millisecond)
	recv.mu.Lock()
	for i, req := range recv.got {
		ts, err := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
		require.NoError(t, err)
		assert.True(t, webhook.Verify(key, req.Header.Get("webhook-id"), time.Unix(ts, 0), recv.bodys[i], req.Header.Get("webhook-signature")),
			"delivery %d verifies", i)
		assert.NotContains(t, string(recv.bodys[i]), "alice@example.com")
	}
	recv.mu.Unlock()
	require.Eventually(t, func() bool {
		d := b.client.Do("GET", "/api/v1/webhooks/"+wh.Str("id")+"/deliveries", nil, alice).Want(t, 200, "deliveries")
		items, _ := d.Body["items"].([]any)
		if len(items) < 2 {
			return false
		}
		for _, it := range items {
			m := it.(map[string]any)
			attempts, _ := m["attempts"].([]any)
			if m["status"] != "succeeded" || len(attempts) != 1 || attempts[0].(map[string]any)["status_code"] != float64(204) {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "both deliveries succeeded at the first attempt")

	// The change feed: nothing synced yet; Bob's cursor is no good to Alice.
	feed := a.client.Do("GET", "/api/v1/transactions/sync", nil, alice).Want(t, 200, "change feed")
	assert.Equal(t, false, feed.Body["has_more"])
	assert.Empty(t, feed.Body["added"])
	bobs := b.client.Do("GET", "/api/v1/transactions/sync", nil, bob).Want(t, 200, "bob's feed").Str("next_cursor")
	a.client.Do("GET", "/api/v1/transactions/sync?cursor="+bobs, nil, alice).Want(t, 422, "another user's cursor")

	// The relay published every integration event into the postgres topic
	// (one relay for both instances, so once each).
	require.Eventually(t, func() bool {
		var n, distinct int
		require.NoError(t, a.pool.QueryRow(context.Background(),
			`SELECT count(*), count(DISTINCT uuid) FROM watermill_integration_events`).Scan(&n, &distinct))
		return n == 3 && distinct == 3
	}, 30*time.Second, 20*time.Millisecond, "three connections, three connection.status_changed events")
	rows, err := a.pool.Query(context.Background(), `SELECT metadata->>'type' FROM watermill_integration_events`)
	require.NoError(t, err)
	types, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"connection.status_changed", "connection.status_changed", "connection.status_changed"}, types)
}

// TestWebhookURLsOnInternalAddressesAreRefusedEndToEnd: without
// DASHTAM_WEBHOOK_ALLOW_PRIVATE, registering (or moving) an endpoint to
// loopback, the cloud metadata address or plain http answers 422 naming
// the url field, and nothing is stored.
func TestWebhookURLsOnInternalAddressesAreRefusedEndToEnd(t *testing.T) {
	srv := startConnectionsServer(t)
	token := srv.mustUser(t, "carol@example.com")
	for _, u := range []string{"https://127.0.0.1/hooks", "https://169.254.169.254/latest/meta-data/", "https://[::1]:8443/",
		"https://localhost/hooks", "http://93.184.215.14/hooks"} {
		p := srv.api("POST", "/api/v1/webhooks", map[string]any{"url": u, "event_types": []string{"sync.completed"}}, token).
			Want(t, 422, u)
		assert.Equal(t, "unprocessable", p.Str("code"), u)
		assert.Contains(t, p.Raw, `"field":"url"`, u)
		assert.NotContains(t, p.Raw, "169.254", "the problem does not echo the URL")
	}
	list := srv.api("GET", "/api/v1/webhooks", nil, token).Want(t, 200, "list")
	assert.Empty(t, list.Body["items"])
}
