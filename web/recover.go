package web

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/labstack/echo/v4"
)

// recoverPanics turns a handler panic into a 500 problem, logging the panic
// value and stack under the trace id; the client sees only "internal error".
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if e, ok := v.(error); ok && errors.Is(e, http.ErrAbortHandler) {
				// net/http's deliberate abort: let the server drop the connection.
				panic(v)
			}
			r := c.Request()
			s.log.ErrorContext(r.Context(), "handler panicked",
				"trace_id", TraceID(r.Context()),
				"method", r.Method,
				"path", r.URL.Path,
				"panic", fmt.Sprint(v),
				"stack", string(debug.Stack()))
			err = &Error{Code: CodeInternal, Err: fmt.Errorf("panic: %v", v), logged: true}
		}()
		return next(c)
	}
}
