package web_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/aggregates/user"
	policy "github.com/dashtam/dashtam/commands/ratelimit"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/web"
)

// fakeClock is a clock the test moves by hand, so refill never depends on
// how fast the test runs.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// limitedServer is a server with rate limits over limiter, a pinned clock
// and the fake identity service behind the real routes.
type limitedServer struct {
	*testServer
	Registry *prometheus.Registry
	Clock    *fakeClock
	Identity *fakeIdentity
}

// loginBody is a valid login the fake identity service accepts.
const loginBody = `{"email":"ada@example.com","password":"correct horse battery"}`

// MustLogin posts loginBody to the real login route with the given headers.
func MustLogin(tb testing.TB, baseURL string, header map[string]string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+"/api/v1/sessions", strings.NewReader(loginBody))
	require.NoError(tb, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return MustDo(tb, req)
}

// MustLimitedServer starts a rate-limited server behind the trusted
// proxies; opts.Limiter defaults to a PostgreSQL limiter on a fresh database.
func MustLimitedServer(tb testing.TB, opts web.RateLimitOptions, trusted ...netip.Prefix) *limitedServer {
	tb.Helper()
	return MustLimitedServerWith(tb, opts, "", nil, trusted...)
}

// MustLimitedServerWith is MustLimitedServer with extraPaths added to the
// document and routes registering their handlers.
func MustLimitedServerWith(tb testing.TB, opts web.RateLimitOptions, extraPaths string, routes func(*echo.Echo), trusted ...netip.Prefix) *limitedServer {
	tb.Helper()
	if opts.Limiter == nil {
		l, err := ratelimit.New(testdb.New(tb))
		require.NoError(tb, err)
		opts.Limiter = l
	}
	clock := &fakeClock{now: testEpoch}
	opts.Now = clock.Now
	reg := prometheus.NewRegistry()
	id := newFakeIdentity(tb, clock)
	conns := newFakeConnections(clock)
	s := MustServerWith(tb, web.Options{
		Registry:       reg,
		RateLimit:      opts,
		TrustedProxies: trusted,
		Identity:       id,
		Connections:    conns,
		ConnectionList: conns,
		Routes:         routes,
	}, extraPaths)
	return &limitedServer{testServer: s, Registry: reg, Clock: clock, Identity: id}
}

