package identity_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/authtoken"
	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/mail"
	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/adapters/password"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// clock is a settable test clock; nothing in these tests reads the wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// cheapParams keep argon2id real but fast enough for tests that log in often.
var cheapParams = password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// env is one Handler over a fresh database, real adapters and a file outbox.
type env struct {
	tb     testing.TB
	h      *identity.Handler
	deps   identity.Deps
	pool   *pgxpool.Pool
	store  *eventstore.Store
	clock  *clock
	outbox string
	logs   *syncBuffer
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// MustEnv builds an env; change adjusts the Deps before the Handler is made.
func MustEnv(tb testing.TB, change ...func(*identity.Deps)) *env {
	tb.Helper()
	return mustEnvOn(tb, testdb.New(tb), change...)
}

// mustEnvWithConns is MustEnv over a pool of up to n connections, for tests
// whose concurrency must reach the database rather than queue in the pool.
func mustEnvWithConns(tb testing.TB, n int32) *env {
	tb.Helper()
	return mustEnvOn(tb, testdb.NewWithConns(tb, n))
}

func mustEnvOn(tb testing.TB, pool *pgxpool.Pool, change ...func(*identity.Deps)) *env {
	tb.Helper()
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(pool, reg, eventstore.WithClock(c.Now))
	if err != nil {
		tb.Fatal(err)
	}
	hasher, err := password.New(cheapParams)
	if err != nil {
		tb.Fatal(err)
	}
	jwt, err := authtoken.NewJWT(authtoken.JWTConfig{
		Secret: []byte("0123456789abcdef0123456789abcdef"),
		Issuer: "http://dashtam.test",
		Now:    c.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	outbox := filepath.Join(tb.TempDir(), "mail")
	mailer, err := mail.New("file://" + outbox)
	if err != nil {
		tb.Fatal(err)
	}
	logs := &syncBuffer{}
	// Every mail is a job: the tests run real workers, as a server does,
	// and mails() waits for them to be done.
	workers := jobs.NewWorkers()
	jc, err := jobs.New(pool, workers, jobs.Config{Work: true, FetchPollInterval: 100 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	keyring, err := vault.Parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil {
		tb.Fatal(err)
	}
	d := identity.Deps{
		Store: store, Pool: pool, Hasher: hasher, Policy: password.Policy{}, Access: jwt, Jobs: jc, Vault: keyring,
		Secrets: authtoken.Opaque{}, Mailer: mailer, Now: c.Now, PublicURL: "http://dashtam.test",
		RotationGrace: time.Minute,
		NameKey:       []byte("a test key for login-name digests, 32+ bytes"),
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range change {
		f(&d)
	}
	h, err := identity.NewHandler(d)
	if err != nil {
		tb.Fatal(err)
	}
	jobs.Handle(workers, h.SendLinkMail)
	jobs.Handle(workers, h.RunAddressRequest)
	jobs.Handle(workers, h.SendUserMail)
	if err := jc.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = jc.Stop(ctx)
	})
	// Every test runs with the session cache on, as a server does, so each
	// security test also checks that the cache never outlives a change.
	runSessionCache(tb, h)
	return &env{tb: tb, h: h, deps: d, pool: pool, store: store, clock: c, outbox: outbox, logs: logs}
}

// drainJobs waits until the job queue holds nothing to run now: every
// mail enqueued so far has been sent (or has failed for good).
func drainJobs(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	waitFor(tb, "the queued jobs to run", func() bool {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job
			WHERE state IN ('available', 'running', 'pending') OR (state IN ('scheduled', 'retryable') AND scheduled_at <= now())`).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		return n == 0
	})
}

// runSessionCache runs h's session cache for the rest of the test and
// waits until it is in use.
func runSessionCache(tb testing.TB, h *identity.Handler) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.RunSessionCache(ctx)
	}()
	tb.Cleanup(func() { cancel(); <-done })
	waitFor(tb, "the session cache to be enabled", func() bool { return h.SessionCacheStats().Enabled })
}

// waitFor polls cond until it holds, failing the test after ten seconds:
// for what another connection delivers asynchronously (a NOTIFY).
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	require.Eventually(tb, cond, 10*time.Second, 2*time.Millisecond, "waiting for %s", what)
}

// rc is the request context of the tests' client.
var rc = commands.RequestContext{
	IP:        netip.MustParseAddr("192.0.2.10"),
	UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	TraceID:   "trace-0001",
}

const goodPassword = "correct horse battery staple 42"

// MustRegister registers email and verifies it through the mailed link.
func (e *env) MustRegister(email string) identity.UserView {
	e.tb.Helper()
	v, err := e.h.Register(context.Background(), identity.RegisterInput{Email: email, Password: goodPassword, RequestContext: rc})
	if err != nil {
		e.tb.Fatalf("register %s: %v", email, err)
	}
	if err := e.h.VerifyEmail(context.Background(), e.MustMailedToken(email, identity.VerifyEmailPath), rc); err != nil {
		e.tb.Fatalf("verify %s: %v", email, err)
	}
	return v
}

// MustLogin logs email in with goodPassword.
func (e *env) MustLogin(email string) identity.Tokens {
	e.tb.Helper()
	tok, err := e.h.Login(context.Background(), identity.LoginInput{Email: email, Password: goodPassword, RequestContext: rc})
	if err != nil {
		e.tb.Fatalf("login %s: %v", email, err)
	}
	return tok
}

// MustAuthenticate authenticates an access token.
func (e *env) MustAuthenticate(access string) commands.Principal {
	e.tb.Helper()
	p, err := e.h.Authenticate(context.Background(), access)
	if err != nil {
		e.tb.Fatalf("authenticate: %v", err)
	}
	return p
}

// mails waits for the mail in flight and returns the decoded text bodies of
// the outbox's messages to addr, oldest first.
func (e *env) mails(addr string) []string {
	e.tb.Helper()
	drainJobs(e.tb, e.pool)
	var out []string
	for _, m := range mailtest.ReadOutbox(e.tb, e.outbox) {
		if strings.Contains(m.To, addr) {
			out = append(out, m.Text)
		}
	}
	return out
}

// MustMailedToken returns the token of the newest link to path mailed to
// addr; the link must start with the handler's public URL.
func (e *env) MustMailedToken(addr, path string) string {
	e.tb.Helper()
	ms := e.mails(addr)
	for i := len(ms) - 1; i >= 0; i-- {
		if token, ok := mailtest.FindLinkToken(ms[i], path); ok {
			if !strings.Contains(ms[i], e.deps.PublicURL+path+"?token=") {
				e.tb.Fatalf("the %s link is not under %s:\n%s", path, e.deps.PublicURL, ms[i])
			}
			return token
		}
	}
	e.tb.Fatalf("no mail with a %s link to %s among %d", path, addr, len(ms))
	return ""
}

// storedEvent is one row of the events table, as the audit trail reads it.
type storedEvent struct {
	Type     string
	Payload  string
	Metadata eventstore.Metadata
	Raw      string
}

// events returns the stream of user id, oldest first.
func (e *env) events(id uuid.UUID) []storedEvent {
	e.tb.Helper()
	recs, err := e.store.ReadStream(context.Background(), eventstore.Stream{Type: eventstore.StreamUser, ID: id}, 0)
	if err != nil {
		e.tb.Fatal(err)
	}
	out := make([]storedEvent, len(recs))
	for i, r := range recs {
		out[i] = storedEvent{Type: r.EventType, Payload: string(r.Payload), Metadata: r.Metadata, Raw: string(r.RawMetadata)}
	}
	return out
}

// eventTypes lists the types of evs in order.
func eventTypes(evs []storedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// countEvents counts every event in the log.
func (e *env) countEvents() int {
	e.tb.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		e.tb.Fatal(err)
	}
	return n
}
