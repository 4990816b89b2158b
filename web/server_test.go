package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/web"
)

// fakeReadiness answers readiness checks from fields the test sets.
type fakeReadiness struct {
	dbErr  error
	lags   []web.ProjectionLag
	lagErr error
}

func (f *fakeReadiness) CheckDatabase(context.Context) error { return f.dbErr }

func (f *fakeReadiness) ProjectionLags(context.Context) ([]web.ProjectionLag, error) {
	return f.lags, f.lagErr
}

// syncBuffer is a log sink the server's goroutines and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a Server behind a real HTTP listener, with its log captured.
type testServer struct {
	*web.Server
	URL  string
	Logs *syncBuffer
}

// MustServer starts a Server over httptest with sensible fakes for any
// required option the test left empty.
func MustServer(tb testing.TB, opts web.Options) *testServer {
	tb.Helper()
	return MustServerWith(tb, opts, "")
}

// MustServerWith is MustServer serving the shipped document plus
// extraPaths (see web.NewWithExtraPaths).
func MustServerWith(tb testing.TB, opts web.Options, extraPaths string) *testServer {
	tb.Helper()
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Readiness == nil {
		opts.Readiness = &fakeReadiness{}
	}
	if opts.Identity == nil {
		opts.Identity = newFakeIdentity(tb, &fakeClock{now: testEpoch})
	}
	if opts.Syncs == nil && opts.SyncReader == nil {
		f := newFakeSyncs()
		opts.Syncs, opts.SyncReader = f, f
	}
	if opts.Data == nil {
		opts.Data = emptyData{}
	}
	var (
		s   *web.Server
		err error
	)
	if extraPaths == "" {
		s, err = web.New(opts)
	} else {
		s, err = web.NewWithExtraPaths(opts, extraPaths)
	}
	require.NoError(tb, err)
	hs := httptest.NewServer(s.Handler())
	tb.Cleanup(hs.Close)
	return &testServer{Server: s, URL: hs.URL, Logs: logs}
}

