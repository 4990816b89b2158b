package web_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/authtoken"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/web"
)

// identityServer is a server over fake identity and connections services
// at a pinned clock.
type identityServer struct {
	*testServer
	Identity    *fakeIdentity
	Connections *fakeConnections
	Clock       *fakeClock
}

// MustIdentityServer starts a server whose identity and connections
// services are the fakes.
func MustIdentityServer(tb testing.TB) *identityServer {
	tb.Helper()
	clock := &fakeClock{now: testEpoch}
	id := newFakeIdentity(tb, clock)
	conns := newFakeConnections(clock)
	s := MustServer(tb, web.Options{Identity: id, Audit: &fakeAudit{}, Connections: conns, ConnectionList: conns, Now: clock.Now,
		Webhooks: newFakeWebhooks(clock), Feed: fakeFeed{}, Streams: fakeStreams{},
		Providers: []web.ProviderInfo{{Slug: "sandbox", Name: "Dashtam Sandbox", AuthType: "oauth2"},
			{Slug: "schwab", Name: "Charles Schwab", AuthType: "oauth2"}}})
	return &identityServer{testServer: s, Identity: id, Connections: conns, Clock: clock}
}

// MustCall sends method to path with an optional JSON body and bearer token.
func MustCall(tb testing.TB, method, url, body, token string) response {
	tb.Helper()
	var req *http.Request
	var err error
	if body == "" {
		req, err = http.NewRequest(method, url, nil)
	} else {
		req, err = http.NewRequest(method, url, strings.NewReader(body))
	}
	require.NoError(tb, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return MustDo(tb, req)
}

// pathParam matches an OpenAPI path parameter, which Echo writes :name.
var pathParam = regexp.MustCompile(`\{(\w+)\}`)

// sampleBodies holds a valid request body for every operation that takes
// one; the matrix fails on an operation missing here, so a new route
// cannot slip past it with a body the validator refuses before auth runs.
var sampleBodies = map[string]string{
	"registerUser":             `{"email":"new@example.com","password":"correct horse battery"}`,
	"verifyEmail":              `{"token":"abc"}`,
	"login":                    `{"email":"ada@example.com","password":"correct horse battery"}`,
	"refreshTokens":            `{"refresh_token":"abc"}`,
	"requestPasswordReset":     `{"email":"ada@example.com"}`,
	"requestEmailVerification": `{"email":"ada@example.com"}`,
	"resetPassword":            `{"token":"abc","password":"correct horse battery"}`,
	"rotateAllTokens":          `{"reason":"matrix test"}`,
	"eraseCurrentUser":         `{"password":"correct horse battery"}`,
	"rotateUserTokens":         `{"reason":"matrix test"}`,
	"setUserRoles":             `{"roles":["user"]}`,
	"requestSync":              `{"force":false}`,
	"createConnection":         `{"provider_slug":"sandbox","alias":"Matrix"}`,
	"renameConnection":         `{"alias":"Matrix renamed"}`,
	"createWebhook":            `{"url":"https://example.com/hooks","event_types":["sync.completed"]}`,
	"updateWebhook":            `{"enabled":false}`,
}

// TestRoleMatrix walks every operation of the served OpenAPI document and
// calls it without a token and as each role, asserting it is allowed or
// refused exactly as its declared permission and the role table say.
func TestRoleMatrix(t *testing.T) {
	s := MustIdentityServer(t)
	doc, err := openapi3.NewLoader().LoadFromData(MustGet(t, s.URL+"/openapi.json").Body)
	require.NoError(t, err)

	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	operations := 0
	for _, path := range paths {
		for method, op := range doc.Paths.Value(path).Operations() {
			operations++
			raw, ok := op.Extensions[web.PermissionExtension]
			require.True(t, ok, "%s %s declares no permission", method, path)
			perm, _ := raw.(string)
			url := s.URL + strings.NewReplacer("{id}", uuid.NewString(), "{sync_id}", uuid.NewString(), "{type}", "connection").Replace(path)
			body := sampleBodies[op.OperationID]
			if op.RequestBody != nil {
				require.NotEmpty(t, body, "%s has a request body but no sample in sampleBodies", op.OperationID)
			}
			name := method + " " + path

			anon := MustCall(t, method, url, body, "")
			if perm == web.PermissionPublic {
				assert.NotContains(t, []int{401, 403}, anon.Status, "%s is public: %s", name, anon.Body)
				assert.Less(t, anon.Status, 500, "%s: %s", name, anon.Body)
			} else {
				p := MustProblem(t, anon, http.StatusUnauthorized, strings.TrimPrefix(url, s.URL))
				assert.Equal(t, "unauthorized", p.Code, name)
				assert.True(t, strings.HasPrefix(anon.Header.Get("WWW-Authenticate"), "Bearer"), name)
			}

			for _, role := range user.Roles {
				// A fresh session per call: logout must not spoil later calls.
				token, _ := s.Identity.MustToken(t, role)
				denied := len(s.Identity.Denied())
				r := MustCall(t, method, url, body, token)
				allowed := perm == web.PermissionPublic || role.Allows(user.Permission(perm))
				if allowed {
					assert.NotContains(t, []int{401, 403}, r.Status, "%s as %s: %s", name, role, r.Body)
					assert.Less(t, r.Status, 500, "%s as %s: %s", name, role, r.Body)
					assert.Len(t, s.Identity.Denied(), denied, "%s as %s recorded a denial", name, role)
					continue
				}
				p := MustProblem(t, r, http.StatusForbidden, strings.TrimPrefix(url, s.URL))
				assert.Equal(t, "forbidden", p.Code, "%s as %s", name, role)
				// The route is Echo's template, so other users' ids stay out of the event.
				want := user.AccessDenial{Method: method, Route: pathParam.ReplaceAllString(path, ":$1"), Permission: user.Permission(perm)}
				assert.Equal(t, []user.AccessDenial{want}, s.Identity.Denied()[denied:],
					"%s as %s: the refusal is recorded with its method and route", name, role)
			}
		}
	}
	assert.GreaterOrEqual(t, operations, 23, "every identity route of docs/api.md plus the system ones")
	for id := range sampleBodies {
		found := false
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				found = found || op.OperationID == id
			}
		}
		assert.True(t, found, "sampleBodies names unknown operation %s", id)
	}
}

