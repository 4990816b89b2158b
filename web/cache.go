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
