package web_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/web"
)

// Every response says its type is not to be sniffed: errors of the router,
// problems, JSON, pages and docs alike.
func TestEveryResponseIsNoSniff(t *testing.T) {
	s := MustIdentityServer(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/health", http.StatusOK},
		{http.MethodGet, "/api/v1/providers", http.StatusOK},
		{http.MethodGet, "/api/v1/providers?limit=0", http.StatusBadRequest},
		{http.MethodGet, "/api/v1/users/me", http.StatusUnauthorized},
		{http.MethodGet, "/no/such/route", http.StatusNotFound},
		{http.MethodDelete, "/api/v1/providers", http.StatusMethodNotAllowed},
		{http.MethodGet, "/openapi.json", http.StatusOK},
		{http.MethodGet, "/docs", http.StatusOK},
		{http.MethodGet, "/docs/swagger-ui.css", http.StatusOK},
		{http.MethodGet, "/redoc", http.StatusOK},
		{http.MethodGet, "/redoc/redoc.standalone.js", http.StatusOK},
		{http.MethodGet, "/verify-email?token=abc", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
	} {
		r := MustCall(t, tc.method, s.URL+tc.path, "", "")
		require.Equal(t, tc.status, r.Status, "%s %s: %s", tc.method, tc.path, r.Body)
		assert.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), "%s %s", tc.method, tc.path)
	}
}

// cspDirectives splits a Content-Security-Policy into its directives.
func cspDirectives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[f[0]] = f[1:]
		}
	}
	return out
}

// inlineScripts finds the scripts a page carries inline.
var inlineScripts = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// The documentation pages and the mail pages may not be framed, send no
// Referer, and have a CSP that allows no origin but this server's: every
// source is 'self', 'none', a hash, data: or (for ReDoc's search worker)
// blob:, and every inline script the page carries is allowed by its hash.
func TestHTMLPagesForbidThirdPartyOriginsAndFraming(t *testing.T) {
	s := MustIdentityServer(t)
	allowed := regexp.MustCompile(`^('self'|'none'|'unsafe-inline'|'sha256-[A-Za-z0-9+/]+=*'|data:|blob:)$`)
	for _, path := range []string{"/docs", "/docs/", "/redoc", "/verify-email?token=abc", "/reset-password?token=abc"} {
		r := MustGet(t, s.URL+path)
		require.Equal(t, http.StatusOK, r.Status, path)
		require.Contains(t, r.Header.Get("Content-Type"), "text/html", path)
		assert.Equal(t, "DENY", r.Header.Get("X-Frame-Options"), path)
		assert.Equal(t, "no-referrer", r.Header.Get("Referrer-Policy"), path)
		csp := cspDirectives(r.Header.Get("Content-Security-Policy"))
		require.Equal(t, []string{"'none'"}, csp["default-src"], "%s: %v", path, csp)
		assert.Equal(t, []string{"'none'"}, csp["frame-ancestors"], path)
		for name, sources := range csp {
			for _, src := range sources {
				assert.Regexp(t, allowed, src, "%s: %s allows %s", path, name, src)
			}
			if name != "style-src" {
				assert.NotContains(t, sources, "'unsafe-inline'", "%s: only styles may be inline", path)
			}
		}
		for _, m := range inlineScripts.FindAllStringSubmatch(string(r.Body), -1) {
			sum := sha256.Sum256([]byte(m[1]))
			assert.Contains(t, csp["script-src"], "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'",
				"%s: an inline script the CSP does not allow", path)
		}
	}
}

// ReDoc's bundle loaded its logo from a CDN; the served bundle has no
// third-party URL left that a browser would fetch, and differs from the
// published one by that element only.
func TestRedocBundleLoadsNothingFromACDN(t *testing.T) {
	s := MustServer(t, web.Options{})
	r := MustGet(t, s.URL+"/redoc/redoc.standalone.js")
	require.Equal(t, http.StatusOK, r.Status)
	js := string(r.Body)
	assert.NotContains(t, js, "cdn.redoc.ly")
	assert.NotContains(t, js, `src:"http`)
	assert.Contains(t, js, `"API docs by Redocly"`, "the link stays, without its image")
	assert.Greater(t, len(js), 1_000_000)

	// The page itself loads only this server's assets.
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(string(MustGet(t, s.URL+"/redoc").Body), -1) {
		u, err := url.Parse(m[1])
		require.NoError(t, err)
		assert.Empty(t, u.Host, m[1])
	}
}
