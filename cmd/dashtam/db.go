package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations"
	"github.com/dashtam/dashtam/projections"
)

// connectTimeout bounds connecting and the first ping, so an unreachable or
// firewalled database fails an operator's command in seconds instead of
// hanging on the kernel's TCP timeout.
const connectTimeout = 5 * time.Second

// connect opens a pool on the configured database and pings it, so a wrong URL
// fails here with one readable line rather than at the first query. The error
// names where it tried to connect and why it failed, never the password: the
// message ends up in terminals, CI logs and tickets.
func connect(ctx context.Context, o *globalOptions) (*pgxpool.Pool, error) {
	dbURL, err := o.resolveDatabaseURL()
	if err != nil {
		return nil, err
	}
	return connectURL(ctx, dbURL, appConns(dbURL))
}

// defaultAppConns sizes the application's pool when the URL does not
// (pool_max_conns). pgxpool's own default is the number of CPUs, at least
// 4: on two cores four connections for serve's projectors, relay, river
// workers and requests together, where a registration once waited for a
// connection behind them all.
const defaultAppConns = 32

// appConns is the pool size for dbURL: 0 (pgxpool's reading of the URL)
// when it names pool_max_conns, defaultAppConns otherwise.
func appConns(dbURL string) int32 {
	if strings.Contains(dbURL, "pool_max_conns=") {
		return 0
	}
	return defaultAppConns
}

// connectOwner is connect for the owner role (resolveMigrateURL); ownerConns
// caps its pool, since the owner only migrates and runs rare DDL.
func connectOwner(ctx context.Context, o *globalOptions) (*pgxpool.Pool, error) {
	dbURL, err := o.resolveMigrateURL()
	if err != nil {
		return nil, err
	}
	return connectURL(ctx, dbURL, ownerConns)
}

// ownerConns is the size of the owner's pool.
const ownerConns = 2

// connectURL is connect for a given URL; maxConns > 0 caps the pool.
func connectURL(ctx context.Context, dbURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL: %s", redact(parseCause(err), passwordOf(dbURL)))
	}
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	configurePool(cfg)
	where := describeTarget(cfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot reach database at %s: %s", where, redact(connectCause(err), cfg.ConnConfig.Password))
	}
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		if ctx.Err() != nil {
			// The operator interrupted us; that is not the database's fault.
			return nil, fmt.Errorf("connect to database at %s: %w", where, ctx.Err())
		}
		return nil, fmt.Errorf("cannot reach database at %s: %s", where, redact(connectCause(err), cfg.ConnConfig.Password))
	}
	return pool, nil
}

// configurePool makes every connection of a pool built from cfg send
// uuid.UUID as the 16 bytes it is. Left to itself pgx treats uuid.UUID as
// a driver.Valuer, printing every id (and every element of an id array)
// as text for PostgreSQL to parse back: a tenth of a large sync's Go time
// (docs/benchmarks.md).
func configurePool(cfg *pgxpool.Config) {
	prev := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if prev != nil {
			if err := prev(ctx, c); err != nil {
				return err
			}
		}
		// Only sending: scanning keeps uuid.UUID's own Scan, which takes a
		// NULL without an error where pgx-google-uuid's would fail.
		m := c.TypeMap()
		m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{pgxuuid.TryWrapUUIDEncodePlan}, m.TryWrapEncodePlanFuncs...)
		return nil
	}
}

// openStore connects and returns an event store with an empty registry: the
// audit commands work on raw records and must not depend on which event types
// this binary happens to know. close releases the pool.
func openStore(ctx context.Context, o *globalOptions) (*eventstore.Store, func(), error) {
	pool, err := connect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	store, err := eventstore.New(pool, eventstore.NewRegistry())
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store, pool.Close, nil
}

// openMigratedStore connects as the owner, brings the schema up to date
// (migrateUp) and returns an event store that decodes every event type this
// binary knows over a pool of the application role: what serve and the
// commands that act as it (users create) start from. The owner's pool stays
// open for the projectors' DDL; closing both pools is the caller's (closing
// owner when it is pool, for one role doing both, is harmless).
func openMigratedStore(ctx context.Context, o *globalOptions) (pool, owner *pgxpool.Pool, store *eventstore.Store, err error) {
	appURL, err := o.resolveDatabaseURL()
	if err != nil {
		return nil, nil, nil, err
	}
	ownerURL, err := o.resolveMigrateURL()
	if err != nil {
		return nil, nil, nil, err
	}
	appRole, err := migrations.RoleOf(appURL)
	if err != nil {
		return nil, nil, nil, err
	}
	if owner, err = connectURL(ctx, ownerURL, ownerConns); err != nil {
		return nil, nil, nil, err
	}
	if appURL == ownerURL {
		pool = owner
	} else if pool, err = connectURL(ctx, appURL, appConns(appURL)); err != nil {
		owner.Close()
		return nil, nil, nil, err
	}
	closeBoth := func() {
		if pool != owner {
			pool.Close()
		}
		owner.Close()
	}
	if pool != owner {
		if err := sameDatabase(ctx, pool, owner); err != nil {
			closeBoth()
			return nil, nil, nil, err
		}
	}
	if err := migrateUp(ctx, owner, appRole); err != nil {
		closeBoth()
		return nil, nil, nil, err
	}
	if store, err = eventstore.New(pool, newEventRegistry()); err != nil {
		closeBoth()
		return nil, nil, nil, err
	}
	return pool, owner, store, nil
}

