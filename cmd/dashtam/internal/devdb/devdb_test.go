package devdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestPrivateParentRelocates is a root user's checkout in a folder the
// postgres account cannot enter (like /root): the cluster's files go to a
// directory postgres can reach, found again through <data dir>/pg across
// stops and restarts, the private folder keeps its mode, and Destroy leaves
// nothing behind.
func TestPrivateParentRelocates(t *testing.T) {
	skipWithoutServer(t)
	if os.Geteuid() != 0 {
		t.Skip("relocation is for root, whose cluster runs as the postgres user")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := newDataDir(t) // reachable, like the postgres account's home
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	base = filepath.Join(base, "dashtam")
	defer func(old func(clusterOwner) (string, error)) { relocationBase = old }(relocationBase)
	relocationBase = func(clusterOwner) (string, error) { return base, nil }

	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(private, "repo", ".dashtam")
	t.Cleanup(func() {
		if err := Destroy(context.Background(), dataDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	var progress strings.Builder
	url, err := StartWith(ctx, dataDir, &progress, Options{Throwaway: true})
	if err != nil {
		t.Fatalf("Start in a private folder: %v", err)
	}
	if !strings.Contains(progress.String(), "cannot enter "+private) {
		t.Errorf("progress %q does not say why the cluster moved", progress.String())
	}
	link := filepath.Join(dataDir, "pg")
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("%s is not a symlink: %v", link, err)
	}
	if filepath.Dir(target) != base {
		t.Errorf("cluster files in %s, want a directory of %s", target, base)
	}
	if fi, err := os.Stat(private); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("private folder mode = %v (%v), want it left at 0700", fi.Mode().Perm(), err)
	}
	note, err := os.ReadFile(filepath.Join(target, relocatedNote))
	if err != nil || strings.TrimSpace(string(note)) != dataDir {
		t.Errorf("%s = %q, %v; want the data dir", relocatedNote, note, err)
	}
	assertRoles(ctx, t, dataDir, url)

	if err := Stop(ctx, dataDir); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	progress.Reset()
	again, err := StartWith(ctx, dataDir, &progress, Options{Throwaway: true})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if again != url || strings.Contains(progress.String(), "creating") {
		t.Errorf("restart: URL %q (want %q), progress %q: want the same cluster reused", again, url, progress.String())
	}
	if got, err := URL(dataDir); err != nil || got != url {
		t.Errorf("URL() = %q, %v; want %q", got, err, url)
	}

	// Deleting the data dir without Destroy, then starting again at the same
	// path, starts over: the leftover is stopped and replaced.
	if err := os.RemoveAll(filepath.Join(private, "repo")); err != nil {
		t.Fatal(err)
	}
	progress.Reset()
	if _, err := StartWith(ctx, dataDir, &progress, Options{Throwaway: true}); err != nil {
		t.Fatalf("start after deleting the data dir: %v", err)
	}
	if !strings.Contains(progress.String(), "creating PostgreSQL cluster") {
		t.Errorf("progress %q: want a new cluster after the data dir was deleted", progress.String())
	}

	if err := Destroy(ctx, dataDir); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Destroy, %s: %v; want it gone", target, err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Destroy, %s: %v; want it gone", link, err)
	}
}

// TestForeignSymlinkRefused: a <data dir>/pg symlink relocate did not make
// (shipped in an archive, pointing at a system directory) is neither used,
// stopped through, nor deleted.
func TestForeignSymlinkRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("symlinks are followed only for root's relocated clusters")
	}
	defer func(old func(clusterOwner) (string, error)) { relocationBase = old }(relocationBase)
	base := t.TempDir()
	relocationBase = func(clusterOwner) (string, error) { return base, nil }
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	if err := os.Symlink(victim, filepath.Join(dataDir, "pg")); err != nil {
		t.Fatal(err)
	}
	if _, err := StartWith(context.Background(), dataDir, nil, Options{Throwaway: true}); err == nil || !strings.Contains(err.Error(), "not a cluster directory dashtam made") {
		t.Errorf("Start through a foreign symlink: err = %v", err)
	}
	if err := Destroy(context.Background(), dataDir); err == nil {
		t.Error("Destroy through a foreign symlink succeeded")
	}
	if fi, err := os.Stat(filepath.Join(victim, "precious")); err != nil || fi.Size() != 1 {
		t.Errorf("the symlink's target was touched: %v", err)
	}
	if fi, err := os.Stat(victim); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the symlink's target changed owner: %v", err)
	}
}

// TestRelocatedRefusesStrangersDirectory checks a directory someone else
// could have prepared or could change is never used for a cluster.
func TestRelocatedRefusesStrangersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory of another owner")
	}
	o := clusterOwner{name: "postgres", uid: 70001, gid: 70001, switched: true}
	dir := t.TempDir()
	if err := o.checkRelocated(dir); err != nil {
		t.Errorf("root's own 0700 directory refused: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := o.checkRelocated(dir); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable directory: err = %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 70002, 70002); err != nil {
		t.Fatal(err)
	}
	if err := o.checkRelocated(dir); err == nil || !strings.Contains(err.Error(), "neither root nor") {
		t.Errorf("a stranger's directory: err = %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if err := o.checkRelocated(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a symlink: err = %v", err)
	}
}

func TestDefaultRelocationBase(t *testing.T) {
	got, err := relocationBase(clusterOwner{name: "postgres", home: "/var/lib/postgresql"})
	if err != nil || got != "/var/lib/postgresql/dashtam" {
		t.Errorf("relocationBase = %q, %v; want /var/lib/postgresql/dashtam", got, err)
	}
	for _, home := range []string{"", "/", "relative"} {
		if _, err := relocationBase(clusterOwner{name: "postgres", home: home}); err == nil {
			t.Errorf("home %q accepted", home)
		}
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
