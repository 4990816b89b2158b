package web_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/dashtam/dashtam/web"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
