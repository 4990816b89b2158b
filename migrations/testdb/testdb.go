// Package testdb gives each test its own migrated PostgreSQL database in a few
// milliseconds, so tests below the web layer run against the real schema in
// parallel without seeing each other's rows.
//
// The first call in a test binary builds a template database named after a
// hash of the migration files and the two roles (once per schema, shared by
// every package's test binary through an advisory lock); each test then
// clones it with CREATE DATABASE … TEMPLATE, which copies files instead of
// replaying migrations.
//
// Two roles, as in production (docs/event-store.md): DATABASE_MIGRATE_URL
// names the owner role, which needs CREATEDB here: it creates, migrates, owns
// and drops every test database. DATABASE_URL names the application role,
// which owns nothing and holds only what migrations.GrantApp grants it. New
// and NewURL connect as the application role, so every test meets the
// application's real privileges; NewPair, NewURLs and Owner give the owner
// too, for tests that need DDL (projections.Ensure, tampering with the log).
// `make test` sets both variables. With DATABASE_MIGRATE_URL unset,
// DATABASE_URL plays both roles (and needs CREATEDB), and a line on stderr
// says the application role's privileges are not being tested. Dropping a
// test database ends the connections a test leaked, which the owner may do
// to the application role's only as a member of it (the private cluster's
// owner is); elsewhere a leaked connection fails the test's clean-up.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/migrations"
)

// templateLockKey is the advisory lock that serialises template creation across
// the test binaries `go test ./...` runs in parallel; the value is arbitrary
// but fixed, and distinct from the migration lock.
const templateLockKey int64 = 0x64617368_74616d54 // "dashtamT"

// setupTimeout bounds template creation and each clone, so a wedged database
// fails the test instead of hanging it until go test's global timeout.
const setupTimeout = 2 * time.Minute

// shared is the per-process state: the owner's pool, both base URLs and the
// template name.
var shared struct {
	once     sync.Once
	err      error
	ownerURL string
	appURL   string
	appRole  string
	admin    *pgxpool.Pool // the owner role, on the database of ownerURL
	template string
	strategy string // " STRATEGY FILE_COPY" on servers that know the option
}

// New returns a pool connected as the application role on a fresh database
// with every migration applied. The pool is closed and the database dropped
// when the test ends.
func New(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return connect(tb, NewURL(tb))
}

// NewURL returns the application role's URL of a fresh database with every
// migration applied, for code under test that opens its own connections.
// The database is dropped when the test ends, closing any connection left open.
func NewURL(tb testing.TB) string {
	tb.Helper()
	appURL, _ := NewURLs(tb)
	return appURL
}

// NewPair returns two pools on one fresh, migrated database: app connected as
// the application role, owner as the role that owns every table, for tests
// that create tables or tamper with the log.
func NewPair(tb testing.TB) (app, owner *pgxpool.Pool) {
	tb.Helper()
	appURL, ownerURL := NewURLs(tb)
	return connect(tb, appURL), connect(tb, ownerURL)
}

// NewURLs returns the application role's and the owner's URLs of one fresh,
// migrated database: what DATABASE_URL and DATABASE_MIGRATE_URL are for the
// serve command.
func NewURLs(tb testing.TB) (appURL, ownerURL string) {
	tb.Helper()
	setup(tb)
	return create(tb, "TEMPLATE "+pgx.Identifier{shared.template}.Sanitize()+shared.strategy)
}

// NewEmptyURL returns the owner's URL of a fresh database with no migrations
// applied, for tests of migrating itself (only the owner may migrate). It is
// dropped when the test ends.
func NewEmptyURL(tb testing.TB) string {
	tb.Helper()
	_, ownerURL := NewEmptyURLs(tb)
	return ownerURL
}

// NewEmptyURLs is NewEmptyURL with the application role's URL too, for tests
// that migrate as the owner and then run as the application (serve).
func NewEmptyURLs(tb testing.TB) (appURL, ownerURL string) {
	tb.Helper()
	setup(tb)
	// template0 rather than the default template1: nothing a cluster
	// administrator added to template1 leaks into the test.
	return create(tb, "TEMPLATE template0")
}

