package web_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/ratelimit"
	policy "github.com/dashtam/dashtam/commands/ratelimit"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/web"
)

// perIPPolicy returns the policy an operation of the served document
// charges per client IP: the bare policy name of a public operation, or
// the one under "ip" in a mapping.
func perIPPolicy(tb testing.TB, op *openapi3.Operation) ratelimit.Policy {
	tb.Helper()
	raw, ok := op.Extensions[web.RateLimitExtension]
	require.True(tb, ok, "%s declares no rate limit", op.OperationID)
	var name string
	switch v := raw.(type) {
	case string:
		name = v
	case map[string]any:
		name, _ = v["ip"].(string)
	}
	p, ok := policy.ByName(name)
	require.True(tb, ok, "%s: no per-IP policy in %v", op.OperationID, raw)
	return p
}

// MustExhaust sends send() from one client until the answer is 429, and
// checks that this takes exactly the policy's burst: every request within
// it is charged, even one refused as malformed before any handler runs.
func MustExhaust(tb testing.TB, name string, p ratelimit.Policy, send func() response) {
	tb.Helper()
	for i := range p.Burst {
		r := send()
		require.NotEqual(tb, http.StatusTooManyRequests, r.Status, "%s: request %d of a burst of %d: %s", name, i+1, p.Burst, r.Body)
		require.Less(tb, r.Status, 500, "%s: %s", name, r.Body)
	}
	r := send()
	require.Equal(tb, http.StatusTooManyRequests, r.Status, "%s: request %d after a burst of %d (%s): %s", name, p.Burst+1, p.Burst, p.Name, r.Body)
	assert.NotEmpty(tb, r.Header.Get("Retry-After"), name)
	assert.Contains(tb, string(r.Body), `"code":"rate_limited"`, name)
}

