package web

import (
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/eventstore"
)

// Retry-After of the 503s below. An outage of the database is measured in
// seconds at best (a restart, a failover); a stream busy with concurrent
// writers frees up in milliseconds.
const (
	databaseRetryAfter = 5 * time.Second
	conflictRetryAfter = 1 * time.Second
)

// databaseDown maps a failure to reach PostgreSQL to 503 with Retry-After:
// the request was sound and may well succeed once the database is back, so
// a 500 (a bug) would mislead both the client and the alerting.
func databaseDown(err error) (*Error, bool) {
	if !databaseUnavailable(err) {
		return nil, false
	}
	return &Error{
		Code: CodeUnavailable, Detail: "a service this request depends on is unavailable; retry later",
		Err: err, retryAfter: databaseRetryAfter,
	}, true
}

// conflictExhausted maps an optimistic-concurrency conflict that outlived
// the event store's retries to 503 with Retry-After. The client sent no
// version it could refresh (that would be a 409): other writers kept the
// stream busy, and the same request will most likely pass a moment later.
func conflictExhausted(err error) (*Error, bool) {
	if !errors.Is(err, eventstore.ErrConflict) {
		return nil, false
	}
	return &Error{
		Code: CodeUnavailable, Detail: "the resource is busy with concurrent changes; retry shortly",
		Err: err, retryAfter: conflictRetryAfter,
	}, true
}

// databaseUnavailable reports whether err says PostgreSQL could not be
// reached or is going away, rather than that a statement was wrong:
// failing to connect or to acquire a pooled connection, a connection
// dropped mid-request (EOF, reset, closed), a network timeout inside pgx,
// and the server's own refusals while shutting down or starting
// (SQLSTATE class 57P), connection exceptions (class 08) and too many
// connections (53300).
func databaseUnavailable(err error) bool {
	// Echo's binding errors wrap the decoder's io.EOF: a malformed body,
	// not a dropped connection.
	var httpErr *echo.HTTPError
	if errors.As(err, &httpErr) {
		return false
	}
	var (
		connectErr *pgconn.ConnectError
		opErr      *net.OpError
		pgErr      *pgconn.PgError
	)
	switch {
	case errors.As(err, &pgErr):
		return strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "53300"
	case errors.As(err, &connectErr), errors.As(err, &opErr), pgconn.Timeout(err):
		return true
	case errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, puddle.ErrClosedPool):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}
