package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// HeaderTraceID is the response header carrying the request's trace id; a
// client may also send it to continue its own trace.
const HeaderTraceID = "X-Trace-Id"

// headerTraceparent is the W3C Trace Context header, preferred over
// X-Trace-Id because proxies and tracing SDKs already speak it.
const headerTraceparent = "traceparent"

// requestKey keys the per-request values stored in the request context.
type requestKey struct{}

// requestInfo is what code without an echo.Context (strict handlers,
// loggers) needs to know about the request.
type requestInfo struct {
	traceID string
	path    string
}

// TraceID returns the trace id of the request ctx belongs to, or "" outside
// a request, so later packages can log under the same id.
func TraceID(ctx context.Context) string {
	info, _ := ctx.Value(requestKey{}).(requestInfo)
	return info.traceID
}

// requestPath returns the path of the request ctx belongs to, for problem
// `instance` members built outside the error handler.
func requestPath(ctx context.Context) string {
	info, _ := ctx.Value(requestKey{}).(requestInfo)
	return info.path
}

// traceRequests assigns every request a trace id before anything else runs,
// so even a 404 or a panic can be correlated with the logs.
func traceRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id := incomingTraceID(r.Header)
		if id == "" {
			id = newTraceID()
		}
		c.Response().Header().Set(HeaderTraceID, id)
		ctx := context.WithValue(r.Context(), requestKey{}, requestInfo{traceID: id, path: r.URL.Path})
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// incomingTraceID returns the caller's trace id when it is well formed, and
// "" otherwise: a malformed id is replaced rather than echoed into logs.
func incomingTraceID(h http.Header) string {
	if id, ok := parseTraceparent(h.Get(headerTraceparent)); ok {
		return id
	}
	if id := strings.ToLower(h.Get(HeaderTraceID)); isTraceID(id) {
		return id
	}
	return ""
}

// parseTraceparent extracts the trace-id of a W3C traceparent header
// ("00-<32 hex>-<16 hex>-<2 hex>"); version ff is invalid by the spec.
func parseTraceparent(v string) (string, bool) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(v)), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || !isHex(parts[0]) {
		return "", false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return "", false
	}
	if !isTraceID(parts[1]) || len(parts[2]) != 16 || !isHex(parts[2]) || parts[2] == "0000000000000000" {
		return "", false
	}
	if len(parts[3]) != 2 || !isHex(parts[3]) {
		return "", false
	}
	return parts[1], true
}

// isTraceID reports whether id is 32 lowercase hex digits and not all zero,
// the W3C rule for a valid trace id.
func isTraceID(id string) bool {
	return len(id) == 32 && isHex(id) && id != strings.Repeat("0", 32)
}

// isHex reports whether s is non-empty lowercase hexadecimal.
func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// newTraceID returns 16 random bytes in hex, the W3C trace-id format, so
// our ids and tracing systems' ids look alike.
func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b[:])
}