// Every public route, in the document or served beside it, is limited per
// client IP, and the limit is charged before the body is even parsed: a
// client sending malformed bodies, which no handler ever sees, still runs
// out. Before the declarations, /tokens, /email-verifications and
// /password-resets took any number of requests from one address.
func TestEveryPublicRouteIsLimitedPerIPBeforeAnyWork(t *testing.T) {
	s := MustLimitedServer(t, web.RateLimitOptions{}, netip.MustParsePrefix("127.0.0.0/8"))
	doc, err := openapi3.NewLoader().LoadFromData(MustGet(t, s.URL+"/openapi.json").Body)
	require.NoError(t, err)
	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	client := 0
	// Each route gets a client of its own (the trusted proxy passes its
	// address on), so routes sharing a policy do not share its bucket here.
	from := func() map[string]string {
		client++
		return map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", client)}
	}
	public := 0
	for _, path := range paths {
		for method, op := range doc.Paths.Value(path).Operations() {
			if op.Extensions[web.PermissionExtension] != web.PermissionPublic {
				continue
			}
			public++
			p := perIPPolicy(t, op)
			header := from()
			MustExhaust(t, method+" "+path, p, func() response {
				if op.RequestBody == nil {
					return MustSend(t, method, s.URL+path, header)
				}
				req, err := http.NewRequest(method, s.URL+path, strings.NewReader(`{"malformed`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", header["X-Forwarded-For"])
				return MustDo(t, req)
			})
		}
	}
	assert.GreaterOrEqual(t, public, 14, "the system routes, the catalog and the public identity routes")

	// The routes served outside the document declare theirs in code.
	for _, rt := range []struct {
		method, path string
		policy       ratelimit.Policy
	}{
		{http.MethodGet, "/docs/swagger-ui.css", policy.PublicReads},
		{http.MethodGet, "/redoc/redoc.standalone.js", policy.PublicReads},
		{http.MethodGet, "/verify-email", policy.PublicReads},
		{http.MethodPost, "/verify-email", policy.EmailVerification},
		{http.MethodGet, "/reset-password", policy.PublicReads},
		{http.MethodPost, "/reset-password", policy.PasswordResetCompletion},
		{http.MethodGet, "/oauth/sandbox/callback", policy.OAuthCallback},
	} {
		header := from()
		MustExhaust(t, rt.method+" "+rt.path, rt.policy, func() response {
			if rt.method == http.MethodGet {
				return MustSend(t, rt.method, s.URL+rt.path, header)
			}
			req, err := http.NewRequest(rt.method, s.URL+rt.path, strings.NewReader(url.Values{"token": {"unknown"}}.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", header["X-Forwarded-For"])
			return MustDo(t, req)
		})
	}
}

// Local policies live in the server's memory: with the database limiter
// failing on every check, the probes and docs are still limited, and no
// check of theirs ever reaches the database.
func TestLocalPoliciesNeverTouchTheDatabase(t *testing.T) {
	pool := testdb.New(t)
	l, err := ratelimit.New(pool)
	require.NoError(t, err)
	pool.Close()
	local, err := ratelimit.NewMemory(ratelimit.DefaultMemoryKeys)
	require.NoError(t, err)
	s := MustLimitedServer(t, web.RateLimitOptions{Limiter: l, Local: local})
	MustExhaust(t, "GET /health", policy.PublicReads, func() response { return MustGet(t, s.URL+"/health") })
	assert.Zero(t, counter(t, s.Registry, "dashtam_rate_limit_errors_total", policy.PublicReads.Name))
	assert.Equal(t, http.StatusCreated, MustLogin(t, s.URL, nil).Status, "a shared policy still fails open")
	assert.Equal(t, 1.0, counter(t, s.Registry, "dashtam_rate_limit_errors_total", policy.Login.Name))
}

// A document whose rate-limit declarations are missing, unsound or not
// backed by routes stops start-up, naming the operation.
func TestRateLimitDeclarationsAreCheckedAtStartUp(t *testing.T) {
	const op = `  /api/v1/things:
    post:
      operationId: testThing
%s      responses: { "204": { description: ok } }
`
	serve := func(e *echo.Echo) {
		e.POST("/api/v1/things", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	}
	for name, tc := range map[string]struct {
		ext    string
		routes func(*echo.Echo)
		want   string
	}{
		"missing":                   {"      x-dashtam-permission: public\n      security: []\n", serve, "no x-dashtam-rate-limit"},
		"unknown policy":            {"      x-dashtam-permission: public\n      security: []\n      x-dashtam-rate-limit: logins\n", serve, `unknown policy "logins"`},
		"unknown key":               {"      x-dashtam-permission: public\n      security: []\n      x-dashtam-rate-limit: {ip: login, session: login}\n", serve, `key "session"`},
		"not a name":                {"      x-dashtam-permission: public\n      security: []\n      x-dashtam-rate-limit: [login]\n", serve, "neither a policy name"},
		"public without an IP":      {"      x-dashtam-permission: public\n      security: []\n      x-dashtam-rate-limit: {token_user: token_refresh}\n", serve, "no per-IP"},
		"public per user":           {"      x-dashtam-permission: public\n      security: []\n      x-dashtam-rate-limit: {ip: login, user: writes}\n", serve, "no verified user"},
		"protected without a user":  {"      x-dashtam-permission: self\n      x-dashtam-rate-limit: {ip: login}\n", serve, "no per-user"},
		"user+param of no param":    {"      x-dashtam-permission: self\n      x-dashtam-rate-limit: {user: writes, user+id: sync}\n", serve, `key "user+id"`},
		"token_user when protected": {"      x-dashtam-permission: self\n      x-dashtam-rate-limit: {user: writes, token_user: token_refresh}\n", serve, "for public operations"},
		"no route serves it":        {"      x-dashtam-permission: public\n      security: []\n      x-dashtam-rate-limit: login\n", nil, "no route serves it"},
		"unknown policy in a list":  {"      x-dashtam-permission: self\n      x-dashtam-rate-limit: {user: [writes, lots]}\n", serve, `unknown policy "lots"`},
		"empty list":                {"      x-dashtam-permission: self\n      x-dashtam-rate-limit: {user: []}\n", serve, "or a list of them"},
		"policy twice in a list":    {"      x-dashtam-permission: self\n      x-dashtam-rate-limit: {user: [writes, writes]}\n", serve, "or a list of them"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := web.NewWithExtraPaths(web.Options{
				Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Readiness: &fakeReadiness{},
				Identity: newFakeIdentity(t, &fakeClock{now: testEpoch}), Routes: tc.routes,
			}, fmt.Sprintf(op, tc.ext))
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
			if name != "no route serves it" {
				assert.ErrorContains(t, err, "POST /api/v1/things")
			}
		})
	}

	_, err := web.NewWithExtraPaths(web.Options{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Readiness: &fakeReadiness{},
		Identity: newFakeIdentity(t, &fakeClock{now: testEpoch}), Routes: serve,
	}, fmt.Sprintf(op, "      x-dashtam-permission: public\n      security: []\n      x-dashtam-rate-limit: login\n"))
	require.NoError(t, err, "a sound declaration starts")
}

// The served document carries each operation's declaration, so clients
// read the allowance the server enforces.
func TestServedDocumentDeclaresRateLimits(t *testing.T) {
	s := MustServer(t, web.Options{})
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(MustGet(t, s.URL+"/openapi.json").Body, &doc))
	require.NotEmpty(t, doc.Paths)
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(raw, &op))
			assert.Contains(t, op, web.RateLimitExtension, "%s %s", method, path)
		}
	}
}
