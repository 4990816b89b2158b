package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	policy "github.com/dashtam/dashtam/commands/ratelimit"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/web"
)

// apiConnection mirrors the connection resource.
type apiConnection struct {
	ID               uuid.UUID  `json:"id"`
	ProviderSlug     string     `json:"provider_slug"`
	Alias            string     `json:"alias"`
	Status           string     `json:"status"`
	CreatedAt        time.Time  `json:"created_at"`
	ConnectedAt      *time.Time `json:"connected_at"`
	LastSyncAt       *time.Time `json:"last_sync_at"`
	ReauthorizeBy    *time.Time `json:"reauthorize_by"`
	AccessExpiresAt  *time.Time `json:"access_expires_at"`
	DisconnectedAt   *time.Time `json:"disconnected_at"`
	AuthorizationURL string     `json:"authorization_url"`
	State            string     `json:"state"`
	ExpiresIn        int        `json:"expires_in"`
}

// decodeJSON decodes r's body into a T, requiring status.
func decodeJSON[T any](tb testing.TB, r response, status int) T {
	tb.Helper()
	require.Equal(tb, status, r.Status, "body: %s", r.Body)
	var v T
	require.NoError(tb, json.Unmarshal(r.Body, &v), "%s", r.Body)
	return v
}

// mustConnect creates a connection through the API and returns it.
func mustConnect(tb testing.TB, base, token, slug, alias string) apiConnection {
	tb.Helper()
	body, err := json.Marshal(map[string]string{"provider_slug": slug, "alias": alias})
	require.NoError(tb, err)
	return decodeJSON[apiConnection](tb, MustCall(tb, http.MethodPost, base+"/api/v1/connections", string(body), token), http.StatusCreated)
}

// page is a callback page as a browser receives it.
type page struct {
	Status int
	Header http.Header
	Body   string
}

// mustPage opens a page without following redirects.
func mustPage(tb testing.TB, u string) page {
	tb.Helper()
	resp, err := http.Get(u)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// checkPageHeaders asserts the callback page's protections: HTML that
// runs no script, is not cached, framed or leaked through a Referer.
func checkPageHeaders(tb testing.TB, p page) {
	tb.Helper()
	assert.Equal(tb, "text/html; charset=UTF-8", p.Header.Get("Content-Type"))
	assert.Equal(tb, "no-store", p.Header.Get("Cache-Control"))
	assert.Equal(tb, "no-referrer", p.Header.Get("Referrer-Policy"))
	assert.Equal(tb, "DENY", p.Header.Get("X-Frame-Options"))
	csp := p.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		assert.Contains(tb, csp, d)
	}
	assert.NotContains(tb, csp, "script-src")
	assert.NotContains(tb, csp, "unsafe-inline")
	assert.NotContains(tb, strings.ToLower(p.Body), "<script")
}

