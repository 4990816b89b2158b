package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashtam/dashtam/commands/audit"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/commands/webhooks"
)

// Defaults applied to zero-valued Options fields.
const (
	// DefaultMaxBodyBytes (1 MiB) fits any JSON command body with room to spare.
	DefaultMaxBodyBytes int64 = 1 << 20
	// DefaultShutdownTimeout matches Kubernetes' default termination grace period.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultMaxProjectionLag is the events a projector may trail before /ready fails.
	DefaultMaxProjectionLag int64 = 1000
	// DefaultMaxCheckpointAge is how long a projector with work may stall before /ready fails.
	DefaultMaxCheckpointAge = 5 * time.Minute
)

// Options configures New; Logger, Registry, Readiness and Identity are required, the
// rest fall back to the defaults above when zero.
type Options struct {
	// Logger receives access logs and server errors; production wiring
	// gives it a JSON handler so logs are machine-readable.
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics, so other
	// packages (projectors) register their metrics on the same registry.
	Registry *prometheus.Registry
	// Readiness backs GET /ready.
	Readiness Readiness
	// Providers is the public catalog served at GET /api/v1/providers.
	Providers []ProviderInfo
	// Identity authenticates bearer tokens and serves the user, session and
	// security-administration routes.
	Identity identity.Service
	// Audit serves the audit routes; nil answers them 503.
	Audit audit.Service
	// Now is the clock Retry-After of a lockout is counted from; nil means
	// time.Now. Tests pin it.
	Now func() time.Time

	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes int64
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// after its context is cancelled.
	ShutdownTimeout time.Duration
	// MaxProjectionLag is how many events a projector may trail the log
	// before /ready answers 503.
	MaxProjectionLag int64
	// MaxCheckpointAge is how long a projector with waiting events may go
	// without moving its checkpoint before /ready answers 503.
	MaxCheckpointAge time.Duration

	// TrustedProxies are the reverse proxies whose X-Forwarded-For names the
	// client, for rate limits, access logs and event metadata alike. Empty
	// means the socket's peer is the client: anyone can send
	// X-Forwarded-For, and trusting it by default would let an attacker pick
	// a fresh IP, and so a fresh login bucket, for every attempt.
	TrustedProxies []netip.Prefix

	// RateLimit configures per-route rate limits; without a Limiter no
	// request is limited.
	RateLimit RateLimitOptions

	// Data reads the financial read model behind the data routes
	// (projections.FinancialReader); nil makes them answer 503.
	Data FinancialData
	// Positions makes reads that name min_position wait for their read
	// models (projections.Positions); nil answers such reads 503.
	Positions PositionWaiter
	// CursorKey keys the MAC that binds list cursors to their query (at
	// least 32 bytes); empty draws a random key, so cursors then neither
	// survive a restart nor move between instances.
	CursorKey []byte

	// Routes, when set, adds routes outside the OpenAPI document (HTML
	// pages, test-only handlers); they get the same trace ids, logs,
	// metrics, body limit and problem responses as every other route.
	Routes func(e *echo.Echo)

	// Connections serves the provider-connection routes and the OAuth
	// callback page; nil makes them answer 503 (connections are not
	// configured on this server): the routes of the document are always
	// served.
	Connections connections.Service
	// ConnectionList reads the connections read model behind GET
	// /api/v1/connections (projections.ConnectionReader); nil makes that
	// route answer 503.
	ConnectionList ConnectionLister

	// Syncs starts syncs and SyncReader reads them (the sync routes);
	// either nil leaves the routes answering 503.
	Syncs      SyncService
	SyncReader SyncReader
	// Webhooks serves the webhook endpoint routes; nil makes them answer 503.
	Webhooks webhooks.Service
	// Feed answers GET /api/v1/transactions/sync (fanout.Feed); nil makes
	// it answer 503.
	Feed ChangeFeed
	// Streams serves GET /api/v1/events (fanout.Hub); nil makes it answer 503.
	Streams EventStreams
	// Heartbeat is how often an idle event stream gets a comment line;
	// zero means DefaultHeartbeat.
	Heartbeat time.Duration

	// Mounts are handlers served under a path prefix, outside the OpenAPI
	// document (the sandbox institution at /sandbox), each charged a
	// declared rate-limit policy per client IP (see Mount, mounts.go).
	Mounts []Mount
}

// withDefaults checks o and fills in defaults, naming the first bad field.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Logger == nil:
		return o, errors.New("web: Options.Logger is required")
	case o.Registry == nil:
		return o, errors.New("web: Options.Registry is required")
	case o.Readiness == nil:
		return o, errors.New("web: Options.Readiness is required")
	case o.Identity == nil:
		return o, errors.New("web: Options.Identity is required")
	case o.MaxBodyBytes < 0:
		return o, fmt.Errorf("web: Options.MaxBodyBytes is negative (%d)", o.MaxBodyBytes)
	case o.ShutdownTimeout < 0:
		return o, fmt.Errorf("web: Options.ShutdownTimeout is negative (%s)", o.ShutdownTimeout)
	case o.MaxProjectionLag < 0:
		return o, fmt.Errorf("web: Options.MaxProjectionLag is negative (%d)", o.MaxProjectionLag)
	case o.MaxCheckpointAge < 0:
		return o, fmt.Errorf("web: Options.MaxCheckpointAge is negative (%s)", o.MaxCheckpointAge)
	case len(o.CursorKey) > 0 && len(o.CursorKey) < 32:
		return o, fmt.Errorf("web: Options.CursorKey has %d bytes, want at least 32", len(o.CursorKey))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.MaxProjectionLag == 0 {
		o.MaxProjectionLag = DefaultMaxProjectionLag
	}
	if o.MaxCheckpointAge == 0 {
		o.MaxCheckpointAge = DefaultMaxCheckpointAge
	}
	return o, nil
}
