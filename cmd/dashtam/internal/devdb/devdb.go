// Package devdb owns the private PostgreSQL cluster behind `make run` and
// `make test`: a cluster under the data directory, created on first use from
// the machine's server binaries, listening on loopback only, with the two
// roles of a production set-up and a "dashtam" database, so a fresh checkout
// needs no database set-up at all.
package devdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role, OwnerRole and Database name what the URLs connect as and to. As in
// production (docs/event-store.md), OwnerRole runs migrations and owns the
// database and every table, and Role, the application, owns nothing and may
// only what migrations.GrantApp grants it: no CREATEROLE (on PostgreSQL 15 it
// would let the role grant itself pg_execute_server_program), no CREATEDB.
// OwnerRole has CREATEDB, for the test helper's database per test, and is a
// member of Role so that dropping a test database may end the application's
// leftover sessions; the reverse membership would undo the point of it all.
const (
	Role      = "dashtam"
	OwnerRole = "dashtam_owner"
	Database  = "dashtam"
)

// superuser is the bootstrap account initdb creates; only devdb itself uses it.
const superuser = "postgres"

// maxSocketPath is the usable length of sun_path on Linux (108 bytes including
// the terminating NUL); a longer socket path makes the server fail to start.
const maxSocketPath = 107

// readyTimeout bounds how long Start waits for the server to accept
// connections, so a broken installation fails instead of hanging make.
const readyTimeout = 60 * time.Second

// Options tune a cluster at creation; they are ignored when it already exists.
type Options struct {
	// Throwaway trades durability for speed (fsync, full-page writes and
	// synchronous commit off): right for the cluster `make test` deletes
	// afterwards, wrong for a cluster whose data a developer cares about.
	Throwaway bool
}

// layout is where a cluster's pieces live: under <data dir>/pg, or where that
// symlink points when the cluster had to be placed elsewhere (see relocate).
type layout struct {
	dataDir                        string // absolute
	link                           string // <data dir>/pg
	lockFile                       string
	root, data, run, log, portFile string
}

func layoutOf(dataDir string) (layout, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return layout{}, fmt.Errorf("resolve data dir %s: %w", dataDir, err)
	}
	l := layout{dataDir: abs, link: filepath.Join(abs, "pg"), lockFile: filepath.Join(abs, "pg.lock")}
	root := l.link
	if target, err := os.Readlink(l.link); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(abs, target)
		}
		root = target
	}
	return l.at(root), nil
}

// at returns l with the cluster's files in root.
func (l layout) at(root string) layout {
	l.root = root
	l.data = filepath.Join(root, "data")
	l.run = filepath.Join(root, "run")
	l.log = filepath.Join(root, "log")
	l.portFile = filepath.Join(root, "port")
	return l
}

// Start is StartWith with default (durable) options.
func Start(ctx context.Context, dataDir string, out io.Writer) (string, error) {
	return StartWith(ctx, dataDir, out, Options{})
}

// StartWith creates the cluster under dataDir on first use, starts it unless it
// is running, makes sure both roles and the database exist and returns the
// application role's URL (OwnerURL gives the owner's). Calling it again on a
// running cluster only returns the URL. Progress lines go to out.
func StartWith(ctx context.Context, dataDir string, out io.Writer, opts Options) (string, error) {
	if out == nil {
		out = io.Discard
	}
	l, err := layoutOf(dataDir)
	if err != nil {
		return "", err
	}
	owner, err := currentOwner()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(l.dataDir, 0o755); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDir(l.lockFile)
	if err != nil {
		return "", err
	}
	defer unlock()
	if l, err = place(ctx, l, owner, out); err != nil {
		return "", err
	}
	bin, err := findBinDir(l.data)
	if err != nil {
		return "", err
	}
	if !initialised(l) {
		if err := initCluster(ctx, l, owner, bin, opts, out); err != nil {
			return "", err
		}
	}
	port, err := readPort(l)
	if err != nil {
		return "", err
	}
	if !running(l, owner, bin) {
		fmt.Fprintf(out, "starting PostgreSQL on 127.0.0.1:%d (data in %s)\n", port, l.data)
		if err := startServer(ctx, l, owner, bin); err != nil {
			return "", err
		}
	}
	if err := waitReady(ctx, port); err != nil {
		return "", err
	}
	if err := bootstrap(ctx, port); err != nil {
		return "", err
	}
	return urlFor(Role, port), nil
}

// Stop shuts the cluster down if it runs. A cluster that was never created, or
// is already stopped, is not an error: cleanup paths call Stop unconditionally.
func Stop(ctx context.Context, dataDir string) error {
	l, err := layoutOf(dataDir)
	if err != nil {
		return err
	}
	if !initialised(l) {
		return nil
	}
	owner, err := currentOwner()
	if err != nil {
		return err
	}
	if l.root != l.link {
		if err := owner.checkLink(l); err != nil {
			return err
		}
	}
	return stopAt(ctx, l, owner)
}

