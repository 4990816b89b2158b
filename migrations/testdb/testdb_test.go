package testdb_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestIsolated checks each test database is migrated and private: a table made
// in one is not visible in the other.
func TestIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, aOwner := testdb.NewPair(t)
	b := testdb.New(t)
	var nameA, nameB string
	if err := a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB || !strings.HasPrefix(nameA, "dashtam_test_") {
		t.Errorf("databases %q and %q: want two distinct dashtam_test_ databases", nameA, nameB)
	}
	var migrated bool
	if err := a.QueryRow(ctx, "SELECT to_regclass('events') IS NOT NULL").Scan(&migrated); err != nil {
		t.Fatal(err)
	}
	if !migrated {
		t.Error("test database has no events table: migrations not applied")
	}
	if _, err := aOwner.Exec(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	var leaked bool
	if err := b.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&leaked); err != nil {
		t.Fatal(err)
	}
	if leaked {
		t.Error("a table created in one test database is visible in another")
	}
}

// TestKeepsRoleAndHost checks the test database is reached as the
// DATABASE_URL role on its host, so tests meet the same privileges as the
// application, and owned by the DATABASE_MIGRATE_URL role.
func TestKeepsRoleAndHost(t *testing.T) {
	t.Parallel()
	app, err := pgx.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	ownerEnv := os.Getenv("DATABASE_MIGRATE_URL")
	if ownerEnv == "" {
		ownerEnv = os.Getenv("DATABASE_URL")
	}
	owner, err := pgx.ParseConfig(ownerEnv)
	if err != nil {
		t.Fatal(err)
	}
	appURL, ownerURL := testdb.NewURLs(t)
	for _, c := range []struct {
		url  string
		want *pgx.ConnConfig
	}{{appURL, app}, {ownerURL, owner}} {
		got, err := pgx.ParseConfig(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if got.User != c.want.User || got.Host != c.want.Host || got.Port != c.want.Port {
			t.Errorf("test database at %s@%s:%d, want %s@%s:%d", got.User, got.Host, got.Port, c.want.User, c.want.Host, c.want.Port)
		}
		if !strings.HasPrefix(got.Database, "dashtam_test_") {
			t.Errorf("database %q, want a dashtam_test_ one", got.Database)
		}
	}
	if testdb.AppRole(t) != app.User {
		t.Errorf("AppRole = %q, want %q", testdb.AppRole(t), app.User)
	}

	pool, ownerPool := testdb.NewPair(t)
	var user, dbOwner, eventsOwner string
	if err := pool.QueryRow(context.Background(), `SELECT current_user, pg_get_userbyid(d.datdba), pg_get_userbyid(c.relowner)
		FROM pg_database d, pg_class c WHERE d.datname = current_database() AND c.oid = 'events'::regclass`).Scan(&user, &dbOwner, &eventsOwner); err != nil {
		t.Fatal(err)
	}
	if user != app.User || dbOwner != owner.User || eventsOwner != owner.User {
		t.Errorf("current_user %q, database owner %q, events owner %q; want %q, %q, %q", user, dbOwner, eventsOwner, app.User, owner.User, owner.User)
	}
	if err := testdb.Owner(t, pool).QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil || user != owner.User {
		t.Errorf("Owner's current_user = %q, %v; want %q", user, err, owner.User)
	}
	var same bool
	if err := ownerPool.QueryRow(context.Background(), "SELECT current_database() = $1", pool.Config().ConnConfig.Database).Scan(&same); err != nil || !same {
		t.Errorf("NewPair's pools are on different databases (%v)", err)
	}
}

// TestDroppedAfterTest checks the cleanup really drops the database, so a long
// test run does not fill the cluster.
func TestDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("uses a database", func(t *testing.T) {
		if err := testdb.New(t).QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	check := testdb.New(t)
	var exists bool
	if err := check.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// BenchmarkNew measures what each test pays for its private database: clone
// the template, connect, query, close and drop.
func BenchmarkNew(b *testing.B) {
	testdb.New(b) // build the template outside the measurement
	ctx := context.Background()
	for b.Loop() {
		tb := &loopTB{TB: b}
		if err := testdb.New(tb).Ping(ctx); err != nil {
			b.Fatal(err)
		}
		tb.runCleanups()
	}
}

// loopTB gives each benchmark iteration its own cleanups, so every database is
// dropped inside the measured loop rather than piling up until the end.
type loopTB struct {
	testing.TB
	cleanups []func()
}

func (l *loopTB) Cleanup(f func()) { l.cleanups = append(l.cleanups, f) }

func (l *loopTB) runCleanups() {
	for i := len(l.cleanups) - 1; i >= 0; i-- {
		l.cleanups[i]()
	}
}
