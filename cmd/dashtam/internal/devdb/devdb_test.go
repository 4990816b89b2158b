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
	assertRole(ctx, t, url)

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
	assertRole(ctx, t, url)
}

// assertRole checks the URL's role can do what migrations and the test helper
// need, without being a superuser.
func assertRole(ctx context.Context, t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect as dashtam: %v", err)
	}
	defer conn.Close(ctx)
	var super, createRole, createDB bool
	var db string
	err = conn.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb, current_database()
		FROM pg_roles WHERE rolname = current_user`).Scan(&super, &createRole, &createDB, &db)
	if err != nil {
		t.Fatal(err)
	}
	if super || !createRole || !createDB || db != Database {
		t.Errorf("role: super=%v createrole=%v createdb=%v db=%q; want false true true %q", super, createRole, createDB, db, Database)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Errorf("throwaway cluster fsync = %q, want off", fsync)
	}
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
