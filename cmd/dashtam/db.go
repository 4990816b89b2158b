package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations"
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
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL: %s", redact(parseCause(err), passwordOf(dbURL)))
	}
	cfg.ConnConfig.ConnectTimeout = connectTimeout
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

// openMigratedStore connects, brings the schema up to date and returns an
// event store that decodes every event type this binary knows: what serve
// and the commands that act as it (users create) start from. Closing the
// pool is the caller's.
func openMigratedStore(ctx context.Context, o *globalOptions) (*pgxpool.Pool, *eventstore.Store, error) {
	pool, err := connect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	err = migrations.Up(ctx, db)
	db.Close()
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	store, err := eventstore.New(pool, newEventRegistry())
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return pool, store, nil
}

// personalStore returns an event store over pool that seals the personal
// data of events under per-user keys wrapped by the master key
// (DASHTAM_ENCRYPTION_KEY), and the keystore, which erasures destroy keys
// in (docs/audit.md).
func personalStore(pool *pgxpool.Pool, masterKey []byte) (*eventstore.Store, *personaldata.Keys, error) {
	ring, err := vault.Parse(base64.StdEncoding.EncodeToString(masterKey))
	if err != nil {
		return nil, nil, fmt.Errorf("DASHTAM_ENCRYPTION_KEY: %w", err)
	}
	keys, err := personaldata.New(pool, ring, time.Now)
	if err != nil {
		return nil, nil, err
	}
	store, err := eventstore.New(pool, newEventRegistry(), eventstore.WithPersonalData(keys))
	if err != nil {
		return nil, nil, err
	}
	return store, keys, nil
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
