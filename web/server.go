package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/commands/audit"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/commands/webhooks"
	"github.com/dashtam/dashtam/web/api"
)

// Timeouts of the underlying http.Server: a slow or idle client must not
// hold a connection forever, and no API response takes minutes.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	// maxHeaderBytes bounds the request line and headers: a bearer token
	// and a cookie or two fit with room to spare, and Go's 1 MiB default
	// lets every connection pin far more memory than any client needs.
	maxHeaderBytes = 16 << 10
)

// Server is the Dashtam HTTP server; build it with New, run it with Serve.
type Server struct {
	echo           *echo.Echo
	log            *slog.Logger
	metrics        *httpMetrics
	rateLimits     *rateLimits // nil when rate limiting is off
	readiness      Readiness
	readyPolicy    readinessPolicy
	providers      providerCatalog
	identity       identity.Service
	syncs          SyncService
	syncReader     SyncReader
	audit          audit.Service
	connections    connections.Service // nil: not configured
	connectionList ConnectionLister    // nil: not configured
	webhooks       webhooks.Service    // nil: not configured
	feed           ChangeFeed          // nil: not configured
	streams        EventStreams        // nil: not configured
	heartbeat      time.Duration
	// closing is closed when graceful shutdown begins, ending event
	// streams, which would otherwise hold it for the whole grace period.
	closing         chan struct{}
	closingOnce     sync.Once
	permissions     operationPermissions
	clientAddr      func(*http.Request) string
	now             func() time.Time
	routes          map[string]struct{}
	shutdownTimeout time.Duration

	// onShutdown, set only by tests, runs when graceful shutdown begins.
	onShutdown func()

	// The data routes (data.go) and read-your-writes (positions.go).
	data        FinancialData  // nil: not configured
	positions   PositionWaiter // nil: not configured
	projections operationProjections
	cursors     cursorCodec
}

// New builds a Server from opts, refusing missing dependencies and an
// invalid OpenAPI document or provider catalog.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	doc, specJSON, err := loadSpec(context.Background())
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return newServer(opts, doc, specJSON)
}

// newServer builds a Server serving doc; New passes the embedded
// document, tests one they changed.
func newServer(opts Options, doc *openapi3.T, specJSON []byte) (*Server, error) {
	permissions, err := newOperationPermissions(doc)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	// Every operation's rate limits are declared beside its permission and
	// checked now, whether or not a limiter enforces them, so a document
	// that would ship a public route unlimited never starts.
	rateDecl, err := newRateDeclarations(doc, permissions)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	mountLimits, err := mountRateLimits(opts.Mounts)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	ownLimits := ownRouteRateLimits{}
	for _, m := range []ownRouteRateLimits{pageRateLimits, docsRateLimits, callbackRateLimits, mountLimits} {
		for route, p := range m {
			ownLimits[route] = p
		}
	}
	providers, err := newProviderCatalog(opts.Providers)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	metrics, err := newHTTPMetrics(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	// One extractor finds the client address for Echo (access logs), the
	// rate limits and event metadata, so all three agree on who asked.
	clientAddr := clientAddrFunc(opts.TrustedProxies)
	rateLimits, err := newRateLimits(opts.RateLimit, rateDecl, ownLimits, clientAddr, opts.Registry, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{
		echo:            echo.New(),
		log:             opts.Logger,
		metrics:         metrics,
		rateLimits:      rateLimits,
		readiness:       opts.Readiness,
		readyPolicy:     readinessPolicy{maxEvents: opts.MaxProjectionLag, maxAge: opts.MaxCheckpointAge},
		providers:       providers,
		identity:        opts.Identity,
		syncs:           opts.Syncs,
		syncReader:      opts.SyncReader,
		audit:           opts.Audit,
		connections:     opts.Connections,
		connectionList:  opts.ConnectionList,
		webhooks:        opts.Webhooks,
		feed:            opts.Feed,
		streams:         opts.Streams,
		heartbeat:       opts.Heartbeat,
		closing:         make(chan struct{}),
		permissions:     permissions,
		clientAddr:      clientAddr,
		now:             opts.Now,
		shutdownTimeout: opts.ShutdownTimeout,
	}

	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Trust the socket, not X-Forwarded-For, until a proxy is configured:
	// logged client addresses must not be forgeable.
	e.IPExtractor = echo.IPExtractor(clientAddr)
	// Pre-routing middleware wraps everything, 404 and 405 included; the
	// order is outermost first.
	e.Pre(traceRequests, s.observeRequests, s.recoverPanics, noStoreAPI, noSniff)
	// Authentication, rate limits and permissions run after routing (all
	// are per route) and before the body is read or validated, so refused
	// requests cost little and malformed ones still spend tokens.
	// Authentication goes first: per-user limits key on the caller it sets,
	// and an anonymous caller of a protected route must not learn more than
	// "401". Permissions come after the limits, so refusals (each one
	// recorded as an event) are rate limited like any other request.
	e.Use(s.authenticate)
	if s.rateLimits != nil {
		e.Use(s.rateLimits.limitRates)
	}
	e.Use(s.requirePermission)
	e.Use(limitBodies(opts.MaxBodyBytes), validateRequests(newSpecRoutes(doc)))
	if err := s.useReadModels(opts, doc); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	e.Use(s.readYourWrites)

	api.RegisterHandlers(e, api.NewStrictHandler(&strictAPI{s: s}, nil))
	e.GET("/metrics", echo.WrapHandler(metricsHandler(opts.Registry)))
	e.GET("/api/v1/events", s.streamEvents)
	if err := registerDocs(e, specJSON); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.registerPages(e)
	s.registerCallbackPage(e)
	registerMounts(e, opts.Mounts)
	ownRoutes := e.Routes()
	if opts.Routes != nil {
		opts.Routes(e)
	}
	if err := checkRoutes(ownRoutes, e.Routes(), rateDecl, ownLimits); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}

	s.routes = make(map[string]struct{})
	for _, r := range e.Routes() {
		s.routes[r.Path] = struct{}{}
	}
	return s, nil
}

// Handler returns the server's routes as an http.Handler, for tests and
// for embedding behind another server.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve answers requests on ln until ctx is cancelled, then stops accepting
// connections and waits up to the shutdown timeout for in-flight requests.
// It returns nil after a clean shutdown; ln is closed either way.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { s.closingOnce.Do(func() { close(s.closing) }) })
	if s.onShutdown != nil {
		srv.RegisterOnShutdown(s.onShutdown)
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	s.log.InfoContext(ctx, "http server shutting down", "addr", ln.Addr().String(), "timeout", s.shutdownTimeout.String())
	// The caller's context is already cancelled; the grace period needs its own.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}
