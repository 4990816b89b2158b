package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/web"
)

// closedPort returns an address on which nothing listens.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	addr := ln.Addr().String()
	require.NoError(tb, ln.Close())
	return addr
}

// Each way PostgreSQL can be out of reach answers 503 with Retry-After,
// mapped once in web/errors.go; errors that say a statement was wrong stay
// 500, and an optimistic-concurrency conflict that outlived its retries is
// a 503 with a shorter Retry-After.
func TestUnavailableDatabaseAnswers503(t *testing.T) {
	addr := closedPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, connectErr := pgconn.Connect(ctx, "postgres://dashtam@"+addr+"/dashtam?sslmode=disable&connect_timeout=5")
	var ce *pgconn.ConnectError
	require.ErrorAs(t, connectErr, &ce, "a real connect error")
	_, dialErr := net.Dial("tcp", addr)
	require.Error(t, dialErr)

	causes := map[string]struct {
		err        error
		status     int
		retryAfter string
	}{
		"connect refused":          {fmt.Errorf("find credentials: %w", connectErr), 503, "5"},
		"dial":                     {fmt.Errorf("query: %w", dialErr), 503, "5"},
		"dropped connection":       {fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), 503, "5"},
		"eof":                      {fmt.Errorf("read: %w", io.EOF), 503, "5"},
		"conn closed":              {fmt.Errorf("exec: %w", pgconn.ErrConnClosed), 503, "5"},
		"closed pool":              {fmt.Errorf("acquire: %w", puddle.ErrClosedPool), 503, "5"},
		"admin shutdown 57P01":     {&pgconn.PgError{Code: "57P01"}, 503, "5"},
		"crash shutdown 57P02":     {&pgconn.PgError{Code: "57P02"}, 503, "5"},
		"cannot connect now 57P03": {fmt.Errorf("begin: %w", &pgconn.PgError{Code: "57P03"}), 503, "5"},
		"connection failure 08006": {&pgconn.PgError{Code: "08006"}, 503, "5"},
		"too many connections":     {&pgconn.PgError{Code: "53300"}, 503, "5"},
		"conflict after retries":   {fmt.Errorf("update user: %w", &eventstore.ConflictError{}), 503, "1"},
		"unique violation":         {&pgconn.PgError{Code: "23505"}, 500, ""},
		"statement cancelled":      {&pgconn.PgError{Code: "57014"}, 500, ""},
		"disk full":                {&pgconn.PgError{Code: "53100"}, 500, ""},
		"any other error":          {errors.New("boom"), 500, ""},
		"a bind error wraps EOF":   {echo.NewHTTPError(http.StatusBadRequest, "bad body").SetInternal(io.ErrUnexpectedEOF), 400, ""},
	}
	s := MustServer(t, web.Options{Routes: func(e *echo.Echo) {
		e.GET("/test/fail/:cause", func(c echo.Context) error { return causes[c.Param("cause")].err })
	}})
	for name, tc := range causes {
		t.Run(name, func(t *testing.T) {
			r := MustGet(t, s.URL+"/test/fail/"+url.PathEscape(name))
			p := MustProblem(t, r, tc.status, "/test/fail/"+name)
			assert.Equal(t, tc.retryAfter, r.Header.Get("Retry-After"))
			if tc.status == 503 {
				assert.Equal(t, "unavailable", p.Code)
				assert.NotContains(t, string(r.Body), addr, "the database's address is not for clients")
			}
		})
	}
}