// TestConnectionLifecycleOverHTTP walks the routes in order: connect,
// callback page, get, list (paged), rename, refresh, reauthorize,
// disconnect, and what a disconnected connection answers.
func TestConnectionLifecycleOverHTTP(t *testing.T) {
	s := MustIdentityServer(t)
	token, _ := s.Identity.MustToken(t, user.RoleUser)
	base := s.URL

	created := MustCall(t, http.MethodPost, base+"/api/v1/connections", `{"provider_slug":"schwab","alias":"  Bob's <b>broker</b> "}`, token)
	c := decodeJSON[apiConnection](t, created, http.StatusCreated)
	assert.Equal(t, "/api/v1/connections/"+c.ID.String(), created.Header.Get("Location"))
	assert.Equal(t, "schwab", c.ProviderSlug)
	assert.Equal(t, "Bob's <b>broker</b>", c.Alias, "trimmed, kept as typed otherwise")
	assert.Equal(t, "pending", c.Status)
	assert.Equal(t, 600, c.ExpiresIn)
	assert.NotEmpty(t, c.State)
	assert.Contains(t, c.AuthorizationURL, "state="+c.State)
	assert.True(t, c.CreatedAt.Equal(testEpoch))
	assert.Nil(t, c.ConnectedAt)
	for _, member := range []string{`"connected_at":null`, `"last_sync_at":null`, `"reauthorize_by":null`, `"access_expires_at":null`, `"disconnected_at":null`} {
		assert.Contains(t, string(created.Body), member, "nulls are explicit")
	}

	// The provider sends the browser back; the page says what happened,
	// with the alias escaped.
	p := mustPage(t, base+"/oauth/schwab/callback?code=C0.abc%40&session=x&state="+url.QueryEscape(c.State))
	require.Equal(t, http.StatusOK, p.Status, p.Body)
	checkPageHeaders(t, p)
	assert.Contains(t, p.Body, `id="connected"`)
	assert.Contains(t, p.Body, "Your Charles Schwab connection &#39;Bob&#39;s &lt;b&gt;broker&lt;/b&gt;&#39; is connected. You can close this window.")
	assert.NotContains(t, p.Body, "<b>broker")
	assert.Equal(t, "C0.abc@", s.Connections.Callbacks()[0].Get("code"), "the query reaches the service decoded once")

	got := decodeJSON[apiConnection](t, MustCall(t, http.MethodGet, base+"/api/v1/connections/"+c.ID.String(), "", token), http.StatusOK)
	assert.Equal(t, "active", got.Status)
	require.NotNil(t, got.ConnectedAt)
	require.NotNil(t, got.AccessExpiresAt)
	require.NotNil(t, got.ReauthorizeBy)

	// More connections for the list: three, paged two at a time.
	mustConnect(t, base, token, "sandbox", "Second")
	s.Clock.Advance(time.Second)
	third := mustConnect(t, base, token, "sandbox", "Third")
	var listed []apiConnection
	next := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3)
		u := base + "/api/v1/connections?limit=2"
		if next != "" {
			u += "&cursor=" + url.QueryEscape(next)
		}
		l := decodeJSON[struct {
			Items      []apiConnection `json:"items"`
			NextCursor *string         `json:"next_cursor"`
		}](t, MustCall(t, http.MethodGet, u, "", token), http.StatusOK)
		listed = append(listed, l.Items...)
		if l.NextCursor == nil {
			break
		}
		next = *l.NextCursor
	}
	require.Len(t, listed, 3)
	assert.Equal(t, third.ID, listed[2].ID, "oldest first")
	assert.Equal(t, "active", listed[0].Status)
	other, _ := s.Identity.MustToken(t, user.RoleUser)
	assert.JSONEq(t, `{"items":[],"next_cursor":null}`, string(MustCall(t, http.MethodGet, base+"/api/v1/connections", "", other).Body))

	renamed := decodeJSON[apiConnection](t, MustCall(t, http.MethodPatch, base+"/api/v1/connections/"+c.ID.String(), `{"alias":"Brokerage"}`, token), http.StatusOK)
	assert.Equal(t, "Brokerage", renamed.Alias)

	r := MustCall(t, http.MethodPost, base+"/api/v1/connections/"+c.ID.String()+"/token-refreshes", "", token)
	refreshed := decodeJSON[map[string]any](t, r, http.StatusOK)
	assert.Equal(t, c.ID.String(), refreshed["connection_id"])
	assert.NotEmpty(t, refreshed["access_expires_at"])
	assert.Contains(t, refreshed, "reauthorize_by")
	assert.Len(t, refreshed, 3, "expiries only, never a token: %s", r.Body)

	again := decodeJSON[apiConnection](t, MustCall(t, http.MethodPost, base+"/api/v1/connections/"+c.ID.String()+"/reauthorizations", "", token), http.StatusCreated)
	assert.Equal(t, "active", again.Status)
	assert.NotEqual(t, c.State, again.State)
	assert.Equal(t, 600, again.ExpiresIn)

	d := MustCall(t, http.MethodDelete, base+"/api/v1/connections/"+c.ID.String(), "", token)
	require.Equal(t, http.StatusNoContent, d.Status, "%s", d.Body)
	assert.Empty(t, d.Body)
	gone := decodeJSON[apiConnection](t, MustCall(t, http.MethodGet, base+"/api/v1/connections/"+c.ID.String(), "", token), http.StatusOK)
	assert.Equal(t, "disconnected", gone.Status)
	assert.NotNil(t, gone.DisconnectedAt)
	assert.Nil(t, gone.AccessExpiresAt)

	path := "/api/v1/connections/" + c.ID.String()
	for _, call := range []struct{ method, suffix, body string }{
		{http.MethodDelete, "", ""},
		{http.MethodPatch, "", `{"alias":"x"}`},
		{http.MethodPost, "/token-refreshes", ""},
	} {
		prob := MustProblem(t, MustCall(t, call.method, base+path+call.suffix, call.body, token), http.StatusConflict, path+call.suffix)
		assert.Equal(t, "connection_disconnected", prob.Code, call.method+call.suffix)
	}
	prob := MustProblem(t, MustCall(t, http.MethodPost, base+path+"/reauthorizations", "", token), http.StatusConflict, path+"/reauthorizations")
	assert.Equal(t, "connection_not_active", prob.Code)
}