// Destroy stops the cluster under dataDir and deletes its files, wherever
// they live, so that a relocated cluster leaves nothing behind when a
// throwaway data dir is removed. The rest of the data dir stays.
func Destroy(ctx context.Context, dataDir string) error {
	l, err := layoutOf(dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(l.link); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	unlock, err := lockDir(l.lockFile)
	if err != nil {
		return err
	}
	defer unlock()
	owner, err := currentOwner()
	if err != nil {
		return err
	}
	if l.root != l.link {
		if err := owner.checkLink(l); errors.Is(err, fs.ErrNotExist) {
			return os.Remove(l.link)
		} else if err != nil {
			return err
		}
	}
	if err := stopAt(ctx, l, owner); err != nil {
		return err
	}
	if err := os.RemoveAll(l.root); err != nil {
		return fmt.Errorf("delete cluster files in %s: %w", l.root, err)
	}
	if err := os.Remove(l.link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", l.link, err)
	}
	return nil
}

// stopAt is Stop for a layout.
func stopAt(ctx context.Context, l layout, owner clusterOwner) error {
	if !initialised(l) {
		return nil
	}
	bin, err := findBinDir(l.data)
	if err != nil {
		return err
	}
	if !running(l, owner, bin) {
		return nil
	}
	cmd := owner.command(l.root, filepath.Join(bin, "pg_ctl"), "stop", "-D", l.data, "-m", "fast", "-w", "-t", "60", "-s")
	if out, err := runCmd(ctx, cmd); err != nil {
		return fmt.Errorf("stop PostgreSQL in %s: %w\n%s", l.data, err, out)
	}
	return nil
}

// URL returns the application role's connection URL of the cluster under
// dataDir without starting it; it fails when the cluster was never created
// there.
func URL(dataDir string) (string, error) {
	return existingURL(dataDir, Role)
}

// OwnerURL is URL for the owner role, which migrations run as.
func OwnerURL(dataDir string) (string, error) {
	return existingURL(dataDir, OwnerRole)
}

func existingURL(dataDir, role string) (string, error) {
	l, err := layoutOf(dataDir)
	if err != nil {
		return "", err
	}
	if !initialised(l) {
		return "", fmt.Errorf("no private PostgreSQL cluster in %s: run `dashtam dev db start` or `make run` first, or set DATABASE_URL", l.dataDir)
	}
	port, err := readPort(l)
	if err != nil {
		return "", err
	}
	return urlFor(role, port), nil
}

func urlFor(role string, port int) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", role, port, Database)
}

// initialised is true once initdb finished and the port was recorded; initCluster
// writes the port file last, so a half-made cluster is retried from scratch.
func initialised(l layout) bool {
	_, err1 := os.Stat(filepath.Join(l.data, "PG_VERSION"))
	_, err2 := os.Stat(l.portFile)
	return err1 == nil && err2 == nil
}

func readPort(l layout) (int, error) {
	b, err := os.ReadFile(l.portFile)
	if err != nil {
		return 0, fmt.Errorf("read cluster port: %w", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("read cluster port: %s holds %q, not a port number", l.portFile, b)
	}
	return port, nil
}

func initCluster(ctx context.Context, l layout, owner clusterOwner, bin string, opts Options, out io.Writer) error {
	// Leftovers of an interrupted initdb would make it refuse the directory.
	if err := os.RemoveAll(l.data); err != nil {
		return fmt.Errorf("clear half-created cluster: %w", err)
	}
	for _, dir := range []string{l.root, l.run, l.log} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := owner.chown(dir); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "creating PostgreSQL cluster in %s\n", l.data)
	args := []string{"-D", l.data, "-U", superuser, "--auth=trust", "--no-locale", "-E", "UTF8", "--no-instructions"}
	if opts.Throwaway {
		args = append(args, "--no-sync")
	}
	if b, err := runCmd(ctx, owner.command(l.root, filepath.Join(bin, "initdb"), args...)); err != nil {
		_ = os.RemoveAll(l.data)
		return fmt.Errorf("initdb: %w\n%s", err, b)
	}
	conf, err := os.OpenFile(filepath.Join(l.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	_, werr := conf.WriteString(settings(l, port, opts))
	if cerr := conf.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write postgresql.conf: %w", werr)
	}
	if err := os.WriteFile(l.portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
		return fmt.Errorf("remember cluster port: %w", err)
	}
	return nil
}

// settings are appended to postgresql.conf; later lines override initdb's.
func settings(l layout, port int, opts Options) string {
	var b strings.Builder
	b.WriteString("\n# Added by dashtam dev db start: a local development cluster.\n")
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\nport = %d\n", port)
	// Debian compiles in /var/run/postgresql, which may not exist or belong
	// to another cluster; a socket next to the data keeps clusters apart.
	fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", socketDir(l.run, port))
	b.WriteString("max_connections = 300\n") // parallel test binaries each hold pools
	b.WriteString("timezone = 'UTC'\nlog_timezone = 'UTC'\n")
	b.WriteString("logging_collector = off\n")
	if opts.Throwaway {
		b.WriteString("# Throwaway cluster: durability traded for speed.\n")
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	return b.String()
}

// socketDir is dir when the socket path fits the kernel's limit, and empty
// (TCP only) otherwise, since an over-long path stops the server from starting.
func socketDir(dir string, port int) string {
	if len(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", port))) > maxSocketPath {
		return ""
	}
	return strings.ReplaceAll(dir, "'", "''")
}

// freePort asks the kernel for an unused loopback port. It is chosen once, at
// creation, so the URL stays stable across restarts.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// running asks pg_ctl, which also recognises a stale postmaster.pid.
func running(l layout, owner clusterOwner, bin string) bool {
	cmd := owner.command(l.root, filepath.Join(bin, "pg_ctl"), "status", "-D", l.data)
	return cmd.Run() == nil
}

func startServer(ctx context.Context, l layout, owner clusterOwner, bin string) error {
	logFile := filepath.Join(l.log, "postgresql.log")
	cmd := owner.command(l.root, filepath.Join(bin, "pg_ctl"), "start", "-D", l.data, "-l", logFile, "-w", "-t", strconv.Itoa(int(readyTimeout.Seconds())), "-s")
	// The server must outlive this process and not receive the terminal's
	// Ctrl-C aimed at `make run`, so it gets a process group of its own.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if out, err := runCmd(ctx, cmd); err != nil {
		return fmt.Errorf("start PostgreSQL: %w\n%s\nserver log (%s):\n%s", err, out, logFile, tail(logFile, 20))
	}
	return nil
}

// waitReady polls until the server accepts a connection, because pg_ctl's "-w"
// reports readiness from postmaster.pid, which says nothing about TCP.
func waitReady(ctx context.Context, port int) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		conn, err := pgx.Connect(ctx, superuserURL(port))
		if err == nil {
			return conn.Close(ctx)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for PostgreSQL on 127.0.0.1:%d: %w (last error: %v)", port, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func superuserURL(port int) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", superuser, port)
}

