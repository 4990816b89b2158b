package web

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"

	policy "github.com/dashtam/dashtam/commands/ratelimit"
)

// A route the server serves outside the document needs a limit declared in
// code, and a declaration needs its route.
func TestCheckRoutesRefusesUndeclaredOwnRoutes(t *testing.T) {
	own := []*echo.Route{{Method: http.MethodGet, Path: "/page"}, {Method: http.MethodPost, Path: "/op"}}
	decl := rateDeclarations{"POST /op": {{key: rateKeyIP, policy: policy.Login}}}

	err := checkRoutes(own, own, decl, ownRouteRateLimits{})
	assert.ErrorContains(t, err, "GET /page is served outside openapi.yaml without a declared rate limit")

	err = checkRoutes(own, own, decl, ownRouteRateLimits{"GET /page": policy.PublicReads, "GET /gone": policy.PublicReads})
	assert.ErrorContains(t, err, "GET /gone has a declared rate limit but no route")

	assert.NoError(t, checkRoutes(own, own, decl, ownRouteRateLimits{"GET /page": policy.PublicReads}))
	// Routes added through Options.Routes may serve operations, and are
	// the embedder's to limit.
	all := append(own[:len(own):len(own)], &echo.Route{Method: http.MethodGet, Path: "/test/hook"})
	assert.NoError(t, checkRoutes(own, all, decl, ownRouteRateLimits{"GET /page": policy.PublicReads}))
}
