package connections_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/adapters/providers/schwab"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// Keys of the tests' keyrings: "old" seals before a rotation, "new" after.
var (
	oldKey = "old:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x0d}, 32))
	newKey = "new:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x0e}, 32))
)

// accountIDKey keys the Schwab adapter's account ids in these tests.
var accountIDKey = []byte("connections-tests-account-id-key-0123456789")

// rc is the request context of the tests' browser.
var rc = commands.RequestContext{IP: netip.MustParseAddr("192.0.2.44"), UserAgent: "connections-test", TraceID: "trace-conn"}

// world is what every instance of the server shares: one database, one
// fake Schwab and one clock, which the fake, the adapter and the handler
// all read, so that token lifetimes are tested without waiting.
type world struct {
	tb    testing.TB
	clock *schwabtest.Clock
	fake  *schwabtest.Fake
	// dbURL is the application role's URL of the test database.
	dbURL string
	// tokenURL is where the adapters exchange and refresh: the fake's
	// token endpoint, or a gate in front of it.
	tokenURL string
	// sandbox is the built-in institution on the same clock: the provider
	// with PKCE (sealed verifiers) and revocation.
	sandbox *httptest.Server
	// sandboxCalls counts the requests the sandbox received, by path.
	sandboxCalls *callCounter
}

// callCounter counts requests by path.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) add(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[path]++
}

// get returns how many requests path received.
func (c *callCounter) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// total returns how many requests were received.
func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

// Sandbox client of the tests.
const (
	sandboxClientID     = "dashtam"
	sandboxClientSecret = "sandbox-client-secret-of-the-tests"
	sandboxRedirect     = "http://127.0.0.1:8080/oauth/sandbox/callback"
)

// newWorld starts a fake Schwab on a clock that reads the wall clock's
// time of day plus some nanoseconds at first (river schedules by the
// database's clock, so the two agree) and a fresh database.
func newWorld(tb testing.TB, opts schwabtest.Options) *world {
	tb.Helper()
	// Nanoseconds on purpose: PostgreSQL keeps microseconds, and every
	// comparison of a stored time with a computed one must survive that.
	clock := schwabtest.NewClock(time.Now().UTC().Truncate(time.Second).Add(123_456_789))
	opts.Now = clock.Now
	f := schwabtest.New(tb, opts)
	inst, err := sandbox.NewInstitution(sandbox.Config{Key: []byte("sandbox signing key of the connections tests"),
		ClientID: sandboxClientID, ClientSecret: sandboxClientSecret, RedirectURIs: []string{sandboxRedirect}, Now: clock.Now})
	require.NoError(tb, err)
	calls := &callCounter{n: map[string]int{}}
	handler := inst.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		calls.add(r.URL.Path)
		handler.ServeHTTP(rw, r)
	}))
	tb.Cleanup(srv.Close)
	return &world{tb: tb, clock: clock, fake: f, dbURL: testdb.NewURL(tb), tokenURL: f.TokenURL(), sandbox: srv, sandboxCalls: calls}
}

// tokenGate stands between the adapters and the fake's token endpoint:
// while held, token requests wait in it, each announced on arrived,
// so that a test can line concurrent refreshes up without sleeping.
type tokenGate struct {
	arrived chan struct{}
	mu      sync.Mutex
	closed  chan struct{} // nil while open
}

