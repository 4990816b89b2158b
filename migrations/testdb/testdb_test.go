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
	a, b := testdb.New(t), testdb.New(t)
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
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
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

// TestKeepsRoleAndHost checks the test database is reached as the DATABASE_URL
// role on its host, so tests meet the same privileges as the application.
func TestKeepsRoleAndHost(t *testing.T) {
	t.Parallel()
	admin, err := pgx.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.ParseConfig(testdb.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.User != admin.User || got.Host != admin.Host || got.Port != admin.Port {
		t.Errorf("test database at %s@%s:%d, want %s@%s:%d", got.User, got.Host, got.Port, admin.User, admin.Host, admin.Port)
	}
	if !strings.HasPrefix(got.Database, "dashtam_test_") {
		t.Errorf("database %q, want a dashtam_test_ one", got.Database)
	}
	var user string
	pool := testdb.New(t)
	if err := pool.QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if user != admin.User {
		t.Errorf("current_user = %q, want %q", user, admin.User)
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