// Owner returns a pool connected as the owner role to the database pool is
// connected to (one New gave), closed when the test ends.
func Owner(tb testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	tb.Helper()
	return connect(tb, OwnerURL(tb, pool.Config().ConnConfig.Database))
}

// OwnerURL returns the owner's URL of the test database called name.
func OwnerURL(tb testing.TB, name string) string {
	tb.Helper()
	setup(tb)
	u, err := withDatabase(shared.ownerURL, name)
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	return u
}

// AppRole returns the application role's name (DATABASE_URL's user).
func AppRole(tb testing.TB) string {
	tb.Helper()
	setup(tb)
	return shared.appRole
}

// connect opens a pool on dbURL that is closed when the test ends.
// NewWithConns is New over a pool of up to maxConns connections, for tests
// whose concurrency must reach the database rather than queue in the pool.
func NewWithConns(tb testing.TB, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	return connectWith(tb, NewURL(tb), maxConns)
}

func connect(tb testing.TB, dbURL string) *pgxpool.Pool {
	tb.Helper()
	return connectWith(tb, dbURL, 0)
}

// connectWith connects to dbURL with at most maxConns connections (0:
// pgxpool's default), closing the pool when the test ends.
func connectWith(tb testing.TB, dbURL string, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		tb.Fatalf("testdb: parse test database URL: %v", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("testdb: connect to test database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func setup(tb testing.TB) {
	tb.Helper()
	shared.once.Do(func() { shared.err = initShared() })
	if shared.err != nil {
		tb.Fatalf("testdb: %v", shared.err)
	}
}

func create(tb testing.TB, clause string) (appURL, ownerURL string) {
	tb.Helper()
	name := "dashtam_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := shared.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" "+clause); err != nil {
		tb.Fatalf("testdb: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		waitForDisconnects(ctx, name)
		if err := drop(ctx, name); err != nil {
			tb.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	ownerURL, err := withDatabase(shared.ownerURL, name)
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	appURL, err = withDatabase(shared.appURL, name)
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	return appURL, ownerURL
}

// dropAttempts bounds the plain DROP DATABASE retries of drop; each waits up
// to five seconds for other sessions inside the server.
const dropAttempts = 5

// drop drops the test database. FORCE ends connections the test leaked, so
// one forgotten pool cannot make every later test's cleanup fail. But
// PostgreSQL refuses FORCE to a role that is not a superuser when any process
// in the database is one it may not signal, which an autovacuum worker on a
// freshly cloned database often is (its role is none). Then the sessions it
// may end are ended, and a plain DROP, which asks autovacuum workers to leave
// and waits for them, is tried instead.
func drop(ctx context.Context, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	_, err := shared.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	for attempt := 0; attempt < dropAttempts && (hasCode(err, "42501") || hasCode(err, "55006")); attempt++ {
		if _, err = shared.admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid() AND usesysid IS NOT NULL AND pg_has_role(usesysid, 'USAGE')`, name); err != nil {
			return err
		}
		_, err = shared.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident)
	}
	return err
}

// hasCode reports whether err is a PostgreSQL error with SQLSTATE code.
func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// waitForDisconnects gives the backends of connections the test closed a moment
// to exit. DROP DATABASE finding one still there sleeps in 100 ms steps, which
// would double the cost of every test database; polling here for a few
// milliseconds avoids that. Connections still open after the deadline are left
// to DROP … WITH (FORCE).
func waitForDisconnects(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	for {
		var n int
		err := shared.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&n)
		if err != nil || n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// singleRoleWarning is printed once per test binary when DATABASE_URL plays
// both roles.
const singleRoleWarning = "testdb: DATABASE_MIGRATE_URL is not set, so DATABASE_URL owns the test databases and the application role's privileges are not tested (`make test` sets both)\n"

func initShared() error {
	appURL := os.Getenv("DATABASE_URL")
	if appURL == "" {
		return fmt.Errorf("DATABASE_URL is not set: run `make test` (it starts a throwaway PostgreSQL cluster), or set DATABASE_URL to the application role and DATABASE_MIGRATE_URL to an owner role with CREATEDB")
	}
	ownerURL := os.Getenv("DATABASE_MIGRATE_URL")
	if ownerURL == "" {
		ownerURL = appURL
		fmt.Fprint(os.Stderr, singleRoleWarning)
	}
	appRole, err := migrations.RoleOf(appURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	ownerRole, err := migrations.RoleOf(ownerURL)
	if err != nil {
		return fmt.Errorf("DATABASE_MIGRATE_URL: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(ownerURL)
	if err != nil {
		return fmt.Errorf("parse DATABASE_MIGRATE_URL: %w", err)
	}
	cfg.MaxConns = 4 // CREATE/DROP DATABASE are serialised by the server anyway
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_MIGRATE_URL: %w", err)
	}
	name, err := templateName(migrations.FS, ownerRole, appRole)
	if err != nil {
		admin.Close()
		return err
	}
	if err := ensureTemplate(ctx, admin, ownerURL, appRole, name); err != nil {
		admin.Close()
		return err
	}
	// PostgreSQL 15 made WAL_LOG the default clone strategy; it writes the
	// whole template through the WAL and is about five times slower for a
	// database this small than copying its files (measured: ~150 ms vs ~30 ms).
	var version int
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		admin.Close()
		return fmt.Errorf("read server version: %w", err)
	}
	if version >= 150000 {
		shared.strategy = " STRATEGY FILE_COPY"
	}
	shared.ownerURL, shared.appURL, shared.appRole = ownerURL, appURL, appRole
	shared.admin, shared.template = admin, name
	return nil
}

// templateName derives the template's name from the migration files' names and
// contents and from the roles, so an edited migration gets a new template
// instead of tests running against a stale schema, and a template's grants
// name the application role the tests connect as.
func templateName(fsys fs.FS, ownerRole, appRole string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "owner\x00%s\x00app\x00%s\x00jobs\x00%d\x00", ownerRole, appRole, migrations.JobsVersion())
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return "dashtam_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ensureTemplate creates and migrates the template unless another process
// already did. The advisory lock is held on one dedicated connection for the
// whole check-create-migrate sequence.
func ensureTemplate(ctx context.Context, admin *pgxpool.Pool, ownerURL, appRole, name string) error {
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_MIGRATE_URL: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("lock template creation: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLockKey)
	}()

	ident := pgx.Identifier{name}.Sanitize()
	var isTemplate bool
	err = conn.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&isTemplate)
	switch {
	case err == nil && isTemplate:
		return nil
	case err == nil:
		// A process died between CREATE and IS_TEMPLATE: the database may
		// be half-migrated, so start over.
		if _, err := conn.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop unfinished template %s: %w", name, err)
		}
	case err != pgx.ErrNoRows:
		return fmt.Errorf("look up template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0"); err != nil {
		return fmt.Errorf("create template %s: %w (the DATABASE_MIGRATE_URL role, or DATABASE_URL's when it is unset, needs CREATEDB; "+
			"with a private cluster: export DATABASE_MIGRATE_URL=$(bin/dashtam --data-dir DIR dev db url --owner))", name, err)
	}
	tmplURL, err := withDatabase(ownerURL, name)
	if err != nil {
		return err
	}
	tmpl, err := pgxpool.New(ctx, tmplURL)
	if err != nil {
		return err
	}
	err = migrations.Apply(ctx, tmpl, appRole)
	// Cloning refuses a template with open sessions: close them all now.
	tmpl.Close()
	if err != nil {
		return fmt.Errorf("migrate template %s: %w", name, err)
	}
	// ALLOW_CONNECTIONS false keeps a stray connection from blocking clones.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("mark %s as a template: %w", name, err)
	}
	return nil
}

// withDatabase returns base with its database replaced, keeping user, host,
// password and parameters; it accepts both URL and key=value forms.
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse database URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In key=value form the last occurrence of a key wins.
	return base + " dbname=" + name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// ConfigurePool makes every connection of a pool built from cfg send
// uuid.UUID as its 16 bytes, as serve's connections do (cmd/dashtam
// configurePool): a test or benchmark then runs the statements serve runs,
// at the cost serve pays.
func ConfigurePool(cfg *pgxpool.Config) {
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