// gateTokens puts a gate in front of the token endpoint of the instances
// opened from now on.
func (w *world) gateTokens() *tokenGate {
	target, err := url.Parse(w.fake.URL())
	require.NoError(w.tb, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &tokenGate{arrived: make(chan struct{}, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		wait := g.closed
		g.mu.Unlock()
		if wait != nil {
			g.arrived <- struct{}{}
			select {
			case <-wait:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(rw, r)
	}))
	w.tb.Cleanup(srv.Close)
	w.tb.Cleanup(g.release) // first: a held request would keep Close waiting
	w.tokenURL = srv.URL + "/v1/oauth/token"
	return g
}

// hold makes token requests wait until release.
func (g *tokenGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = make(chan struct{})
}

// release lets the waiting token requests, and every later one, through.
func (g *tokenGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
}

// instance is one server instance: its own pool, store, job client,
// pacer and connections handler over the shared world.
type instance struct {
	w     *world
	pool  *pgxpool.Pool
	store *eventstore.Store
	jobs  *jobs.Client
	h     *connections.Handler
	logs  *logBuffer
	// events are river's events once the instance works jobs (see work).
	events <-chan *river.Event
	seen   []*river.Event
	kr     *vault.Keyring
}

// instanceOptions vary an instance.
type instanceOptions struct {
	// keyring is the vault's configuration, oldKey when empty.
	keyring string
	// work makes the instance run jobs; register adds workers beyond the
	// connection jobs (the identity mailer).
	work     bool
	register func(*jobs.Workers, *jobs.Client)
	// ratePerMinute paces Schwab calls, 6,000 when zero.
	ratePerMinute int
	// maxConns sizes the pool, 10 when zero.
	maxConns int32
}

// newInstance opens one server instance over w.
func (w *world) newInstance(o instanceOptions) *instance {
	tb := w.tb
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(w.dbURL)
	require.NoError(tb, err)
	cfg.MaxConns = 10
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(pool, reg, eventstore.WithClock(w.clock.Now))
	require.NoError(tb, err)
	if o.keyring == "" {
		o.keyring = oldKey
	}
	kr, err := vault.Parse(o.keyring)
	require.NoError(tb, err)
	adapter, err := schwab.New(schwab.Config{
		ClientID: w.fake.ClientID(), ClientSecret: w.fake.ClientSecret(), RedirectURI: w.fake.RedirectURI(),
		AuthURL: w.fake.AuthURL(), TokenURL: w.tokenURL, APIBaseURL: w.fake.APIBaseURL(),
		AccountIDKey: accountIDKey, HTTPClient: w.fake.HTTPClient(), Clock: w.clock.Now,
	})
	require.NoError(tb, err)
	// The sandbox adapter reads the raw clock, nanoseconds and all, as
	// serve's does (time.Now).
	sb, err := sandbox.NewProvider(sandbox.ProviderConfig{BaseURL: w.sandbox.URL + sandbox.Prefix, ClientID: sandboxClientID,
		ClientSecret: sandboxClientSecret, RedirectURI: sandboxRedirect, HTTPClient: w.sandbox.Client(), Now: w.clock.Now})
	require.NoError(tb, err)
	providers, err := commands.NewProviders(adapter, sb)
	require.NoError(tb, err)
	rate := o.ratePerMinute
	if rate == 0 {
		rate = 6000
	}
	pacer, err := ratelimit.NewPacer(pool, map[string]int{"schwab": rate})
	require.NoError(tb, err)
	workers := jobs.NewWorkers()
	client, err := jobs.New(pool, workers, jobs.Config{Work: o.work, FetchPollInterval: 100 * time.Millisecond})
	require.NoError(tb, err)
	logs := &logBuffer{}
	h, err := connections.NewHandler(connections.Deps{
		Store: store, Pool: pool, Providers: providers, Vault: kr, Jobs: client, Pacer: pacer, Now: w.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(tb, err)
	in := &instance{w: w, pool: pool, store: store, jobs: client, h: h, logs: logs, kr: kr}
	if o.work {
		jobs.Handle(workers, h.RunRefresh)
		jobs.Handle(workers, h.ExpireAuthorization)
		jobs.Handle(workers, h.RemindReauthorization)
		jobs.Handle(workers, h.FinishDisconnect)
		if o.register != nil {
			o.register(workers, client)
		} else {
			// Mail is the identity worker's; here it is only counted.
			jobs.Handle(workers, func(context.Context, commands.UserMail) error { return nil })
		}
		events, cancel := client.River().Subscribe(river.EventKindJobCompleted, river.EventKindJobCancelled,
			river.EventKindJobFailed, river.EventKindJobSnoozed)
		tb.Cleanup(cancel)
		in.events = events
		require.NoError(tb, client.Start(context.Background()))
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = client.Stop(ctx)
		})
	}
	return in
}

// logBuffer collects the JSON log lines of concurrent handlers and tells
// waiters when a line with a given message is written.
type logBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	waiters []logWaiter
}

type logWaiter struct {
	msg string
	ch  chan struct{}
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var line struct {
		Msg string `json:"msg"`
	}
	_ = json.Unmarshal(p, &line)
	kept := l.waiters[:0]
	for _, w := range l.waiters {
		if w.msg == line.Msg {
			close(w.ch)
			continue
		}
		kept = append(kept, w)
	}
	l.waiters = kept
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// written returns a channel closed when a line with message msg is
// written from now on.
func (l *logBuffer) written(msg string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	l.waiters = append(l.waiters, logWaiter{msg: msg, ch: ch})
	return ch
}

// principal is a user of the tests.
func principal(id uuid.UUID) commands.Principal { return commands.Principal{UserID: id} }

// connect runs a whole authorisation at the fake for user p and returns
// the connection's id: Connect, the user's approval at Schwab, Callback.
func (in *instance) connect(p commands.Principal, alias string) uuid.UUID {
	tb := in.w.tb
	tb.Helper()
	ctx := context.Background()
	auth, err := in.h.Connect(ctx, p, "schwab", alias, rc)
	require.NoError(tb, err)
	u, err := url.Parse(in.w.fake.ApproveURL(tb, auth.URL))
	require.NoError(tb, err)
	q, err := url.ParseQuery(u.RawQuery)
	require.NoError(tb, err)
	out := in.h.Callback(ctx, "schwab", q, rc)
	require.True(tb, out.OK, "callback: %+v", out)
	require.Equal(tb, auth.Connection.ID, out.ConnectionID)
	return out.ConnectionID
}

// requestField finds the signed request of the sandbox's authorize form.
var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// approveSandbox plays the user approving at the sandbox's authorize page
// and returns the callback's query.
func (in *instance) approveSandbox(authURL string) url.Values {
	tb := in.w.tb
	tb.Helper()
	client := *in.w.sandbox.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(authURL)
	require.NoError(tb, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(tb, err)
	require.Equal(tb, http.StatusOK, resp.StatusCode, "%s", page)
	m := requestField.FindSubmatch(page)
	require.NotNil(tb, m, "no request field on the authorize page")
	resp, err = client.PostForm(in.w.sandbox.URL+sandbox.Prefix+sandbox.AuthorizePath,
		url.Values{"request": {html.UnescapeString(string(m[1]))}, "decision": {"approve"}})
	require.NoError(tb, err)
	resp.Body.Close()
	require.Equal(tb, http.StatusSeeOther, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(tb, err)
	return loc.Query()
}

// connectSandbox connects user p to the sandbox and returns the connection's id.
func (in *instance) connectSandbox(p commands.Principal, alias string) uuid.UUID {
	tb := in.w.tb
	tb.Helper()
	ctx := context.Background()
	auth, err := in.h.Connect(ctx, p, sandbox.Slug, alias, rc)
	require.NoError(tb, err)
	out := in.h.Callback(ctx, sandbox.Slug, in.approveSandbox(auth.URL), rc)
	require.True(tb, out.OK, "callback: %+v", out)
	return out.ConnectionID
}

// eventTypes lists the types on connection id's stream, oldest first.
func (in *instance) eventTypes(id uuid.UUID) []string {
	in.w.tb.Helper()
	recs, err := in.store.ReadStream(context.Background(), eventstore.Stream{Type: eventstore.StreamConnection, ID: id}, 0)
	require.NoError(in.w.tb, err)
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.EventType
	}
	return out
}

// lastEvent decodes the newest event of connection id's stream.
func (in *instance) lastEvent(id uuid.UUID) connection.Event {
	in.w.tb.Helper()
	recs, err := in.store.ReadStream(context.Background(), eventstore.Stream{Type: eventstore.StreamConnection, ID: id}, 0)
	require.NoError(in.w.tb, err)
	require.NotEmpty(in.w.tb, recs)
	e, err := in.store.Decode(recs[len(recs)-1])
	require.NoError(in.w.tb, err)
	return e.(connection.Event)
}

// vaultRow is a connection's row of provider_credentials as stored.
type vaultRow struct {
	KeyID           string
	Blob            []byte
	Fingerprint     string
	AccessExpiresAt time.Time
	Generation      int64
	RefreshingUntil *time.Time
}

// credentialsRow reads connection id's vault row; ok is false when there is none.
func (in *instance) credentialsRow(id uuid.UUID) (vaultRow, bool) {
	in.w.tb.Helper()
	var r vaultRow
	rows, err := in.pool.Query(context.Background(), `SELECT key_id, blob, fingerprint, access_expires_at, generation, refreshing_until
		FROM provider_credentials WHERE connection_id = $1`, id)
	require.NoError(in.w.tb, err)
	defer rows.Close()
	if !rows.Next() {
		require.NoError(in.w.tb, rows.Err())
		return vaultRow{}, false
	}
	require.NoError(in.w.tb, rows.Scan(&r.KeyID, &r.Blob, &r.Fingerprint, &r.AccessExpiresAt, &r.Generation, &r.RefreshingUntil))
	return r, true
}

// credentials opens connection id's stored credentials with keyring kr.
func (in *instance) credentials(id uuid.UUID, kr *vault.Keyring) commands.Credentials {
	in.w.tb.Helper()
	r, ok := in.credentialsRow(id)
	require.True(in.w.tb, ok, "no credentials stored for %s", id)
	plain, err := kr.Open(id, r.Blob)
	require.NoError(in.w.tb, err)
	var c commands.Credentials
	require.NoError(in.w.tb, json.Unmarshal(plain, &c))
	return c
}

// jobRow is one row of river_job as the tests look at it.
type jobRow struct {
	ID          int64
	State       string
	ScheduledAt time.Time
	Args        json.RawMessage
}

// jobsOf lists the jobs of kind whose args name connection id (any
// connection when id is Nil), oldest first.
func (in *instance) jobsOf(kind string, id uuid.UUID) []jobRow {
	in.w.tb.Helper()
	rows, err := in.pool.Query(context.Background(), `SELECT id, state::text, scheduled_at, args FROM river_job
		WHERE kind = $1 AND ($2::uuid IS NULL OR args->>'connection_id' = $2::text OR args->>'user_id' = $3::text) ORDER BY id`,
		kind, nilIfZero(id), id.String())
	require.NoError(in.w.tb, err)
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var j jobRow
		require.NoError(in.w.tb, rows.Scan(&j.ID, &j.State, &j.ScheduledAt, &j.Args))
		out = append(out, j)
	}
	require.NoError(in.w.tb, rows.Err())
	return out
}

func nilIfZero(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// await waits for river to report kind for a job that match accepts,
// keeping every event seen so that a later wait finds earlier ones.
func (in *instance) await(kind river.EventKind, match func(*rivertype.JobRow) bool) *river.Event {
	in.w.tb.Helper()
	ok := func(e *river.Event) bool { return e.Kind == kind && e.Job != nil && match(e.Job) }
	for i, e := range in.seen {
		if ok(e) {
			in.seen = append(in.seen[:i:i], in.seen[i+1:]...)
			return e
		}
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-in.events:
			if ok(e) {
				return e
			}
			in.seen = append(in.seen, e)
		case <-timeout:
			in.w.tb.Fatalf("no %s event from river", kind)
			return nil
		}
	}
}

// jobID matches the job with id.
func jobID(id int64) func(*rivertype.JobRow) bool {
	return func(j *rivertype.JobRow) bool { return j.ID == id }
}

// jobKind matches jobs of kind.
func jobKind(kind string) func(*rivertype.JobRow) bool {
	return func(j *rivertype.JobRow) bool { return j.Kind == kind }
}

// containsAny reports which of secrets occur in s.
func containsAny(s string, secrets []string) []string {
	var found []string
	for _, x := range secrets {
		if x != "" && strings.Contains(s, x) {
			found = append(found, x)
		}
	}
	return found
}

// testdbPool opens a pool on dbURL, closed when the test ends.
func testdbPool(tb testing.TB, dbURL string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}