// TestConnectionErrorsAsProblems checks each refusal's status, code and
// field, mapped once in errors.go.
func TestConnectionErrorsAsProblems(t *testing.T) {
	s := MustIdentityServer(t)
	token, _ := s.Identity.MustToken(t, user.RoleUser)
	otherToken, _ := s.Identity.MustToken(t, user.RoleUser)
	base := s.URL
	mine := mustConnect(t, base, token, "sandbox", "Everyday")

	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
		field  string
	}{
		"unknown provider":           {`{"provider_slug":"nope","alias":"A"}`, 404, "not_found", "provider_slug"},
		"empty alias":                {`{"provider_slug":"sandbox","alias":""}`, 422, "unprocessable", "alias"},
		"blank alias":                {`{"provider_slug":"sandbox","alias":"   "}`, 422, "unprocessable", "alias"},
		"alias of 65 characters":     {`{"provider_slug":"sandbox","alias":"` + strings.Repeat("é", 65) + `"}`, 422, "unprocessable", "alias"},
		"zero-width space":           {`{"provider_slug":"sandbox","alias":"a\u200bb"}`, 422, "unprocessable", "alias"},
		"bidirectional override":     {`{"provider_slug":"sandbox","alias":"a\u202eb"}`, 422, "unprocessable", "alias"},
		"NUL":                        {`{"provider_slug":"sandbox","alias":"a\u0000b"}`, 422, "unprocessable", "alias"},
		"alias past the schema":      {`{"provider_slug":"sandbox","alias":"` + strings.Repeat("a", 1025) + `"}`, 400, "invalid", "alias"},
		"missing alias":              {`{"provider_slug":"sandbox"}`, 400, "invalid", ""},
		"unknown member":             {`{"provider_slug":"sandbox","alias":"A","owner":"x"}`, 400, "invalid", "owner"},
		"duplicate live alias":       {`{"provider_slug":"sandbox","alias":"EVERYDAY"}`, 409, "conflict", "alias"},
		"same alias, other provider": {`{"provider_slug":"schwab","alias":"Everyday"}`, 201, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := MustCall(t, http.MethodPost, base+"/api/v1/connections", tc.body, token)
			if tc.status == http.StatusCreated {
				require.Equal(t, tc.status, r.Status, "%s", r.Body)
				return
			}
			p := MustProblem(t, r, tc.status, "/api/v1/connections")
			assert.Equal(t, tc.code, p.Code)
			if tc.field != "" {
				require.NotEmpty(t, p.Errors, "%s", r.Body)
				assert.Equal(t, tc.field, p.Errors[0].Field)
			}
			assert.NotContains(t, string(r.Body), "é", "the value is never echoed")
		})
	}

	// Another user's connection reads exactly like a missing one.
	path := "/api/v1/connections/" + mine.ID.String()
	missing := "/api/v1/connections/" + uuid.NewString()
	for _, call := range []struct{ method, suffix, body string }{
		{http.MethodGet, "", ""}, {http.MethodPatch, "", `{"alias":"Mine now"}`}, {http.MethodDelete, "", ""},
		{http.MethodPost, "/token-refreshes", ""}, {http.MethodPost, "/reauthorizations", ""},
	} {
		foreign := MustProblem(t, MustCall(t, call.method, base+path+call.suffix, call.body, otherToken), http.StatusNotFound, path+call.suffix)
		absent := MustProblem(t, MustCall(t, call.method, base+missing+call.suffix, call.body, token), http.StatusNotFound, missing+call.suffix)
		foreign.TraceID, absent.TraceID, foreign.Instance, absent.Instance = "", "", "", ""
		assert.Equal(t, absent, foreign, call.method+call.suffix)
	}
	still := decodeJSON[apiConnection](t, MustCall(t, http.MethodGet, base+path, "", token), http.StatusOK)
	assert.Equal(t, "Everyday", still.Alias, "the other user changed nothing")

	// A malformed id is a contract error, as everywhere in the API.
	p := MustProblem(t, MustCall(t, http.MethodGet, base+"/api/v1/connections/not-a-uuid", "", token), http.StatusBadRequest, "/api/v1/connections/not-a-uuid")
	assert.Equal(t, "invalid", p.Code)
	p = MustProblem(t, MustCall(t, http.MethodGet, base+"/api/v1/connections?cursor=bm9wZQ", "", token), http.StatusBadRequest, "/api/v1/connections")
	assert.Equal(t, "cursor", p.Errors[0].Field)

	// Refusals of a refresh.
	refresh := path + "/token-refreshes"
	p = MustProblem(t, MustCall(t, http.MethodPost, base+refresh, "", token), http.StatusConflict, refresh)
	assert.Equal(t, "connection_not_active", p.Code, "a pending connection")
	s.Connections.SetStatus(mine.ID, connection.StatusNeedsReauth)
	p = MustProblem(t, MustCall(t, http.MethodPost, base+refresh, "", token), http.StatusConflict, refresh)
	assert.Equal(t, "reauthorization_required", p.Code)
	assert.Contains(t, p.Detail, "reauthorizations")
	s.Connections.SetStatus(mine.ID, connection.StatusActive)
	s.Connections.FailRefresh(mine.ID, fmt.Errorf("%w: %w", connections.ErrProviderBusy, &commands.JobSnoozeError{Delay: 6500 * time.Millisecond}))
	r := MustCall(t, http.MethodPost, base+refresh, "", token)
	p = MustProblem(t, r, http.StatusServiceUnavailable, refresh)
	assert.Equal(t, "unavailable", p.Code)
	assert.Equal(t, "7", r.Header.Get("Retry-After"), "the pacer's delay, rounded up")
	s.Connections.FailRefresh(mine.ID, fmt.Errorf("refresh: %w", connections.ErrProviderBusy))
	r = MustCall(t, http.MethodPost, base+refresh, "", token)
	MustProblem(t, r, http.StatusServiceUnavailable, refresh)
	assert.Equal(t, "30", r.Header.Get("Retry-After"), "a provider that named no delay")
	s.Connections.FailRefresh(mine.ID, fmt.Errorf("refresh: %w", connection.ErrFailed))
	p = MustProblem(t, MustCall(t, http.MethodPost, base+refresh, "", token), http.StatusConflict, refresh)
	assert.Equal(t, "connection_not_active", p.Code)

	// A readonly role reads but does not connect.
	ro, _ := s.Identity.MustToken(t, user.RoleReadonly)
	MustProblem(t, MustCall(t, http.MethodPost, base+"/api/v1/connections", `{"provider_slug":"sandbox","alias":"ro"}`, ro), http.StatusForbidden, "/api/v1/connections")
	assert.Equal(t, http.StatusOK, MustCall(t, http.MethodGet, base+"/api/v1/connections", "", ro).Status)
}