// response is what a test reads back from one request.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// MustDo sends req and reads the whole response.
func MustDo(tb testing.TB, req *http.Request) response {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// MustGet sends a GET to url.
func MustGet(tb testing.TB, url string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(tb, err)
	return MustDo(tb, req)
}

// problem mirrors the RFC 9457 body the server sends.
type problem struct {
	Type     string  `json:"type"`
	Title    string  `json:"title"`
	Status   int     `json:"status"`
	Detail   string  `json:"detail"`
	Instance string  `json:"instance"`
	TraceID  string  `json:"trace_id"`
	Code     string  `json:"code"`
	Errors   []field `json:"errors"`
	// ErrorsOmitted counts the field errors left out of Errors.
	ErrorsOmitted *int    `json:"errors_omitted"`
	Checks        []check `json:"checks"`
}

type field struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

type check struct {
	Name         string `json:"name"`
	Status       string `json:"status"`
	Detail       string `json:"detail"`
	LagEvents    *int64 `json:"lag_events"`
	ParkedEvents *int64 `json:"parked_events"`
}

// MustProblem asserts r is a problem+json response with status and a trace
// id matching its X-Trace-Id header, and returns the decoded problem.
func MustProblem(tb testing.TB, r response, status int, instance string) problem {
	tb.Helper()
	require.Equal(tb, status, r.Status, "body: %s", r.Body)
	require.Equal(tb, "application/problem+json", r.Header.Get("Content-Type"))
	var p problem
	require.NoError(tb, json.Unmarshal(r.Body, &p))
	assert.Equal(tb, status, p.Status)
	assert.Equal(tb, "about:blank", p.Type)
	assert.Equal(tb, http.StatusText(status), p.Title)
	assert.Equal(tb, instance, p.Instance)
	assert.Regexp(tb, "^[0-9a-f]{32}$", p.TraceID)
	assert.Equal(tb, r.Header.Get(web.HeaderTraceID), p.TraceID)
	return p
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	full := web.Options{Logger: logger, Registry: prometheus.NewRegistry(), Readiness: &fakeReadiness{},
		Identity: newFakeIdentity(t, &fakeClock{now: testEpoch})}
	tests := map[string]func(o *web.Options){
		"logger":       func(o *web.Options) { o.Logger = nil },
		"registry":     func(o *web.Options) { o.Registry = nil },
		"readiness":    func(o *web.Options) { o.Readiness = nil },
		"identity":     func(o *web.Options) { o.Identity = nil },
		"body limit":   func(o *web.Options) { o.MaxBodyBytes = -1 },
		"dup provider": func(o *web.Options) { o.Providers = []web.ProviderInfo{{"a", "A", "none"}, {"a", "A", "none"}} },
		"bad auth":     func(o *web.Options) { o.Providers = []web.ProviderInfo{{"a", "A", "password"}} },
	}
	for name, breakIt := range tests {
		t.Run(name, func(t *testing.T) {
			o := full
			o.Registry = prometheus.NewRegistry()
			breakIt(&o)
			_, err := web.New(o)
			require.Error(t, err)
		})
	}
}

func TestHealth(t *testing.T) {
	ts := MustServer(t, web.Options{})
	r := MustGet(t, ts.URL+"/health")
	require.Equal(t, http.StatusOK, r.Status)
	assert.JSONEq(t, `{"status":"ok"}`, string(r.Body))
	assert.Regexp(t, "^[0-9a-f]{32}$", r.Header.Get(web.HeaderTraceID))
}

func TestUnknownRouteIsProblem(t *testing.T) {
	ts := MustServer(t, web.Options{})
	r := MustGet(t, ts.URL+"/no/such/route?x=1")
	p := MustProblem(t, r, http.StatusNotFound, "/no/such/route")
	assert.Equal(t, "not_found", p.Code)
}

func TestWrongMethodIsProblemWithAllow(t *testing.T) {
	ts := MustServer(t, web.Options{})
	req, err := http.NewRequest(http.MethodDelete, ts.URL+"/api/v1/providers", nil)
	require.NoError(t, err)
	r := MustDo(t, req)
	MustProblem(t, r, http.StatusMethodNotAllowed, "/api/v1/providers")
	assert.Contains(t, r.Header.Get("Allow"), http.MethodGet)
}

func TestPanicIsInternalProblem(t *testing.T) {
	ts := MustServer(t, web.Options{Routes: func(e *echo.Echo) {
		e.GET("/test/panic", func(echo.Context) error { panic("secret-panic-text") })
	}})
	r := MustGet(t, ts.URL+"/test/panic")
	p := MustProblem(t, r, http.StatusInternalServerError, "/test/panic")
	assert.Equal(t, "internal error", p.Detail)
	assert.NotContains(t, string(r.Body), "secret-panic-text")

	logs := ts.Logs.String()
	assert.Contains(t, logs, "secret-panic-text")
	assert.Contains(t, logs, `"trace_id":"`+p.TraceID+`"`)
	assert.Contains(t, logs, "runtime/debug.Stack")
}

func TestHandlerErrorsAreMappedOnce(t *testing.T) {
	ts := MustServer(t, web.Options{Routes: func(e *echo.Echo) {
		e.GET("/test/conflict", func(echo.Context) error {
			return web.Errorf(web.CodeConflict, "connection %s changed", "c1")
		})
		e.GET("/test/unknown", func(echo.Context) error {
			return errors.New("dial tcp 10.0.0.5:5432: secret host")
		})
	}})
	p := MustProblem(t, MustGet(t, ts.URL+"/test/conflict"), http.StatusConflict, "/test/conflict")
	assert.Equal(t, "connection c1 changed", p.Detail)
	assert.Equal(t, "conflict", p.Code)

	r := MustGet(t, ts.URL+"/test/unknown")
	p = MustProblem(t, r, http.StatusInternalServerError, "/test/unknown")
	assert.Equal(t, "internal error", p.Detail)
	assert.NotContains(t, string(r.Body), "secret host")
	assert.Contains(t, ts.Logs.String(), "secret host")
}

func TestBodyTooLarge(t *testing.T) {
	ts := MustServer(t, web.Options{MaxBodyBytes: 16, Routes: func(e *echo.Echo) {
		e.POST("/test/echo", func(c echo.Context) error {
			b, err := io.ReadAll(c.Request().Body)
			if err != nil {
				return err
			}
			return c.Blob(http.StatusOK, "text/plain", b)
		})
	}})
	body := strings.Repeat("x", 17)
	tests := map[string]io.Reader{
		"declared length": strings.NewReader(body),
		// A reader of unknown length makes the client send chunked.
		"chunked": io.MultiReader(strings.NewReader(body)),
	}
	for name, r := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/test/echo", r)
			require.NoError(t, err)
			p := MustProblem(t, MustDo(t, req), http.StatusRequestEntityTooLarge, "/test/echo")
			assert.Equal(t, "too_large", p.Code)
		})
	}
	t.Run("within limit", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/test/echo", strings.NewReader("small"))
		require.NoError(t, err)
		r := MustDo(t, req)
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, "small", string(r.Body))
	})
}