// Every way a bearer token can be bad ends in the same kind of 401, through
// the real JWT verifier.
func TestTamperedTokensAreUnauthorized(t *testing.T) {
	s := MustIdentityServer(t)
	me := s.URL + "/api/v1/users/me"
	good, p := s.Identity.MustToken(t, user.RoleUser)
	require.Equal(t, http.StatusOK, MustCall(t, http.MethodGet, me, "", good).Status, "the control token works")

	claims := jwt.MapClaims{
		"sub": p.UserID.String(), "sid": p.SessionID.String(), "roles": []string{"admin"}, "ver": 0,
		"jti": uuid.NewString(), "iss": testIssuer, "aud": authtoken.DefaultAudience,
		"iat": testEpoch.Unix(), "exp": testEpoch.Add(time.Hour).Unix(),
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	issuer := func(cfg authtoken.JWTConfig) string {
		if cfg.Secret == nil {
			cfg.Secret = []byte(testJWTSecret)
		}
		cfg.Issuer = testIssuer
		cfg.Now = s.Clock.Now
		j, err := authtoken.NewJWT(cfg)
		require.NoError(t, err)
		tok, _, err := j.Issue(commands.AccessClaims{Subject: p.UserID, SessionID: p.SessionID, Roles: []string{"admin"}})
		require.NoError(t, err)
		return tok
	}
	wrongKey := issuer(authtoken.JWTConfig{Secret: []byte(strings.Repeat("k", 40))})
	wrongAudience := issuer(authtoken.JWTConfig{Audience: "another-api"})
	// Same key and claims, but the signature of an HS512 token: pinned algorithm.
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString([]byte(testJWTSecret))
	require.NoError(t, err)
	expiring, _ := s.Identity.MustToken(t, user.RoleUser)
	revoked, rp := s.Identity.MustToken(t, user.RoleUser)
	s.Identity.Revoke(rp.SessionID)
	parts := strings.Split(good, ".")
	forgedClaims := parts[0] + "." + jwtSegment(t, claims) + "." + parts[2]

	cases := map[string]string{
		"alg none":        none,
		"wrong key":       wrongKey,
		"wrong audience":  wrongAudience,
		"other algorithm": hs512,
		"payload swapped": forgedClaims,
		"garbage":         "not-a-jwt",
		"revoked session": revoked,
		"oversized":       strings.Repeat("a", 5000),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			assertUnauthorized(t, MustCall(t, http.MethodGet, me, "", token), `error="invalid_token"`)
		})
	}

	t.Run("expired", func(t *testing.T) {
		s.Clock.Advance(authtoken.DefaultTTL + authtoken.DefaultLeeway + time.Second)
		r := MustCall(t, http.MethodGet, me, "", expiring)
		p := assertUnauthorized(t, r, `error="invalid_token"`)
		assert.Contains(t, p.Detail, "expired", "a client is told to refresh, not to log in")
	})
	t.Run("below the minimum version", func(t *testing.T) {
		fresh, _ := s.Identity.MustToken(t, user.RoleUser)
		require.Equal(t, http.StatusOK, MustCall(t, http.MethodGet, me, "", fresh).Status)
		s.Identity.SetMinVersion(1)
		assertUnauthorized(t, MustCall(t, http.MethodGet, me, "", fresh), `error="invalid_token"`)
	})
	t.Run("other scheme", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, me, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Basic YWRhOnB3")
		assertUnauthorized(t, MustDo(t, req), `error="invalid_request"`)
	})
	t.Run("no token", func(t *testing.T) {
		r := MustCall(t, http.MethodGet, me, "", "")
		assertUnauthorized(t, r, "")
		assert.Equal(t, `Bearer realm="dashtam"`, r.Header.Get("WWW-Authenticate"))
	})
}

