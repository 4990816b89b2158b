package syncs_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/adapters/providers/schwab"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// rc is the request context of the tests' user.
var rc = commands.RequestContext{IP: netip.MustParseAddr("192.0.2.7"), UserAgent: "syncs-test", TraceID: "trace-sync"}

// testKeyring seals the tests' credentials.
var testKeyring = "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5c}, 32))

// Sandbox client of the tests.
const (
	sandboxClientID     = "dashtam-sync-test"
	sandboxClientSecret = "sync-test-secret-0123456789"
	sandboxRedirect     = "https://dashtam.example/oauth/sandbox/callback"
)

// clock is the injected clock of every part of a world.
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

// world is one database with the connections and syncs use cases over it,
// a sandbox institution whose data endpoints are either its own
// (realSandbox) or a scripted bank, and a fake Schwab.
type world struct {
	tb     testing.TB
	clock  *clock
	pool   *pgxpool.Pool
	store  *eventstore.Store
	bank   *bank
	schwab *schwabtest.Fake
	srv    *httptest.Server
	conns  *connections.Handler
	syncs  *syncs.Handler
	// syncDeps built syncs, so a test can start another instance.
	syncDeps syncs.Deps
	logs     *bytes.Buffer
}

// worldOptions vary a world.
type worldOptions struct {
	// realSandbox serves the sandbox institution's own deterministic data.
	realSandbox bool
	// start is the clock's start; 2026-03-10 10:00 UTC when zero.
	start time.Time
	// batch is the sync's batch size; the default when zero.
	batch int
	// maxConns sizes the pool, 10 when zero.
	maxConns int32
	// schwabRate paces Schwab calls per minute, 60,000 when zero.
	schwabRate int
	// httpTimeout bounds each HTTP exchange of both providers' adapters,
	// 30 s when zero.
	httpTimeout time.Duration
}

func newWorld(tb testing.TB, o worldOptions) *world {
	tb.Helper()
	if o.start.IsZero() {
		o.start = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	}
	clk := &clock{t: o.start}
	if o.maxConns == 0 {
		o.maxConns = 10
	}
	pool := testdb.NewWithConns(tb, o.maxConns)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(pool, reg, eventstore.WithClock(clk.Now))
	require.NoError(tb, err)

	w := &world{tb: tb, clock: clk, pool: pool, store: store, bank: newBank(), logs: &bytes.Buffer{}}
	inst, err := sandbox.NewInstitution(sandbox.Config{
		Key: []byte("0123456789abcdef0123456789abcdef-syncs-test-key"), ClientID: sandboxClientID, ClientSecret: sandboxClientSecret,
		RedirectURIs: []string{sandboxRedirect}, Now: clk.Now,
	})
	require.NoError(tb, err)
	instHandler := inst.Handler()
	if o.httpTimeout == 0 {
		o.httpTimeout = 30 * time.Second
	}

	data := sandbox.Prefix + sandbox.APIPath
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !o.realSandbox && strings.HasPrefix(r.URL.Path, data+"/") {
			w.bank.serveData(rw, r, data)
			return
		}
		instHandler.ServeHTTP(rw, r)
	}))
	tb.Cleanup(w.srv.Close)
	sandboxClient := *w.srv.Client()
	sandboxClient.Timeout = o.httpTimeout
	sb, err := sandbox.NewProvider(sandbox.ProviderConfig{BaseURL: w.srv.URL + sandbox.Prefix, ClientID: sandboxClientID,
		ClientSecret: sandboxClientSecret, RedirectURI: sandboxRedirect, Now: clk.Now, HTTPClient: &sandboxClient})
	require.NoError(tb, err)

	w.schwab = schwabtest.New(tb, schwabtest.Options{Now: clk.Now})
	schwabClient := w.schwab.HTTPClient()
	schwabClient.Timeout = o.httpTimeout
	sw, err := schwab.New(schwab.Config{
		ClientID: w.schwab.ClientID(), ClientSecret: w.schwab.ClientSecret(), RedirectURI: w.schwab.RedirectURI(),
		AuthURL: w.schwab.AuthURL(), TokenURL: w.schwab.TokenURL(), APIBaseURL: w.schwab.APIBaseURL(),
		AccountIDKey: []byte("syncs-tests-account-id-key-0123456789"), HTTPClient: schwabClient, Clock: clk.Now,
	})
	require.NoError(tb, err)
	providers, err := commands.NewProviders(sb, sw)
	require.NoError(tb, err)
	if o.schwabRate == 0 {
		o.schwabRate = 60_000
	}
	pacer, err := ratelimit.NewPacer(pool, map[string]int{"schwab": o.schwabRate})
	require.NoError(tb, err)
	kr, err := vault.Parse(testKeyring)
	require.NoError(tb, err)
	client, err := jobs.New(pool, nil, jobs.Config{})
	require.NoError(tb, err)
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: w.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.conns, err = connections.NewHandler(connections.Deps{
		Store: store, Pool: pool, Providers: providers, Vault: kr, Jobs: client, Pacer: pacer, Now: clk.Now, Logger: logger,
		OnConnected: syncs.AfterConnected(client), OnDisconnected: syncs.AfterDisconnected(client),
	})
	require.NoError(tb, err)
	w.syncDeps = syncs.Deps{
		Store: store, Pool: pool, Caller: w.conns, Jobs: client, Due: projections.SyncReader{Pool: pool},
		Now: clk.Now, Logger: logger, BatchSize: o.batch,
	}
	w.syncs, err = syncs.NewHandler(w.syncDeps)
	require.NoError(tb, err)
	return w
}