// TestCallbackPageTellsWhatHappened opens the callback page as a browser
// returning from a provider would, in each way it can go.
func TestCallbackPageTellsWhatHappened(t *testing.T) {
	s := MustIdentityServer(t)
	token, _ := s.Identity.MustToken(t, user.RoleUser)
	base := s.URL
	authorize := func(alias string) apiConnection { return mustConnect(t, base, token, "sandbox", alias) }

	for name, tc := range map[string]struct {
		query  func() string
		status int
		want   string
	}{
		"no state": {func() string { return "code=abc" }, 400,
			"opened without the authorization details"},
		"unknown state": {func() string { return "code=abc&state=forged" }, 400,
			"unknown or was already used"},
		"declined": {func() string { return "error=access_denied&state=" + authorize("Declined").State }, 200,
			"You declined access at Dashtam Sandbox, so nothing was connected."},
		"provider error": {func() string { return "error=server_error&state=" + authorize("Failing").State }, 502,
			"Dashtam Sandbox did not complete the authorization."},
		"provider unreachable": {func() string { return "code=unreachable&state=" + authorize("Unreachable").State }, 503,
			"Dashtam Sandbox could not be reached"},
		"replayed state": {func() string {
			st := authorize("Replayed").State
			require.Equal(t, 200, mustPage(t, base+"/oauth/sandbox/callback?code=x&state="+st).Status)
			return "code=x&state=" + st
		}, 400, "unknown or was already used"},
	} {
		t.Run(name, func(t *testing.T) {
			p := mustPage(t, base+"/oauth/sandbox/callback?"+tc.query())
			assert.Equal(t, tc.status, p.Status, p.Body)
			checkPageHeaders(t, p)
			assert.Contains(t, p.Body, `id="not-connected"`)
			assert.Contains(t, p.Body, tc.want)
			assert.Regexp(t, `Reference: [0-9a-f]{32}`, p.Body)
			assert.NotContains(t, p.Body, "code=")
		})
	}

	// A slug from the URL is never echoed; only enabled providers are named.
	p := mustPage(t, base+"/oauth/"+url.PathEscape("<img src=x>")+"/callback?error=access_denied&state="+authorize("Other slug").State)
	assert.NotContains(t, p.Body, "<img")
	assert.NotContains(t, p.Body, "&lt;img")
	assert.Contains(t, p.Body, "This authorization is unknown or was already used.")
}