// sameDatabase refuses a pair of URLs that reach different databases: the
// owner would migrate one while the application used the other. A cluster is
// known by its system identifier; where a managed service hides it, only the
// database names are compared.
func sameDatabase(ctx context.Context, app, owner *pgxpool.Pool) error {
	identify := func(p *pgxpool.Pool) (db, cluster string, err error) {
		if err = p.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			return "", "", err
		}
		if p.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&cluster) != nil {
			cluster = ""
		}
		return db, cluster, nil
	}
	appDB, appCluster, err := identify(app)
	if err != nil {
		return fmt.Errorf("identify the database of DATABASE_URL: %w", err)
	}
	ownerDB, ownerCluster, err := identify(owner)
	if err != nil {
		return fmt.Errorf("identify the database of DATABASE_MIGRATE_URL: %w", err)
	}
	if appDB != ownerDB || (appCluster != "" && ownerCluster != "" && appCluster != ownerCluster) {
		return fmt.Errorf("DATABASE_URL and DATABASE_MIGRATE_URL reach different databases (%s and %s, clusters %s and %s): they must name the same one",
			appDB, ownerDB, orDefault(appCluster, "unknown"), orDefault(ownerCluster, "unknown"))
	}
	return nil
}

// migrateUp applies pending migrations on owner's pool, grants appRole the
// application's privileges (migrations.GrantApp) and creates every
// projector's missing tables: all of it as the owner, since the application
// role owns nothing and may create nothing.
func migrateUp(ctx context.Context, owner *pgxpool.Pool, appRole string) error {
	err := migrations.Apply(ctx, owner, appRole)
	if err == nil {
		err = projections.Ensure(ctx, owner, projections.All()...)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Errorf("migrate: %w (migrations and projection tables need the owner role: set DATABASE_MIGRATE_URL or --database-migrate-url)", err)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// readsPerCore and minReads size the data API's pool (readsPool).
const (
	readsPerCore = 2
	minReads     = 4
)

// readsPool opens the connections the data API reads over: the
// application role's settings, readsPerCore connections a core and at
// least minReads (never more than pool's). A page is a fraction of a
// millisecond of PostgreSQL's CPU; with a connection for each of 32
// concurrent clients, 32 backends shared two cores and the slowest pages
// waited behind all the others (3,600 pages/s, p99 27 ms). With a few
// connections the requests queue in the server, first come first served,
// and PostgreSQL spends less a page: 4 connections on two cores served
// 4,800-5,000 pages/s at p99 16 ms, 8 served 3,500-4,400 at p99 21-24 ms
// (docs/benchmarks.md). A pool of its own also keeps a burst of reads
// from taking every connection the projectors and jobs need. Reads are
// short (a page, a chunk of an export), so few connections do not hold
// one request behind another's slow work.
func readsPool(pool *pgxpool.Pool) (*pgxpool.Pool, error) {
	cfg := pool.Config().Copy()
	cfg.MaxConns = min(cfg.MaxConns, int32(max(minReads, readsPerCore*runtime.NumCPU())))
	cfg.MinConns = 0
	cfg.ConnConfig.RuntimeParams["application_name"] = "dashtam reads"
	reads, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("data API connections: %w", err)
	}
	return reads, nil
}

// personalStore returns an event store over pool that seals the personal
// data of events under per-user keys wrapped by the master keyring
// (DASHTAM_ENCRYPTION_KEY), the keystore, which erasures destroy keys in
// (docs/audit.md), and a func that closes the keystore's connections.
//
// The keystore reads and creates keys over connections of its own: Seal
// runs inside the transactions that append, and a key read from pool
// itself could wait forever once every connection of pool is held by a
// transaction waiting for a key (serve hung so under load, a registration
// waiting for a connection beside transactions left idle).
func personalStore(pool *pgxpool.Pool, ring *vault.Keyring) (*eventstore.Store, *personaldata.Keys, func(), error) {
	cfg := pool.Config().Copy()
	cfg.MaxConns, cfg.MinConns = keystoreConns, 0
	cfg.ConnConfig.RuntimeParams["application_name"] = "dashtam keystore"
	keysPool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("keystore connections: %w", err)
	}
	keys, err := personaldata.New(keysPool, ring, time.Now)
	if err != nil {
		keysPool.Close()
		return nil, nil, nil, err
	}
	store, err := eventstore.New(pool, newEventRegistry(), eventstore.WithPersonalData(keys))
	if err != nil {
		keysPool.Close()
		return nil, nil, nil, err
	}
	return store, keys, keysPool.Close, nil
}