// bootstrap creates the roles and the database if missing and puts their
// attributes and ownership right. It runs on every start, so a cluster
// interrupted between initdb and here heals itself, and a cluster made before
// the two roles existed (the application role owned everything and had
// CREATEROLE and CREATEDB) is brought to the same state as a new one; the
// next migration run grants the application role its privileges.
func bootstrap(ctx context.Context, port int) error {
	conn, err := pgx.Connect(ctx, superuserURL(port))
	if err != nil {
		return fmt.Errorf("connect as %s: %w", superuser, err)
	}
	defer conn.Close(ctx)
	app, owner := pgx.Identifier{Role}.Sanitize(), pgx.Identifier{OwnerRole}.Sanitize()
	for _, r := range []struct{ name, attrs string }{
		{OwnerRole, "LOGIN CREATEDB NOCREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS"},
		{Role, "LOGIN NOCREATEDB NOCREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS"},
	} {
		if err := ensureRole(ctx, conn, r.name, r.attrs); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "GRANT "+app+" TO "+owner); err != nil {
		return fmt.Errorf("make %s a member of %s: %w", OwnerRole, Role, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", Database, err)
	}
	db := pgx.Identifier{Database}.Sanitize()
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+db+" OWNER "+owner); err != nil {
			return fmt.Errorf("create database %s: %w", Database, err)
		}
	} else if _, err := conn.Exec(ctx, "ALTER DATABASE "+db+" OWNER TO "+owner); err != nil {
		return fmt.Errorf("hand database %s to %s: %w", Database, OwnerRole, err)
	}
	// Whatever the application role owns in the database (only a cluster
	// from before the split has anything) goes to the owner: REASSIGN
	// OWNED works per database, hence a connection to it.
	dbConn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, port, Database))
	if err != nil {
		return fmt.Errorf("connect to %s as %s: %w", Database, superuser, err)
	}
	defer dbConn.Close(ctx)
	if _, err := dbConn.Exec(ctx, "REASSIGN OWNED BY "+app+" TO "+owner); err != nil {
		return fmt.Errorf("hand what %s owns to %s: %w", Role, OwnerRole, err)
	}
	return nil
}

// ensureRole creates role with attrs, or sets attrs on it when it exists.
func ensureRole(ctx context.Context, conn *pgx.Conn, role, attrs string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %s: %w", role, err)
	}
	stmt := "ALTER ROLE " + pgx.Identifier{role}.Sanitize() + " " + attrs
	if !exists {
		stmt = "CREATE ROLE " + pgx.Identifier{role}.Sanitize() + " " + attrs
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("set up role %s: %w", role, err)
	}
	return nil
}

// lockDir serialises concurrent Start calls on one data dir (two terminals
// running make at once), which would otherwise both run initdb.
func lockDir(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}

// runCmd runs cmd, killing it when ctx ends, and returns its combined output
// for error messages.
func runCmd(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.Bytes(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return buf.Bytes(), ctx.Err()
	}
}

// tail returns the last n lines of a file, for error messages that point at
// the server's own explanation.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