// TestConnectionRoutesWithoutService: a server built without a connections
// service answers its routes 503 and says so on the callback page.
func TestConnectionRoutesWithoutService(t *testing.T) {
	clock := &fakeClock{now: testEpoch}
	id := newFakeIdentity(t, clock)
	s := MustServer(t, web.Options{Identity: id})
	token, _ := id.MustToken(t, user.RoleUser)
	p := MustProblem(t, MustCall(t, http.MethodPost, s.URL+"/api/v1/connections", `{"provider_slug":"sandbox","alias":"A"}`, token),
		http.StatusServiceUnavailable, "/api/v1/connections")
	assert.Equal(t, "provider connections are not configured on this server", p.Detail)
	MustProblem(t, MustCall(t, http.MethodGet, s.URL+"/api/v1/connections", "", token), http.StatusServiceUnavailable, "/api/v1/connections")
	page := mustPage(t, s.URL+"/oauth/sandbox/callback?code=a&state=b")
	assert.Equal(t, http.StatusServiceUnavailable, page.Status)
	checkPageHeaders(t, page)
}

// TestConnectIsLimitedByProviderConnect: a connect spends `writes` and
// `provider_connect` per user; the sixth within a minute is refused by the
// latter, while other writes go on.
func TestConnectIsLimitedByProviderConnect(t *testing.T) {
	s := MustLimitedServer(t, web.RateLimitOptions{})
	token, _ := s.Identity.MustToken(t, user.RoleUser)
	for i := range policy.ProviderConnect.Burst {
		mustConnect(t, s.URL, token, "sandbox", fmt.Sprintf("Account %d", i))
	}
	r := MustCall(t, http.MethodPost, s.URL+"/api/v1/connections", `{"provider_slug":"sandbox","alias":"One too many"}`, token)
	MustProblem(t, r, http.StatusTooManyRequests, "/api/v1/connections")
	assert.Equal(t, 1.0, counter(t, s.Registry, "dashtam_rate_limit_denied_total", policy.ProviderConnect.Name))
	assert.Equal(t, http.StatusOK, MustCall(t, http.MethodGet, s.URL+"/api/v1/connections", "", token).Status)
	other, _ := s.Identity.MustToken(t, user.RoleUser)
	mustConnect(t, s.URL, other, "sandbox", "Another user's bucket")
}