// jwtSegment encodes claims as a JWT payload segment.
func jwtSegment(tb testing.TB, claims jwt.MapClaims) string {
	tb.Helper()
	b, err := json.Marshal(claims)
	require.NoError(tb, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// assertUnauthorized checks a 401 problem with a Bearer challenge carrying
// oauthError (RFC 6750 §3), and no trace of the caller's data.
func assertUnauthorized(tb testing.TB, r response, oauthError string) problem {
	tb.Helper()
	p := MustProblem(tb, r, http.StatusUnauthorized, "/api/v1/users/me")
	assert.Equal(tb, "unauthorized", p.Code)
	challenge := r.Header.Get("WWW-Authenticate")
	assert.True(tb, strings.HasPrefix(challenge, "Bearer "), challenge)
	assert.Contains(tb, challenge, oauthError)
	return p
}

// The User-Agent kept in event metadata is cut to 512 bytes of valid UTF-8:
// a client must not write kilobytes into every event it causes, and a cut
// through a multi-byte character must not leave invalid text behind.
func TestLongUserAgentIsTruncated(t *testing.T) {
	s := MustIdentityServer(t)
	token, _ := s.Identity.MustToken(t, user.RoleReadonly)
	for _, tc := range []struct{ name, ua, want string }{
		{"short", "Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"},
		{"ascii", strings.Repeat("a", 2000), strings.Repeat("a", 512)},
		// 511 bytes, then a 3-byte character across the limit.
		{"multi-byte", strings.Repeat("a", 511) + strings.Repeat("€", 100), strings.Repeat("a", 511)},
	} {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/admin/security/rotations", strings.NewReader(`{"reason":"probe"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("User-Agent", tc.ua)
		require.Equal(t, http.StatusForbidden, MustDo(t, req).Status, tc.name)
		from := s.Identity.DeniedFrom()
		require.NotEmpty(t, from, tc.name)
		got := from[len(from)-1].UserAgent
		assert.Equal(t, tc.want, got, tc.name)
		assert.True(t, utf8.ValidString(got), tc.name)
	}
}
