package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/commands/ratelimit"
)

// Mount is an http.Handler served beside the API under a path prefix,
// outside the OpenAPI document: the sandbox institution under /sandbox.
// It sees the request's whole path, prefix included, and answers in its
// own dialect; it gets the server's trace ids, access logs, metrics, body
// limit and per-IP rate limit, but no authentication (it is public).
type Mount struct {
	// Prefix is the path it serves, and everything below it: "/sandbox".
	Prefix string
	// Handler answers every method of mountMethods under Prefix.
	Handler http.Handler
	// RateLimit names the policy of commands/ratelimit charged per client
	// IP on every request, as for the server's other public routes.
	RateLimit string
}

// mountMethods are the methods a mount answers; Echo's Any adds more
// (CONNECT, TRACE, PROPFIND, REPORT) that no mounted handler needs.
var mountMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// reservedPrefixes are the server's own paths, which no mount may shadow.
var reservedPrefixes = []string{"/api", "/oauth", "/docs", "/redoc", "/openapi.json", "/health", "/ready", "/metrics",
	verifyEmailPagePath, resetPasswordPagePath}

// mountRateLimits checks mounts and returns the per-IP limits of the
// routes they add, refusing an empty, relative, trailing-slash or
// reserved prefix, a duplicate, a nil handler and an unknown policy: a
// mount must not go unlimited or shadow the API.
func mountRateLimits(mounts []Mount) (ownRouteRateLimits, error) {
	limits := ownRouteRateLimits{}
	seen := map[string]bool{}
	for _, m := range mounts {
		switch {
		case m.Handler == nil:
			return nil, fmt.Errorf("mount %q: nil handler", m.Prefix)
		case !strings.HasPrefix(m.Prefix, "/") || len(m.Prefix) < 2 || strings.HasSuffix(m.Prefix, "/") ||
			strings.ContainsAny(m.Prefix, ":*?#"):
			return nil, fmt.Errorf("mount %q: the prefix must be an absolute path such as /sandbox, without a trailing slash", m.Prefix)
		case seen[m.Prefix]:
			return nil, fmt.Errorf("mount %q: mounted twice", m.Prefix)
		}
		for _, r := range reservedPrefixes {
			if m.Prefix == r || strings.HasPrefix(m.Prefix, r+"/") {
				return nil, fmt.Errorf("mount %q: the server serves %s itself", m.Prefix, r)
			}
		}
		p, ok := ratelimit.ByName(m.RateLimit)
		if !ok {
			return nil, fmt.Errorf("mount %q: unknown rate-limit policy %q (see commands/ratelimit/policies.go)", m.Prefix, m.RateLimit)
		}
		seen[m.Prefix] = true
		for _, method := range mountMethods {
			limits[method+" "+m.Prefix] = p
			limits[method+" "+m.Prefix+"/*"] = p
		}
	}
	return limits, nil
}

// registerMounts serves each mount at its prefix and below.
func registerMounts(e *echo.Echo, mounts []Mount) {
	for _, m := range mounts {
		h := echo.WrapHandler(m.Handler)
		e.Match(mountMethods, m.Prefix, h)
		e.Match(mountMethods, m.Prefix+"/*", h)
	}
}