// keystoreConns bounds the keystore's own connections: its statements are
// single-row reads and inserts, and a cached key needs none.
const keystoreConns = 4

// keyedStore returns an event store over pool that opens personal data
// with the master keyring when one is configured (DASHTAM_ENCRYPTION_KEY,
// or the data dir's encryption.key), and keyed true; without one, a store
// that leaves it sealed, as stored, and keyed false.
func keyedStore(opts *globalOptions, pool *pgxpool.Pool) (store *eventstore.Store, keyed bool, err error) {
	dataDir, err := opts.absDataDir()
	if err != nil {
		return nil, false, err
	}
	raw, from, err := secretSetting(osGetenv, "DASHTAM_ENCRYPTION_KEY", dataDir, "encryption.key")
	if err != nil {
		return nil, false, err
	}
	if raw == "" {
		store, err = eventstore.New(pool, newEventRegistry())
		return store, false, err
	}
	ring, err := vault.Parse(raw)
	if err != nil {
		return nil, false, fmt.Errorf("DASHTAM_ENCRYPTION_KEY%s is malformed: %v", from, err)
	}
	// Opening only: no transaction of this store waits for a key while it
	// holds a connection, so the keystore may share pool.
	keys, err := personaldata.New(pool, ring, time.Now)
	if err != nil {
		return nil, false, err
	}
	store, err = eventstore.New(pool, newEventRegistry(), eventstore.WithPersonalData(keys))
	return store, err == nil, err
}

// describeTarget names where cfg connects: host:port, or the socket path for a
// Unix-domain socket, plus any fallback hosts of a multi-host URL.
func describeTarget(cfg pgconn.Config) string {
	targets := []string{hostPort(cfg.Host, cfg.Port)}
	for _, fb := range cfg.Fallbacks {
		t := hostPort(fb.Host, fb.Port)
		if !containsString(targets, t) {
			targets = append(targets, t)
		}
	}
	return strings.Join(targets, ", ")
}

func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return "socket " + filepath.Join(host, ".s.PGSQL."+strconv.Itoa(int(port)))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// connectCause reduces a connection failure to its root cause in a few words.
// pgconn's own message lists the user, the database and one line per attempted
// address (TLS and plain for sslmode=prefer), which is several lines of noise
// for "connection refused".
func connectCause(err error) string {
	var pgErr *pgconn.PgError
	var dnsErr *net.DNSError
	var errno syscall.Errno
	var opErr *net.OpError
	switch {
	case errors.As(err, &pgErr):
		// The server answered: wrong password, unknown database, too many
		// connections. Its message says which.
		return pgErr.Message
	case errors.As(err, &dnsErr):
		return "cannot resolve host " + dnsErr.Name + ": " + dnsErr.Err
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		return "no answer within " + connectTimeout.String()
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &opErr):
		return opErr.Err.Error()
	}
	// Unknown shape: keep only the last line, which is the innermost cause.
	msg := strings.TrimSpace(err.Error())
	if i := strings.LastIndex(msg, "\n"); i >= 0 {
		msg = strings.TrimSpace(msg[i+1:])
	}
	return msg
}

// parseCause explains why a connection string did not parse without echoing
// it: pgconn redacts passwords only on a best-effort basis, and url.Error
// quotes the whole URL, password included.
func parseCause(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err.Error()
	}
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// The text is "cannot parse `<redacted string>`: <why>"; the last
		// "`: " is at or after the end of the string, so what follows is
		// only the reason.
		msg := pce.Error()
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			return msg[i+3:]
		}
	}
	return "malformed connection string (want postgres://user:password@host:port/database)"
}

// passwordOf extracts the password of a URL or keyword/value connection
// string, best effort, so that redact can remove it from messages.
func passwordOf(conn string) string {
	if u, err := url.Parse(conn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			return pw
		}
	}
	for _, field := range strings.Fields(conn) {
		if v, ok := strings.CutPrefix(field, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// redact removes secret from msg and flattens it to one line. The causes above
// are built not to contain the password; this is the second line of defence.
func redact(msg, secret string) string {
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
	}
	return strings.Join(strings.Fields(msg), " ")
}