// MustSend sends method to path with the given headers set.
func MustSend(tb testing.TB, method, url string, header map[string]string) response {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(tb, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return MustDo(tb, req)
}

// counter reads a counter of reg by name and policy label; 0 when absent.
func counter(tb testing.TB, reg *prometheus.Registry, name, policy string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	require.NoError(tb, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "policy" && l.GetValue() == policy {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// assertRateHeaders checks both header families against one bucket.
func assertRateHeaders(tb testing.TB, h http.Header, limit, remaining, reset int, msg string) {
	tb.Helper()
	for _, prefix := range []string{"", "X-"} {
		assert.Equal(tb, strconv.Itoa(limit), h.Get(prefix+"RateLimit-Limit"), msg)
		assert.Equal(tb, strconv.Itoa(remaining), h.Get(prefix+"RateLimit-Remaining"), msg)
		assert.Equal(tb, strconv.Itoa(reset), h.Get(prefix+"RateLimit-Reset"), msg)
	}
}

func TestSixthLoginFromOneIPWithinAMinuteIsRefused(t *testing.T) {
	s := MustLimitedServer(t, web.RateLimitOptions{})
	for i := range 5 {
		r := MustLogin(t, s.URL, nil)
		require.Equal(t, http.StatusCreated, r.Status, "login %d: %s", i+1, r.Body)
		// One token spent per login and 1/12 of one back per second between
		// them: the bucket lacks 1 + 11/12·i tokens, 12 s each.
		assertRateHeaders(t, r.Header, 5, 4-i, 12+11*i, "login "+strconv.Itoa(i+1))
		assert.Empty(t, r.Header.Get("Retry-After"))
		s.Clock.Advance(time.Second)
	}

	r := MustLogin(t, s.URL, nil)
	p := MustProblem(t, r, http.StatusTooManyRequests, "/api/v1/sessions")
	assert.Equal(t, "rate_limited", p.Code)
	// Five seconds after the first login, 5/12 of a token is back: the next
	// whole one arrives in 7 s, a full bucket in 55 s.
	assert.Equal(t, "7", r.Header.Get("Retry-After"))
	assert.Equal(t, "too many requests; retry in 7 seconds", p.Detail)
	assertRateHeaders(t, r.Header, 5, 0, 55, "refused login")
	assert.Equal(t, 1.0, counter(t, s.Registry, "dashtam_rate_limit_denied_total", "login"))

	s.Clock.Advance(7 * time.Second)
	r = MustLogin(t, s.URL, nil)
	assert.Equal(t, http.StatusCreated, r.Status, "a token is back after Retry-After")
}

// TestFourthVerificationRequestFromOneIPWithinAMinuteIsRefused: requests
// for a verification mail have their own per-IP bucket, shaped like the
// password reset's; spending it leaves the reset route alone.
func TestFourthVerificationRequestFromOneIPWithinAMinuteIsRefused(t *testing.T) {
	s := MustLimitedServer(t, web.RateLimitOptions{})
	const path = "/api/v1/email-verification-tokens"
	for i := range 3 {
		r := MustCall(t, http.MethodPost, s.URL+path, `{"email":"ada@example.com"}`, "")
		require.Equal(t, http.StatusAccepted, r.Status, "request %d: %s", i+1, r.Body)
		assert.Equal(t, "3", r.Header.Get("RateLimit-Limit"))
		assert.Equal(t, strconv.Itoa(2-i), r.Header.Get("RateLimit-Remaining"))
	}
	r := MustCall(t, http.MethodPost, s.URL+path, `{"email":"someone-else@example.com"}`, "")
	p := MustProblem(t, r, http.StatusTooManyRequests, path)
	assert.Equal(t, "rate_limited", p.Code)
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
	assert.Equal(t, 1.0, counter(t, s.Registry, "dashtam_rate_limit_denied_total", "verification_resend"))

	r = MustCall(t, http.MethodPost, s.URL+"/api/v1/password-reset-tokens", `{"email":"ada@example.com"}`, "")
	assert.Equal(t, http.StatusAccepted, r.Status, "the reset bucket is another one: %s", r.Body)
}

func TestRateLimitFailsOpenWhenTheStoreFails(t *testing.T) {
	pool := testdb.New(t)
	l, err := ratelimit.New(pool)
	require.NoError(t, err)
	pool.Close() // every check now fails
	s := MustLimitedServer(t, web.RateLimitOptions{Limiter: l})

	for i := range 7 {
		r := MustLogin(t, s.URL, nil)
		require.Equal(t, http.StatusCreated, r.Status, "login %d passes", i+1)
		assert.Empty(t, r.Header.Get("RateLimit-Limit"), "no bucket, so no headers to report")
	}
	assert.Equal(t, 7.0, counter(t, s.Registry, "dashtam_rate_limit_errors_total", "login"))
	assert.Zero(t, counter(t, s.Registry, "dashtam_rate_limit_denied_total", "login"))
	assert.Contains(t, s.Logs.String(), `"msg":"rate limit check failed; request let through"`)
	assert.Contains(t, s.Logs.String(), `"policy":"login"`)
}

// MustRefresh posts refreshToken to the real refresh route.
func MustRefresh(tb testing.TB, baseURL, refreshToken string) response {
	tb.Helper()
	return MustCall(tb, http.MethodPost, baseURL+"/api/v1/tokens", `{"refresh_token":"`+refreshToken+`"}`, "")
}

// The refresh route is public, so its per-user limit is charged by the
// identity service once the token has named its user, and answers exactly
// as the route rules do: headers on every refresh, a 429 problem with
// Retry-After on the 11th within a minute, and other users unaffected.
func TestEleventhRefreshOfOneUserWithinAMinuteIsRefused(t *testing.T) {
	s := MustLimitedServer(t, web.RateLimitOptions{})
	for i := range 10 {
		r := MustRefresh(t, s.URL, "ada-refresh")
		require.Equal(t, http.StatusOK, r.Status, "refresh %d: %s", i+1, r.Body)
		// One token spent per refresh, 6 s each to come back, and the clock
		// stands still: the bucket lacks i+1 tokens.
		assertRateHeaders(t, r.Header, 10, 9-i, 6*(i+1), "refresh "+strconv.Itoa(i+1))
	}

	r := MustRefresh(t, s.URL, "ada-refresh")
	p := MustProblem(t, r, http.StatusTooManyRequests, "/api/v1/tokens")
	assert.Equal(t, "rate_limited", p.Code)
	assert.Equal(t, "6", r.Header.Get("Retry-After"))
	assert.Equal(t, "too many requests; retry in 6 seconds", p.Detail)
	assertRateHeaders(t, r.Header, 10, 0, 60, "refused refresh")
	assert.Equal(t, 1.0, counter(t, s.Registry, "dashtam_rate_limit_denied_total", "token_refresh"))

	assert.Equal(t, http.StatusOK, MustRefresh(t, s.URL, "bob-refresh").Status, "another user has a bucket of their own")
	s.Clock.Advance(6 * time.Second)
	assert.Equal(t, http.StatusOK, MustRefresh(t, s.URL, "ada-refresh").Status, "a token is back after Retry-After")
}

func TestRefreshRateLimitFailsOpenWhenTheStoreFails(t *testing.T) {
	pool := testdb.New(t)
	l, err := ratelimit.New(pool)
	require.NoError(t, err)
	pool.Close()
	s := MustLimitedServer(t, web.RateLimitOptions{Limiter: l})

	for i := range 12 {
		r := MustRefresh(t, s.URL, "ada-refresh")
		require.Equal(t, http.StatusOK, r.Status, "refresh %d passes", i+1)
		assert.Empty(t, r.Header.Get("RateLimit-Limit"))
	}
	assert.Equal(t, 12.0, counter(t, s.Registry, "dashtam_rate_limit_errors_total", "token_refresh"))
	assert.Contains(t, s.Logs.String(), `"policy":"token_refresh"`)
}

// syncOperation is an operation charged per user and per user and path
// parameter, as a connection's syncs will be.
const syncOperation = `  /api/v1/connections/{id}/syncs:
    post:
      operationId: testSync
      x-dashtam-permission: data:write
      x-dashtam-rate-limit: { user: writes, user+id: sync }
      parameters:
        - { name: id, in: path, required: true, schema: { type: string } }
      responses: { "204": { description: started } }
`

// A "user+PARAM" key gives each of a user's resources its own bucket; the
// sync policy's headers win over the roomier write allowance charged
// alongside, and no bucket is shared between users.
func TestRateLimitPerUserAndConnection(t *testing.T) {
	s := MustLimitedServerWith(t, web.RateLimitOptions{}, syncOperation, func(e *echo.Echo) {
		e.POST("/api/v1/connections/:id/syncs", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	})
	aliceToken, _ := s.Identity.MustToken(t, user.RoleUser)
	bobToken, _ := s.Identity.MustToken(t, user.RoleUser)
	alice := map[string]string{"Authorization": "Bearer " + aliceToken}
	bob := map[string]string{"Authorization": "Bearer " + bobToken}
	sync := func(conn string) string { return s.URL + "/api/v1/connections/" + conn + "/syncs" }

	for i := range 10 {
		r := MustSend(t, http.MethodPost, sync("c1"), alice)
		require.Equal(t, http.StatusNoContent, r.Status, "sync %d: %s", i+1, r.Body)
		assertRateHeaders(t, r.Header, 10, 9-i, 12*(i+1), "sync "+strconv.Itoa(i+1))
	}
	r := MustSend(t, http.MethodPost, sync("c1"), alice)
	MustProblem(t, r, http.StatusTooManyRequests, "/api/v1/connections/c1/syncs")
	assert.Equal(t, "12", r.Header.Get("Retry-After"))

	r = MustSend(t, http.MethodPost, sync("c2"), alice)
	assert.Equal(t, http.StatusNoContent, r.Status, "another connection")
	assertRateHeaders(t, r.Header, 10, 9, 12, "another connection's own bucket")
	assert.Equal(t, http.StatusNoContent, MustSend(t, http.MethodPost, sync("c1"), bob).Status, "another user")
	assert.Equal(t, 1.0, counter(t, s.Registry, "dashtam_rate_limit_denied_total", "sync"))
}

// Without trusted proxies, X-Forwarded-For is the client's to forge, so it
// must not buy a fresh bucket; behind a trusted proxy it names the client,
// and an IPv6 client's whole /64 shares one bucket.
func TestRateLimitClientAddress(t *testing.T) {
	login := func(s *limitedServer, xff string) int {
		return MustLogin(t, s.URL, map[string]string{"X-Forwarded-For": xff}).Status
	}

	direct := MustLimitedServer(t, web.RateLimitOptions{})
	for i := range 5 {
		require.Equal(t, http.StatusCreated, login(direct, "198.51.100."+strconv.Itoa(i)))
	}
	assert.Equal(t, http.StatusTooManyRequests, login(direct, "198.51.100.99"), "a forged X-Forwarded-For is ignored")

	proxied := MustLimitedServer(t, web.RateLimitOptions{}, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	for i := range 5 {
		require.Equal(t, http.StatusCreated, login(proxied, "2001:db8:1:2::"+strconv.Itoa(i+1)))
	}
	assert.Equal(t, http.StatusTooManyRequests, login(proxied, "2001:db8:1:2:ffff::1"), "same /64, same bucket")
	assert.Equal(t, http.StatusCreated, login(proxied, "2001:db8:1:3::1"), "another /64")
	assert.Equal(t, http.StatusCreated, login(proxied, "203.0.113.9"), "another client behind the proxy")
	// A client cannot prepend its own entry: the right-most untrusted address counts.
	for range 4 {
		require.Equal(t, http.StatusCreated, login(proxied, "203.0.113.9"))
	}
	assert.Equal(t, http.StatusTooManyRequests, login(proxied, "192.0.2.1, 203.0.113.9"))
}

// Authentication runs before the rate limits, so a verified bearer token
// is what per-user buckets key on; a token that fails verification spends
// nothing of anyone's allowance.
func TestRateLimitKeysOnTheAuthenticatedUser(t *testing.T) {
	s := MustLimitedServer(t, web.RateLimitOptions{})
	token, _ := s.Identity.MustToken(t, "user")
	me := s.URL + "/api/v1/users/me"
	for i := range 3 {
		r := MustCall(t, http.MethodGet, me, "", token)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.Equal(t, strconv.Itoa(99-i), r.Header.Get("RateLimit-Remaining"), "read %d", i+1)
	}
	r := MustCall(t, http.MethodGet, me, "", "forged")
	require.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Empty(t, r.Header.Get("RateLimit-Limit"))
	other, _ := s.Identity.MustToken(t, "user")
	r = MustCall(t, http.MethodGet, me, "", other)
	assert.Equal(t, "99", r.Header.Get("RateLimit-Remaining"), "another user has a bucket of their own")
}

// Permissions are checked after the rate limits: a caller probing an admin
// route spends its write allowance like any other request, and once it is
// refused with 429 its refusals stop being recorded as events.
func TestForbiddenRequestsAreRateLimited(t *testing.T) {
	s := MustLimitedServer(t, web.RateLimitOptions{})
	token, _ := s.Identity.MustToken(t, user.RoleReadonly)
	rotations := s.URL + "/api/v1/admin/security/rotations"
	body := `{"reason":"probe"}`
	for i := range policy.Writes.Burst {
		r := MustCall(t, http.MethodPost, rotations, body, token)
		require.Equal(t, http.StatusForbidden, r.Status, "request %d: %s", i+1, r.Body)
	}
	r := MustCall(t, http.MethodPost, rotations, body, token)
	p := MustProblem(t, r, http.StatusTooManyRequests, "/api/v1/admin/security/rotations")
	assert.Equal(t, "rate_limited", p.Code)
	for range 5 {
		require.Equal(t, http.StatusTooManyRequests, MustCall(t, http.MethodPost, rotations, body, token).Status)
	}
	assert.Len(t, s.Identity.Denied(), policy.Writes.Burst, "only the requests within the allowance are recorded")
}

// Behind a trusted proxy, the access log, the rate limits and the event
// metadata all name the client X-Forwarded-For names, through one
// extractor; without one, all three see the socket's peer.
func TestTrustedProxiesNameTheClientEverywhere(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"direct", nil, "127.0.0.1"},
		{"proxied", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.7"},
	} {
		s := MustLimitedServer(t, web.RateLimitOptions{}, tc.trusted...)
		token, _ := s.Identity.MustToken(t, user.RoleReadonly)
		req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/admin/security/rotations", strings.NewReader(`{"reason":"probe"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		require.Equal(t, http.StatusForbidden, MustDo(t, req).Status, tc.name)

		from := s.Identity.DeniedFrom()
		require.Len(t, from, 1, tc.name)
		assert.Equal(t, tc.want, from[0].IP.String(), "%s: event metadata", tc.name)
		assert.Contains(t, s.Logs.String(), `"remote_ip":"`+tc.want+`"`, "%s: access log", tc.name)
	}
}
