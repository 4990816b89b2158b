package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// limitBodies caps request bodies at max bytes: a declared oversize body is
// refused before the handler runs, and an undeclared (chunked) one fails
// with *http.MaxBytesError when read past the limit, which errors.go maps
// to 413.
func limitBodies(max int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > max {
				return Errorf(CodeTooLarge, "request body exceeds %d bytes", max)
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(c.Response(), r.Body, max)
			}
			return next(c)
		}
	}
}