// TestMountsServeBesideTheAPI: a mounted handler sees its whole path, is
// limited per IP under its declared policy, and a mount that is unsound
// stops start-up.
func TestMountsServeBesideTheAPI(t *testing.T) {
	l, err := ratelimit.New(testdb.New(t))
	require.NoError(t, err)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	})
	s := MustServer(t, web.Options{Mounts: []web.Mount{{Prefix: "/bank", Handler: handler, RateLimit: "login"}},
		RateLimit: web.RateLimitOptions{Limiter: l}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	r := MustGet(t, s.URL+"/bank/oauth/authorize?x=1")
	assert.Equal(t, "GET /bank/oauth/authorize", string(r.Body))
	assert.NotEmpty(t, r.Header.Get("X-Trace-Id"))
	r = MustSend(t, http.MethodPost, s.URL+"/bank", nil)
	assert.Equal(t, "POST /bank", string(r.Body))
	client := map[string]string{"X-Forwarded-For": "203.0.113.9"}
	MustExhaust(t, "the mount", policy.Login, func() response { return MustSend(t, http.MethodGet, s.URL+"/bank/x", client) })
	assert.Equal(t, http.StatusOK, MustGet(t, s.URL+"/health").Status, "the API's own limits are apart")

	for name, m := range map[string]web.Mount{
		"nil handler":      {Prefix: "/bank", RateLimit: "login"},
		"relative":         {Prefix: "bank", Handler: handler, RateLimit: "login"},
		"trailing slash":   {Prefix: "/bank/", Handler: handler, RateLimit: "login"},
		"shadows the API":  {Prefix: "/api/v1", Handler: handler, RateLimit: "login"},
		"shadows callback": {Prefix: "/oauth", Handler: handler, RateLimit: "login"},
		"unknown policy":   {Prefix: "/bank", Handler: handler, RateLimit: "lots"},
		"no policy":        {Prefix: "/bank", Handler: handler},
	} {
		_, err := web.New(web.Options{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(),
			Readiness: &fakeReadiness{}, Identity: newFakeIdentity(t, &fakeClock{now: testEpoch}), Mounts: []web.Mount{m}})
		assert.Error(t, err, name)
	}
}

// TestCallbackOutlivesTheBrowser: a person who closes the window while the
// callback exchanges the code does not cancel it; the service works on
// with a context of its own.
func TestCallbackOutlivesTheBrowser(t *testing.T) {
	clock := &fakeClock{now: testEpoch}
	id := newFakeIdentity(t, clock)
	conns := newFakeConnections(clock)
	conns.gate, conns.entered, conns.callbackErr = make(chan struct{}), make(chan struct{}, 1), make(chan error, 1)
	requestDone := make(chan (<-chan struct{}), 1)
	s := MustServer(t, web.Options{Identity: id, Connections: conns, ConnectionList: conns, Routes: func(e *echo.Echo) {
		// Hands the test the request's own context, which the server
		// cancels when the client goes away.
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if strings.HasPrefix(c.Request().URL.Path, "/oauth/") {
					requestDone <- c.Request().Context().Done()
				}
				return next(c)
			}
		})
	}})
	ctx, hangUp := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/oauth/sandbox/callback?code=a&state=b", nil)
	require.NoError(t, err)
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-conns.entered
	hangUp()
	select {
	case <-<-requestDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the server never noticed the client hang up")
	}
	close(conns.gate)
	assert.NoError(t, <-conns.callbackErr, "the callback's context outlives the browser")
}
