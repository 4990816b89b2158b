// Package testdb gives each test its own migrated PostgreSQL database in a few
// milliseconds, so tests below the web layer run against the real schema in
// parallel without seeing each other's rows.
//
// The first call in a test binary builds a template database named after a
// hash of the migration files (once per schema, shared by every package's test
// binary through an advisory lock); each test then clones it with CREATE
// DATABASE … TEMPLATE, which copies files instead of replaying migrations.
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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// shared is the per-process state: the admin pool and the template name.
var shared struct {
	once     sync.Once
	err      error
	adminURL string
	admin    *pgxpool.Pool
	template string
	strategy string // " STRATEGY FILE_COPY" on servers that know the option
}

// New returns a pool on a fresh database with every migration applied. The pool
// is closed and the database dropped when the test ends.
func New(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	dbURL := NewURL(tb)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		tb.Fatalf("testdb: connect to test database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// NewURL returns the URL of a fresh database with every migration applied, for
// code under test that opens its own connections (the serve command, goose).
// The database is dropped when the test ends, closing any connection left open.
func NewURL(tb testing.TB) string {
	tb.Helper()
	setup(tb)
	return create(tb, "TEMPLATE "+pgx.Identifier{shared.template}.Sanitize()+shared.strategy)
}

// NewEmptyURL returns the URL of a fresh database with no migrations applied,
// for tests of migrating itself. It is dropped when the test ends.
func NewEmptyURL(tb testing.TB) string {
	tb.Helper()
	setup(tb)
	// template0 rather than the default template1: nothing a cluster
	// administrator added to template1 leaks into the test.
	return create(tb, "TEMPLATE template0")
}

func setup(tb testing.TB) {
	tb.Helper()
	shared.once.Do(func() { shared.err = initShared() })
	if shared.err != nil {
		tb.Fatalf("testdb: %v", shared.err)
	}
}

func create(tb testing.TB, clause string) string {
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
		if err := dropDatabase(ctx, name); err != nil {
			tb.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	dbURL, err := withDatabase(shared.adminURL, name)
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	return dbURL
}

// dropDatabase drops the test database. FORCE ends connections the test
// leaked, so one forgotten pool cannot make every later test's cleanup
// fail. It cannot end an autovacuum worker that happens to be in the
// database (PostgreSQL refuses with 42501 to a role that is not a
// superuser), so that refusal is retried for a few seconds: the worker
// is cancelled by the drop's wait and leaves within milliseconds.
func dropDatabase(ctx context.Context, name string) error {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		_, err = shared.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
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

func initShared() error {
	adminURL := os.Getenv("DATABASE_URL")
	if adminURL == "" {
		return fmt.Errorf("DATABASE_URL is not set: run `make test` (it starts a throwaway PostgreSQL cluster), or point DATABASE_URL at a role with CREATEDB")
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	cfg.MaxConns = 4 // CREATE/DROP DATABASE are serialised by the server anyway
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	name, err := templateName(migrations.FS)
	if err != nil {
		admin.Close()
		return err
	}
	if err := ensureTemplate(ctx, admin, adminURL, name); err != nil {
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
	shared.adminURL, shared.admin, shared.template = adminURL, admin, name
	return nil
}

// templateName derives the template's name from the migration files' names and
// contents, so an edited migration gets a new template instead of tests running
// against a stale schema.
func templateName(fsys fs.FS) (string, error) {
	h := sha256.New()
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
func ensureTemplate(ctx context.Context, admin *pgxpool.Pool, adminURL, name string) error {
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_URL: %w", err)
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
		return fmt.Errorf("create template %s: %w (the DATABASE_URL role needs CREATEDB)", name, err)
	}
	tmplURL, err := withDatabase(adminURL, name)
	if err != nil {
		return err
	}
	db, err := migrations.Open(tmplURL)
	if err != nil {
		return err
	}
	err = migrations.Up(ctx, db)
	// Cloning refuses a template with open sessions: close them all now.
	if cerr := db.Close(); err == nil {
		err = cerr
	}
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
			return "", fmt.Errorf("parse DATABASE_URL: %w", err)
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
