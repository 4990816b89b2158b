package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/dashtam/dashtam/adapters/authtoken"
	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/mail"
	"github.com/dashtam/dashtam/adapters/password"
	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/audit"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/commands/identity"
	policy "github.com/dashtam/dashtam/commands/ratelimit"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web"
)

func init() { subcommands = append(subcommands, newServeCommand) }

func newServeCommand(o *globalOptions) *cobra.Command {
	var httpAddr, role string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API, the projectors and the background workers; applies pending migrations first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			getenv := osGetenv
			if httpAddr != "" {
				getenv = overrideEnv(getenv, "DASHTAM_HTTP_ADDR", httpAddr)
			}
			if role != "" {
				getenv = overrideEnv(getenv, "DASHTAM_ROLE", role)
			}
			app, err := openServer(cmd.Context(), o, getenv, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer app.Close()
			return app.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http-addr", "", "listen address ($DASHTAM_HTTP_ADDR, default 127.0.0.1:8080)")
	cmd.Flags().StringVar(&role, "role", "", "what to run: api (HTTP and projectors), worker (background jobs) or all ($DASHTAM_ROLE, default all)")
	return cmd
}

// overrideEnv returns getenv with name answering value, so flags mirror variables.
func overrideEnv(getenv func(string) string, name, value string) func(string) string {
	return func(k string) string {
		if k == name {
			return value
		}
		return getenv(k)
	}
}

// server is the running Dashtam process: database, projectors and HTTP API.
// End-to-end tests open one on 127.0.0.1:0 exactly as `dashtam serve` does.
type server struct {
	cfg    serveConfig
	logger *slog.Logger
	pool   *pgxpool.Pool // the application role
	// reads serves the data API's reads: the application role over a few
	// connections of its own (readsPool).
	reads    *pgxpool.Pool
	owner    *pgxpool.Pool // the owner role, for projection DDL; pool when one role does both
	store    *eventstore.Store
	manager  *projections.Manager
	notifier *projections.Notifier
	limiter  *ratelimit.Limiter
	identity *identity.Handler
	// jobs enqueues background work, and runs it in the worker role.
	jobs        *jobs.Client
	connections *connections.Handler
	syncs       *syncs.Handler
	fanout      fanoutParts
	http        *web.Server
	ln          net.Listener
	// keys seals personal data and destroys it at erasures.
	keys *personaldata.Keys
	// closeKeys closes the keystore's own connections (personalStore).
	closeKeys func()
	// checkpoints signs audit checkpoints every checkpointEvery.
	checkpoints     *eventstore.Checkpointer
	checkpointEvery time.Duration
}

// openServer validates configuration, connects, migrates, prepares the
// projectors and binds the listener; nothing is served until Run.
func openServer(ctx context.Context, o *globalOptions, getenv func(string) string, logw io.Writer) (*server, error) {
	dataDir, err := o.absDataDir()
	if err != nil {
		return nil, err
	}
	cfg, err := loadServeConfig(getenv, dataDir)
	if err != nil {
		return nil, err
	}
	auditCfg, err := loadAuditConfig(getenv, dataDir, true)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewJSONHandler(logw, nil))
	pool, owner, _, err := openMigratedStore(ctx, o)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, logger: logger, pool: pool, owner: owner}
	if s.store, s.keys, s.closeKeys, err = personalStore(pool, cfg.Keyring); err != nil {
		s.Close()
		return nil, err
	}
	if s.reads, err = readsPool(pool); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.warnIfLogRewritable(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.open(ctx, cfg, auditCfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open prepares the projectors, the rate limiter and the HTTP server over
// the migrated store openServer opened.
func (s *server) open(ctx context.Context, cfg serveConfig, auditCfg auditConfig) error {
	var err error
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.manager, err = projections.NewManager(s.store, projections.All(), projections.WithOwnerPool(s.owner),
		projections.WithLogger(s.logger), projections.WithRegisterer(reg)); err != nil {
		return err
	}
	if err := s.manager.Ensure(ctx); err != nil {
		return fmt.Errorf("prepare projections: %w", err)
	}
	if s.notifier, err = projections.NewNotifier(s.store, 0, s.logger); err != nil {
		return err
	}
	if s.limiter, err = ratelimit.New(s.pool); err != nil {
		return err
	}
	// Cheap public reads are limited in memory: a shared bucket would cost
	// a database round trip per probe.
	local, err := ratelimit.NewMemory(ratelimit.DefaultMemoryKeys)
	if err != nil {
		return err
	}
	workers := jobs.NewWorkers()
	if s.jobs, err = jobs.New(s.pool, workers, jobs.Config{Work: cfg.Works(), Logger: s.logger,
		Periodic: []jobs.Periodic{syncSchedule(cfg)}}); err != nil {
		return err
	}
	// Bound before the providers are built: the sandbox's adapter calls the
	// institution this server mounts on the address it listens on.
	if s.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	providers, err := newProviders(cfg, s.ln.Addr().String(), time.Now)
	if err != nil {
		return err
	}
	// Connections before identity: an erasure disconnects the user's
	// connections (identity.Deps.Connections).
	if s.connections, err = newConnections(cfg, s.store, s.pool, providers.registry, s.jobs, time.Now, s.logger); err != nil {
		return err
	}
	connectionJobs(workers, s.connections)
	if s.syncs, err = newSyncs(cfg, s.store, s.pool, s.connections, s.jobs, time.Now, s.logger); err != nil {
		return err
	}
	syncJobs(workers, s.syncs)
	if s.identity, err = newIdentityService(cfg, s.store, s.pool, s.jobs, s.logger, s.keys, s.connections); err != nil {
		return err
	}
	identityJobs(workers, s.identity)
	registerSessionCacheMetrics(reg, s.identity)
	dir, err := eventstore.OpenCheckpointDir(auditCfg.Dir)
	if err != nil {
		return fmt.Errorf("DASHTAM_AUDIT_CHECKPOINT_DIR: %w", err)
	}
	if s.checkpoints, err = eventstore.NewCheckpointer(s.store, auditCfg.Signer, dir); err != nil {
		return err
	}
	s.checkpointEvery = auditCfg.Interval
	aggs, err := commands.DescribedAggregates(s.store)
	if err != nil {
		return err
	}
	auditSvc, err := audit.NewHandler(audit.Deps{Store: s.store, Pool: s.pool, Aggregates: aggs, Now: time.Now})
	if err != nil {
		return err
	}
	data, err := projections.NewFinancialReader(s.reads)
	if err != nil {
		return err
	}
	positions, err := projections.NewPositions(s.pool, s.manager.Applied(), 0)
	if err != nil {
		return err
	}
	if s.fanout, err = s.openFanout(ctx, cfg, workers); err != nil {
		return err
	}
	catalog := make([]web.ProviderInfo, 0, len(cfg.Providers))
	for _, p := range providers.registry.List() {
		catalog = append(catalog, web.ProviderInfo{Slug: p.Slug, Name: p.Name, AuthType: p.AuthType})
	}
	if s.http, err = web.New(web.Options{
		Logger:         s.logger,
		Registry:       reg,
		Readiness:      readiness{pool: s.pool, manager: s.manager},
		Providers:      catalog,
		Identity:       s.identity,
		Audit:          auditSvc,
		Connections:    s.connections,
		Syncs:          s.syncs,
		SyncReader:     projections.SyncReader{Pool: s.reads},
		ConnectionList: projections.ConnectionReader{Pool: s.reads},
		Webhooks:       s.fanout.webhooks,
		Feed:           s.fanout.feed,
		Streams:        web.HubStreams{Hub: s.fanout.hub},
		Mounts:         providers.mounts,
		TrustedProxies: cfg.TrustedProxies,
		RateLimit:      web.RateLimitOptions{Limiter: s.limiter, Local: local},
		Data:           data,
		Positions:      positions,
		// Derived from the JWT secret like the sandbox's keys: every
		// instance accepts the others' cursors, and rotating it voids them.
		CursorKey: deriveKey(cfg.JWTSecret, "dashtam list cursor key v1"),
	}); err != nil {
		return err
	}
	s.logger.Info("dashtam listening", "addr", s.ln.Addr().String(), "public_url", cfg.PublicURL,
		"providers", cfg.Providers, "role", cfg.Role)
	return nil
}

// warnIfLogRewritable logs one warning when the application role could
// rewrite the event log, which is what happens when DATABASE_MIGRATE_URL is
// unset and DATABASE_URL's role both migrates (so owns events) and serves.
func (s *server) warnIfLogRewritable(ctx context.Context) error {
	can, err := s.store.CanRewriteLog(ctx)
	if err != nil {
		return err
	}
	if can {
		s.logger.Warn("the application role can rewrite the event log: set DATABASE_MIGRATE_URL to the owner role "+
			"and DATABASE_URL to a role that owns nothing (README, production set-up)",
			"role", s.pool.Config().ConnConfig.User, "database_migrate_url_set", s.owner != s.pool)
	}
	return nil
}

// newIdentityService wires the identity use cases to their adapters; serve
// and `users create` share it so both hash, sign and mail alike.
//
// keys erases personal data; conns, when not nil, lets an erasure
// disconnect the user's connections (`users create` erases nobody).
func newIdentityService(cfg serveConfig, store *eventstore.Store, pool *pgxpool.Pool, j commands.Jobs, logger *slog.Logger,
	keys commands.PersonalDataKeys, conns identity.Connections) (*identity.Handler, error) {
	hasher, err := password.New(password.OWASP)
	if err != nil {
		return nil, fmt.Errorf("password hasher: %w", err)
	}
	// The issuer is the public URL, so a token of another deployment that
	// happens to share the secret is still refused.
	access, err := authtoken.NewJWT(authtoken.JWTConfig{Secret: cfg.JWTSecret, Issuer: cfg.PublicURL})
	if err != nil {
		return nil, fmt.Errorf("DASHTAM_JWT_SECRET: %w", err)
	}
	mailer, err := mail.New(cfg.MailURL)
	if err != nil {
		return nil, fmt.Errorf("DASHTAM_MAIL_URL: %w", err)
	}
	h, err := identity.NewHandler(identity.Deps{
		Store:     store,
		Pool:      pool,
		Hasher:    hasher,
		Policy:    password.Policy{},
		Access:    access,
		Secrets:   authtoken.Opaque{},
		Mailer:    mailer,
		Jobs:      j,
		Vault:     cfg.Keyring,
		Now:       time.Now,
		PublicURL: cfg.PublicURL,
		AccessTTL: authtoken.DefaultTTL,
		// Zero unless configured: see DASHTAM_TOKEN_ROTATION_GRACE in the README.
		RotationGrace: cfg.RotationGrace,
		Logger:        logger,
		NameKey:       deriveKey(cfg.JWTSecret, "dashtam login-name digest v1"),
		Keys:          keys,
		Connections:   conns,
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// deriveKey derives a key for one purpose from a configured secret
// (HMAC-SHA-256 of the purpose), so one secret serves several uses without
// one use's output revealing another's key.
func deriveKey(secret []byte, purpose string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// Addr is the bound listen address (useful when configured with port 0).
func (s *server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is cancelled, then finishes in-flight requests, stops
// the projectors between batches and returns nil; it returns the first
// component's error if one fails.
func (s *server) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if s.cfg.Serves() {
		g.Go(func() error { return s.http.Serve(ctx, s.ln) })
		g.Go(func() error { return s.manager.Start(ctx) })
		g.Go(func() error { return s.notifier.Run(ctx) })
		g.Go(func() error { return s.identity.RunSessionCache(ctx) })
		for _, run := range s.fanout.runners() {
			g.Go(func() error { return run(ctx) })
		}
	} else {
		// A worker answers no HTTP: its listener only reserved the address.
		_ = s.ln.Close()
	}
	if s.cfg.Works() {
		g.Go(func() error { return s.runJobs(ctx) })
	}
	g.Go(func() error { s.sweepRateLimits(ctx); return nil })
	g.Go(func() error { s.sweepIdentity(ctx); return nil })
	g.Go(func() error {
		s.sweepEvery(ctx, identitySweepPeriod, "oauth states", s.connections.Sweep)
		return nil
	})
	g.Go(func() error {
		tick := time.NewTicker(s.checkpointEvery)
		defer tick.Stop()
		checkpointLoop(ctx, s.checkpoints, tick.C, s.logger)
		return nil
	})
	err := g.Wait()
	s.logger.Info("dashtam stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// jobsStopTimeout bounds how long a stopping worker waits for running jobs
// before cancelling them; river hands a cancelled job to another instance.
const jobsStopTimeout = 20 * time.Second

// runJobs works background jobs until ctx ends, then stops fetching and
// lets running jobs finish (or cancels them after jobsStopTimeout).
func (s *server) runJobs(ctx context.Context) error {
	if err := s.jobs.Start(ctx); err != nil {
		return fmt.Errorf("start background workers: %w", err)
	}
	<-ctx.Done()
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobsStopTimeout)
	defer cancel()
	if err := s.jobs.Stop(stop); err != nil {
		s.logger.Warn("background workers stopped uncleanly", "err", err)
	}
	return nil
}

// identitySweepPeriod is how often serve deletes dead identity rows; they
// cost only space, and their retention is counted in days.
const identitySweepPeriod = time.Hour

// rateLimitIdle is how long a rate-limit bucket must be idle to be full
// again, when it answers exactly as a missing bucket does.
func rateLimitIdle() time.Duration {
	var idle time.Duration
	for _, p := range policy.All {
		idle = max(idle, p.FullAfter())
	}
	return idle
}

// sweepRateLimits drops rate-limit buckets that have been idle long enough to
// be full again, so the table stays as small as the set of active clients.
func (s *server) sweepRateLimits(ctx context.Context) {
	idle := rateLimitIdle()
	s.sweepEvery(ctx, idle, "rate-limit buckets", func(ctx context.Context, now time.Time) (int64, error) {
		return s.limiter.Sweep(ctx, now.Add(-idle))
	})
}

// sweepIdentity drops the sessions and secret tokens that can never matter
// again (identity.Handler.Sweep), so those tables do not grow with every login.
func (s *server) sweepIdentity(ctx context.Context) {
	s.sweepEvery(ctx, identitySweepPeriod, "identity sessions and tokens", s.identity.Sweep)
}

// sweepEvery calls sweep at every period until ctx ends, with the tick's
// time. A failure is logged and retried at the next tick: a sweep only
// reclaims space, so it is no reason to stop serving.
func (s *server) sweepEvery(ctx context.Context, period time.Duration, what string, sweep func(context.Context, time.Time) (int64, error)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if n, err := sweep(ctx, now); err != nil && ctx.Err() == nil {
				s.logger.Warn("sweep "+what+" failed", "err", err)
			} else if n > 0 {
				s.logger.Debug("swept "+what, "count", n)
			}
		}
	}
}

// Close releases the database pools.
func (s *server) Close() {
	if s.fanout.closeSink != nil {
		s.fanout.closeSink()
	}
	if s.closeKeys != nil {
		s.closeKeys()
	}
	if s.reads != nil {
		s.reads.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.owner != nil && s.owner != s.pool {
		s.owner.Close()
	}
}

// newEventRegistry is the registry of every event type this binary knows;
// commands.RegisterEvents is the one list of them.
func newEventRegistry() *eventstore.Registry {
	r := eventstore.NewRegistry()
	commands.RegisterEvents(r)
	return r
}

// readyMaxBehind caps the events-behind count of a readiness probe: /ready
// only needs to know whether a projector is further behind than web's
// threshold (web.DefaultMaxProjectionLag), not by how much.
const readyMaxBehind = 10 * web.DefaultMaxProjectionLag

// readiness backs /ready with the database and the projectors' status.
type readiness struct {
	pool    *pgxpool.Pool
	manager *projections.Manager
}

// CheckDatabase pings the database.
func (r readiness) CheckDatabase(ctx context.Context) error { return r.pool.Ping(ctx) }

// ProjectionLags reports how far each projector trails the log.
func (r readiness) ProjectionLags(ctx context.Context) ([]web.ProjectionLag, error) {
	st, err := r.manager.StatusWithin(ctx, readyMaxBehind)
	if err != nil {
		return nil, err
	}
	out := make([]web.ProjectionLag, len(st))
	for i, p := range st {
		out[i] = web.ProjectionLag{Name: p.Name, Events: p.Behind, CheckpointAge: p.CheckpointAge, Parked: p.Parked}
	}
	return out, nil
}

// registerSessionCacheMetrics exposes the session cache's state, so an
// operator sees when every request falls back to the database.
func registerSessionCacheMetrics(reg prometheus.Registerer, h *identity.Handler) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dashtam_session_cache_enabled",
			Help: "1 while session invalidations are heard and the session cache is used, 0 while every check reads the database.",
		}, func() float64 {
			if h.SessionCacheStats().Enabled {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dashtam_session_cache_entries",
			Help: "Sessions whose check is cached.",
		}, func() float64 { return float64(h.SessionCacheStats().Entries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dashtam_session_cache_hits_total",
			Help: "Session checks answered from the cache.",
		}, func() float64 { return float64(h.SessionCacheStats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dashtam_session_cache_misses_total",
			Help: "Session checks that read the database.",
		}, func() float64 { return float64(h.SessionCacheStats().Misses) }),
	)
}
