package web_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/web"
)

func TestServeFinishesInFlightRequestsOnShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s, err := web.New(web.Options{
		Logger:    slog.New(slog.DiscardHandler),
		Registry:  prometheus.NewRegistry(),
		Readiness: &fakeReadiness{},
		Identity:  newFakeIdentity(t, &fakeClock{now: testEpoch}),
		Routes: func(e *echo.Echo) {
			e.GET("/test/block", func(c echo.Context) error {
				close(entered)
				<-release
				return c.String(http.StatusOK, "finished")
			})
		},
	})
	require.NoError(t, err)
	shutdownBegun := make(chan struct{})
	s.OnShutdown(func() { close(shutdownBegun) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/test/block")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{status: resp.StatusCode, body: string(b), err: err}
	}()

	<-entered
	cancel()
	<-shutdownBegun
	// The listener is closed before shutdown hooks run: no new connections.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("server still accepts connections during shutdown")
	}
	close(release)

	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "finished", r.body)
	require.NoError(t, <-served)
}

func TestServeReportsListenerFailure(t *testing.T) {
	s, err := web.New(web.Options{
		Logger:    slog.New(slog.DiscardHandler),
		Registry:  prometheus.NewRegistry(),
		Readiness: &fakeReadiness{},
		Identity:  newFakeIdentity(t, &fakeClock{now: testEpoch}),
	})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	require.Error(t, s.Serve(context.Background(), ln))
}

// Serve caps request headers at 16 KiB: a client sending more is refused
// with 431 before any handler runs, instead of pinning a megabyte per
// connection.
func TestServeRefusesOversizedHeaders(t *testing.T) {
	s, err := web.New(web.Options{
		Logger:    slog.New(slog.DiscardHandler),
		Registry:  prometheus.NewRegistry(),
		Readiness: &fakeReadiness{},
		Identity:  newFakeIdentity(t, &fakeClock{now: testEpoch}),
	})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
	})

	get := func(header string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/metrics", nil)
		require.NoError(t, err)
		req.Header.Set("X-Padding", header)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, get(strings.Repeat("a", 8<<10)))
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, get(strings.Repeat("a", 64<<10)))
}

// recordsHandler hands every log record to a channel, so a test can wait
// for the access log line instead of sleeping.
type recordsHandler struct{ records chan slog.Record }

func (h recordsHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordsHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.records <- r.Clone():
	default: // the test has read what it needed
	}
	return nil
}
func (h recordsHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordsHandler) WithGroup(string) slog.Handler      { return h }

// A client that hangs up is not a server failure: the request is logged at
// Info with status 499, counted under 499 in the metrics, and no error line
// is written.
func TestClientHangUpIsNotAServerError(t *testing.T) {
	records := make(chan slog.Record, 16)
	reg := prometheus.NewRegistry()
	entered := make(chan struct{})
	s := MustServer(t, web.Options{
		Logger:   slog.New(recordsHandler{records}),
		Registry: reg,
		Routes: func(e *echo.Echo) {
			e.GET("/test/wait", func(c echo.Context) error {
				close(entered)
				<-c.Request().Context().Done()
				return c.Request().Context().Err()
			})
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/test/wait", nil)
	require.NoError(t, err)
	go func() {
		<-entered
		cancel()
	}()
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.Canceled)

	var levels []slog.Level
	for r := range records {
		levels = append(levels, r.Level)
		if r.Message != "http request" {
			continue
		}
		assert.Equal(t, slog.LevelInfo, r.Level)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "status" {
				assert.Equal(t, int64(499), a.Value.Int64())
			}
			return true
		})
		break
	}
	assert.NotContains(t, levels, slog.LevelError, "a hang-up is not logged as an error")

	families, err := reg.Gather()
	require.NoError(t, err)
	var statuses []string
	for _, f := range families {
		if f.GetName() != "http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" {
					statuses = append(statuses, l.GetValue())
				}
			}
		}
	}
	assert.Equal(t, []string{"499"}, statuses)
}
