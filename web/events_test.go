package web_test

import (
	"bufio"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/web"
)

// TestEventStreamHeartbeatsAndRefusals: GET /api/v1/events answers an
// event stream that asks browsers to retry after 2 s and sends heartbeat
// comments while idle; a Last-Event-ID this API never sent is a 400
// problem naming the header; a server without a hub answers 503.
func TestEventStreamHeartbeatsAndRefusals(t *testing.T) {
	clock := &fakeClock{now: testEpoch}
	id := newFakeIdentity(t, clock)
	s := MustServer(t, web.Options{Identity: id, Now: clock.Now, Streams: fakeStreams{open: true}, Heartbeat: 5 * time.Millisecond})
	token, _ := id.MustToken(t, user.RoleUser)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	sc := bufio.NewScanner(resp.Body)
	require.True(t, sc.Scan())
	assert.Equal(t, "retry: 2000", sc.Text())
	beats := 0
	for beats < 2 && sc.Scan() {
		if sc.Text() == ": heartbeat" {
			beats++
		}
	}
	assert.Equal(t, 2, beats, "heartbeats while idle")
	cancel()

	bad, err := http.NewRequest(http.MethodGet, s.URL+"/api/v1/events", nil)
	require.NoError(t, err)
	bad.Header.Set("Authorization", "Bearer "+token)
	bad.Header.Set("Last-Event-ID", "bogus")
	p := MustProblem(t, MustDo(t, bad), http.StatusBadRequest, "/api/v1/events")
	require.Len(t, p.Errors, 1)
	assert.Equal(t, "Last-Event-ID", p.Errors[0].Field)

	off := MustServer(t, web.Options{Identity: id, Now: clock.Now})
	r := MustCall(t, http.MethodGet, off.URL+"/api/v1/events", "", token)
	MustProblem(t, r, http.StatusServiceUnavailable, "/api/v1/events")
	assert.NotContains(t, string(r.Body), "hub", "no internals in the problem")
}