// lockedWriter serialises writes of concurrent loggers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// user is a new principal.
func user() commands.Principal { return commands.Principal{UserID: uuid.New(), SessionID: uuid.New()} }

var (
	requestField = regexp.MustCompile(`name="request" value="([^"]*)"`)
	formAction   = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// connectSandbox runs a whole authorisation at the sandbox for p, as the
// browser would, with persona, and returns the active connection's id.
func (w *world) connectSandbox(p commands.Principal, alias, persona string) uuid.UUID {
	tb := w.tb
	tb.Helper()
	ctx := context.Background()
	auth, err := w.conns.Connect(ctx, p, "sandbox", alias, rc)
	require.NoError(tb, err)
	client := *w.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(auth.URL)
	require.NoError(tb, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(tb, err)
	require.Equal(tb, http.StatusOK, resp.StatusCode, "%s", page)
	req, act := requestField.FindSubmatch(page), formAction.FindSubmatch(page)
	require.NotNil(tb, req, "no request field on the authorize page")
	require.NotNil(tb, act, "no form on the authorize page")
	action, err := url.Parse(html.UnescapeString(string(act[1])))
	require.NoError(tb, err)
	base, err := url.Parse(auth.URL)
	require.NoError(tb, err)
	resp, err = client.PostForm(base.ResolveReference(action).String(), url.Values{
		"request": {html.UnescapeString(string(req[1]))}, "user": {alias}, "persona": {persona}, "decision": {"approve"}})
	require.NoError(tb, err)
	resp.Body.Close()
	require.Equal(tb, http.StatusSeeOther, resp.StatusCode)
	back, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(tb, err)
	out := w.conns.Callback(ctx, "sandbox", back.Query(), rc)
	require.True(tb, out.OK, "callback: %+v", out)
	return out.ConnectionID
}

// connectSchwab runs a whole authorisation at the fake Schwab for p.
func (w *world) connectSchwab(p commands.Principal, alias string) uuid.UUID {
	tb := w.tb
	tb.Helper()
	ctx := context.Background()
	auth, err := w.conns.Connect(ctx, p, "schwab", alias, rc)
	require.NoError(tb, err)
	back, err := url.Parse(w.schwab.ApproveURL(tb, auth.URL))
	require.NoError(tb, err)
	out := w.conns.Callback(ctx, "schwab", back.Query(), rc)
	require.True(tb, out.OK, "callback: %+v", out)
	return out.ConnectionID
}

// request starts a sync as p would (forced, so the tests need not wait
// five minutes between syncs).
func (w *world) request(p commands.Principal, id uuid.UUID) syncs.View {
	w.tb.Helper()
	v, err := w.syncs.Request(context.Background(), p, id, true, rc)
	require.NoError(w.tb, err)
	return v
}

// run runs the sync job of connection id once and returns its error.
func (w *world) run(id uuid.UUID) error {
	return w.syncs.RunSync(context.Background(), syncs.Job{ConnectionID: id})
}

// sync requests a sync, runs its job to the end and returns how it ended.
func (w *world) sync(p commands.Principal, id uuid.UUID) connection.Event {
	w.tb.Helper()
	v := w.request(p, id)
	require.NoError(w.tb, w.run(id))
	return w.outcome(id, v.ID)
}

// outcome returns the SyncCompleted or SyncFailed of sync syncID, nil
// while it has none.
func (w *world) outcome(id, syncID uuid.UUID) connection.Event {
	w.tb.Helper()
	for _, e := range w.connectionEvents(id) {
		switch e := e.(type) {
		case connection.SyncCompleted:
			if e.SyncID == syncID {
				return e
			}
		case connection.SyncFailed:
			if e.SyncID == syncID {
				return e
			}
		}
	}
	return nil
}

// connectionEvents decodes connection id's stream.
func (w *world) connectionEvents(id uuid.UUID) []connection.Event {
	w.tb.Helper()
	recs, err := w.store.ReadStream(context.Background(), eventstore.Stream{Type: eventstore.StreamConnection, ID: id}, 0)
	require.NoError(w.tb, err)
	out := make([]connection.Event, len(recs))
	for i, r := range recs {
		e, err := w.store.Decode(r)
		require.NoError(w.tb, err)
		out[i] = e.(connection.Event)
	}
	return out
}

// eventCounts counts the log's events by stream type.
func (w *world) eventCounts() map[eventstore.StreamType]int {
	w.tb.Helper()
	rows, err := w.pool.Query(context.Background(), `SELECT stream_type, count(*) FROM events GROUP BY stream_type`)
	require.NoError(w.tb, err)
	out := map[eventstore.StreamType]int{}
	for rows.Next() {
		var (
			t string
			n int
		)
		require.NoError(w.tb, rows.Scan(&t, &n))
		out[eventstore.StreamType(t)] = n
	}
	require.NoError(w.tb, rows.Err())
	return out
}

// state is what the log says of a connection's data, folded from every
// account and transaction stream: the truth the tests compare.
type state struct {
	accounts     map[string]accountState
	transactions map[string]txState
}

// accountState is one account folded, without times and sync ids.
type accountState struct {
	Active   bool
	Details  account.Details
	Balance  string
	Holdings []string
}

// txState is one transaction folded, without times and sync ids.
type txState struct {
	Account string
	Status  transaction.Status
	Data    transaction.Data
}

// folded folds every account and transaction stream of the log (one
// connection per test database) through the aggregates.
func (w *world) folded() state {
	tb := w.tb
	tb.Helper()
	ctx := context.Background()
	accounts, err := eventstore.NewRepository(w.store, commands.AccountAggregate())
	require.NoError(tb, err)
	txs, err := eventstore.NewRepository(w.store, commands.TransactionAggregate())
	require.NoError(tb, err)
	streams := func(t eventstore.StreamType) []uuid.UUID {
		rows, err := w.pool.Query(ctx, `SELECT DISTINCT stream_id FROM events WHERE stream_type = $1`, string(t))
		require.NoError(tb, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		require.NoError(tb, err)
		return ids
	}
	s := state{accounts: map[string]accountState{}, transactions: map[string]txState{}}
	names := map[uuid.UUID]string{}
	la, err := accounts.LoadMany(ctx, w.pool, streams(eventstore.StreamAccount))
	require.NoError(tb, err)
	for id, l := range la {
		a := l.State
		d := a.Details()
		d.Raw = nil
		st := accountState{Active: a.Active(), Details: d}
		if b := a.Balance(); b != nil {
			st.Balance = b.Current.String()
		}
		for _, h := range a.Holdings() {
			st.Holdings = append(st.Holdings, h.Symbol+" "+h.Quantity.String()+" "+h.MarketValue.String())
		}
		s.accounts[d.ProviderAccountID] = st
		names[id] = d.ProviderAccountID
	}
	lt, err := txs.LoadMany(ctx, w.pool, streams(eventstore.StreamTransaction))
	require.NoError(tb, err)
	for _, l := range lt {
		t := l.State
		d := t.Data()
		d.Raw = nil
		s.transactions[names[t.AccountID()]+"/"+d.ProviderTransactionID] = txState{Account: names[t.AccountID()], Status: t.Status(), Data: d}
	}
	return s
}

// indexMatchesLog checks the sync's index against a rebuild from the log.
func (w *world) indexMatchesLog() {
	tb := w.tb
	tb.Helper()
	ctx := context.Background()
	read := func() string {
		var b strings.Builder
		for _, q := range []string{
			`SELECT account_id::text || connection_id::text || provider_account_id || active::text FROM sync_accounts ORDER BY 1`,
			`SELECT transaction_id::text || account_id::text || connection_id::text || provider_transaction_id || status || date::text || encode(fingerprint, 'hex') FROM sync_transactions ORDER BY 1`,
		} {
			rows, err := w.pool.Query(ctx, q)
			require.NoError(tb, err)
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(tb, err)
			b.WriteString(strings.Join(lines, "\n"))
			b.WriteString("\n--\n")
		}
		return b.String()
	}
	before := read()
	_, err := syncs.RebuildIndex(ctx, w.store)
	require.NoError(tb, err)
	require.Equal(tb, read(), before, "the index written by syncs differs from the one rebuilt from the log")
}

// noOpenTransactions makes every request to the bank check that no
// database transaction of the test database is open meanwhile: a sync
// must call providers with nothing open (docs/sync.md). It looks at the
// application role's sessions, the only ones a sync opens: an
// autovacuum worker analysing the test's tables also holds an xid, and
// is no part of the rule.
func (w *world) noOpenTransactions() *[]string {
	var (
		mu         sync.Mutex
		violations []string
	)
	watch, err := pgxpool.New(context.Background(), w.pool.Config().ConnString())
	require.NoError(w.tb, err)
	w.tb.Cleanup(watch.Close)
	w.bank.mu.Lock()
	w.bank.onRequest = func(r *http.Request) {
		rows, err := watch.Query(context.Background(), `SELECT pid, coalesce(state, ''), backend_xid IS NOT NULL, left(query, 120)
			FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = current_user
			  AND (xact_start IS NOT NULL OR backend_xid IS NOT NULL OR state LIKE 'idle in transaction%')`)
		if err != nil {
			mu.Lock()
			violations = append(violations, "query pg_stat_activity: "+err.Error())
			mu.Unlock()
			return
		}
		defer rows.Close()
		for rows.Next() {
			var (
				pid   int
				st    string
				xid   bool
				query string
			)
			if err := rows.Scan(&pid, &st, &xid, &query); err == nil {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("%s %s: backend %d %q (xid %v) running %q", r.Method, r.URL.Path, pid, st, xid, query))
				mu.Unlock()
			}
		}
	}
	w.bank.mu.Unlock()
	return &violations
}

// dates returns the calendar date d days from the clock's day.
func (w *world) day(d int) string {
	return w.clock.Now().UTC().AddDate(0, 0, d).Format(time.DateOnly)
}

// sortedKeys returns m's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// startProjections runs every projector over w's database until the test ends.
func startProjections(tb testing.TB, w *world) *projections.Manager {
	tb.Helper()
	return startProjectors(tb, w, projections.All())
}

// startProjectors runs the projectors ps over w's database until the test ends.
func startProjectors(tb testing.TB, w *world, ps []projections.Projector) *projections.Manager {
	tb.Helper()
	m, err := projections.NewManager(w.store, ps, projections.WithOwnerPool(testdb.Owner(tb, w.pool)))
	require.NoError(tb, err)
	require.NoError(tb, m.Ensure(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Start(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return m
}

// waitCaughtUp waits until every projector has applied the whole log.
func waitCaughtUp(tb testing.TB, w *world, m *projections.Manager) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		st, err := m.Status(context.Background())
		require.NoError(tb, err)
		for _, s := range st {
			if s.Behind != 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 5*time.Millisecond)
}
