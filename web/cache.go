package web

import (
	"strings"

	"github.com/labstack/echo/v4"
)

// apiPrefix is the path prefix of the JSON API.
const apiPrefix = "/api/v1"

// noStoreAPI marks every response under /api/v1 — 404, 405 and 429
// included — as not to be cached: answers about users, sessions and money
// must not sit in shared caches. It is Pre middleware and goes by the raw
// path, so it covers requests no route matched too.
func noStoreAPI(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := c.Request().URL.Path; p == apiPrefix || strings.HasPrefix(p, apiPrefix+"/") {
			c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		}
		return next(c)
	}
}

// headerReferrerPolicy is the Referrer-Policy response header.
const headerReferrerPolicy = "Referrer-Policy"

// noSniff tells browsers to take every response for the type it declares:
// a problem+json body that echoes a client's input must never be sniffed
// into HTML or script. Pre middleware, so 404s and 405s carry it too.
func noSniff(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXContentTypeOptions, "nosniff")
		return next(c)
	}
}
