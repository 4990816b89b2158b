package web

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
)

// unmatchedRoute labels requests no route matched, so scanners probing
// random paths add one series rather than one per path.
const unmatchedRoute = "unmatched"

// observeRequests writes the access log line and the metrics of every
// request. It turns a returned error into its problem response itself,
// because Echo would otherwise do so only after this middleware returned,
// and the status logged would be wrong.
func (s *Server) observeRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		r := c.Request()
		status := c.Response().Status
		route := s.routeLabel(c.Path())
		s.metrics.observe(r.Method, route, status, d)
		// Only the path: query strings may carry tokens or codes, and
		// headers (Authorization above all) are never logged.
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("trace_id", TraceID(r.Context())),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.Int64("bytes_out", c.Response().Size),
			slog.String("remote_ip", maskIP(c.RealIP())),
		)
		return nil
	}
}

// maskIP returns the network of a client address, not the address: /24
// for IPv4, /48 for IPv6. An IP address is personal data, and a log file
// cannot be erased the way an event's sealed fields can (docs/audit.md);
// the network still tells an operator where traffic comes from. Event
// metadata and rate limits use the whole address.
func maskIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	bits := 48
	if a = a.Unmap(); a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// routeLabel returns the route template Echo matched, or unmatchedRoute
// when the path is not one of ours.
func (s *Server) routeLabel(path string) string {
	if _, ok := s.routes[path]; ok {
		return path
	}
	return unmatchedRoute
}
