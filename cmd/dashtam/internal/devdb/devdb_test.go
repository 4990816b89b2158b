package devdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// newDataDir returns a fresh directory the postgres user can reach. t.TempDir
// is unsuitable when running as root: its parent is mode 0700.
func newDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devdb-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func skipWithoutServer(t *testing.T) {
	t.Helper()
	if _, err := searchBinDir("pg_config", debianBinGlob, "initdb"); err != nil {
		t.Skipf("no PostgreSQL server here: %v", err)
	}
}

func TestStartStopLifecycle(t *testing.T) {
	skipWithoutServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dataDir := newDataDir(t)
	t.Cleanup(func() {
		if err := Stop(context.Background(), dataDir); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
	})

	if _, err := URL(dataDir); err == nil {
		t.Fatal("URL before Start: want an error, got none")
	} else if !strings.Contains(err.Error(), "dashtam dev db start") {
		t.Errorf("URL before Start: error %q does not tell the user what to run", err)
	}

	var progress strings.Builder
	url, err := StartWith(ctx, dataDir, &progress, Options{Throwaway: true})
	if err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if !strings.HasPrefix(url, "postgres://dashtam@127.0.0.1:") || !strings.HasSuffix(url, "/dashtam?sslmode=disable") {
		t.Errorf("URL = %q, want the dashtam role on loopback", url)
	}
	if !strings.Contains(progress.String(), "creating PostgreSQL cluster") {
		t.Errorf("progress %q does not mention creation", progress.String())
	}
	assertRoles(ctx, t, dataDir, url)

	again, err := Start(ctx, dataDir, nil)
	if err != nil {
		t.Fatalf("second Start on a running cluster: %v", err)
	}
	if again != url {
		t.Errorf("second Start URL = %q, want %q", again, url)
	}
	if got, err := URL(dataDir); err != nil || got != url {
		t.Errorf("URL() = %q, %v; want %q", got, err, url)
	}

	if err := Stop(ctx, dataDir); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := Stop(ctx, dataDir); err != nil {
		t.Fatalf("Stop on a stopped cluster: %v", err)
	}
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Fatal("connect after Stop succeeded")
	}

	restarted, err := Start(ctx, dataDir, nil)
	if err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if restarted != url {
		t.Errorf("restart URL = %q, want the remembered %q", restarted, url)
	}
	assertRoles(ctx, t, dataDir, url)
}

// assertRoles checks the two roles: the application's URL connects as a role
// that may create neither roles nor databases and owns nothing, the owner's
// as the role that owns the database and may create the test helper's.
func assertRoles(ctx context.Context, t *testing.T, dataDir, url string) {
	t.Helper()
	ownerURL, err := OwnerURL(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(url, "://"+Role+"@", "://"+OwnerRole+"@", 1); ownerURL != want {
		t.Errorf("OwnerURL = %q, want %q", ownerURL, want)
	}
	for _, c := range []struct {
		url, role            string
		createRole, createDB bool
	}{{url, Role, false, false}, {ownerURL, OwnerRole, false, true}} {
		conn, err := pgx.Connect(ctx, c.url)
		if err != nil {
			t.Fatalf("connect as %s: %v", c.role, err)
		}
		defer conn.Close(ctx)
		var user string
		var super, createRole, createDB bool
		err = conn.QueryRow(ctx, `SELECT current_user, rolsuper, rolcreaterole, rolcreatedb
			FROM pg_roles WHERE rolname = current_user`).Scan(&user, &super, &createRole, &createDB)
		if err != nil {
			t.Fatal(err)
		}
		if user != c.role || super || createRole != c.createRole || createDB != c.createDB {
			t.Errorf("%s: user=%s super=%v createrole=%v createdb=%v; want %s false %v %v",
				c.url, user, super, createRole, createDB, c.role, c.createRole, c.createDB)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var db, dbOwner string
	if err := conn.QueryRow(ctx, `SELECT current_database(), pg_get_userbyid(datdba) FROM pg_database
		WHERE datname = current_database()`).Scan(&db, &dbOwner); err != nil {
		t.Fatal(err)
	}
	if db != Database || dbOwner != OwnerRole {
		t.Errorf("database %q owned by %q, want %q owned by %q", db, dbOwner, Database, OwnerRole)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Errorf("throwaway cluster fsync = %q, want off", fsync)
	}
}

// TestBootstrapSplitsAnOldCluster starts from the state a cluster made
// before the two roles had (the application role owning the database and
// its tables, with CREATEROLE and CREATEDB) and checks a start hands
// everything to the owner and strips the application role.
func TestBootstrapSplitsAnOldCluster(t *testing.T) {
	skipWithoutServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dataDir := newDataDir(t)
	t.Cleanup(func() { _ = Stop(context.Background(), dataDir) })
	url, err := StartWith(ctx, dataDir, nil, Options{Throwaway: true})
	if err != nil {
		t.Fatal(err)
	}
	port, err := readPort(mustLayout(t, dataDir))
	if err != nil {
		t.Fatal(err)
	}
	super, err := pgx.Connect(ctx, strings.Replace(url, "://"+Role+"@", "://"+superuser+"@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	for _, stmt := range []string{
		"ALTER ROLE " + Role + " CREATEROLE CREATEDB",
		"ALTER DATABASE " + Database + " OWNER TO " + Role,
		"CREATE TABLE old_events (id int)",
		"ALTER TABLE old_events OWNER TO " + Role,
	} {
		if _, err := super.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := bootstrap(ctx, port); err != nil {
		t.Fatal(err)
	}
	assertRoles(ctx, t, dataDir, url)
	var tableOwner string
	if err := super.QueryRow(ctx, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'old_events'::regclass").Scan(&tableOwner); err != nil {
		t.Fatal(err)
	}
	if tableOwner != OwnerRole {
		t.Errorf("old_events owned by %q after bootstrap, want %q", tableOwner, OwnerRole)
	}
}

func mustLayout(t *testing.T, dataDir string) layout {
	t.Helper()
	l, err := layoutOf(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestStopNeverStarted(t *testing.T) {
	if err := Stop(context.Background(), t.TempDir()); err != nil {
		t.Errorf("Stop on an empty data dir: %v", err)
	}
}

func TestMissingBinaries(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere")
	_, err := searchBinDir(filepath.Join(missing, "pg_config"), filepath.Join(missing, "*", "bin"), "dashtam-no-such-initdb")
	if !errors.Is(err, ErrBinariesNotFound) {
		t.Fatalf("err = %v, want ErrBinariesNotFound", err)
	}
	const want = `PostgreSQL server binaries not found: install the Debian package "postgresql" (apt-get install postgresql)`
	if err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
}

func TestSearchPrefersHighestVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "13", "15"} {
		dir := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range serverBinaries {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := searchBinDir(filepath.Join(root, "no-pg_config"), filepath.Join(root, "*", "bin"), "dashtam-no-such-initdb")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "15", "bin"); got != want {
		t.Errorf("bin dir = %q, want %q", got, want)
	}
}

func TestSocketDirFallsBackWhenTooLong(t *testing.T) {
	tests := []struct {
		dir  string
		want string
	}{
		{"/tmp/x/pg/run", "/tmp/x/pg/run"},
		{"/" + strings.Repeat("d", 100) + "/pg/run", ""},
		{"/tmp/it's/pg/run", "/tmp/it''s/pg/run"},
	}
	for _, tt := range tests {
		if got := socketDir(tt.dir, 54321); got != tt.want {
			t.Errorf("socketDir(%q) = %q, want %q", tt.dir, got, tt.want)
		}
	}
}
