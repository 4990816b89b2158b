package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/adapters/webhook"
	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/commands/webhooks"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// clock is a settable clock.
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
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is a webhooks handler over a fresh database with its fan-out and
// river workers running, sending over real HTTP.
type harness struct {
	t       testing.TB
	store   *eventstore.Store
	pool    *pgxpool.Pool
	h       *webhooks.Handler
	clock   *clock
	deriver *fanout.Deriver

	mu    sync.Mutex
	mails []commands.UserMail
}

// options tune a harness.
type options struct {
	policy  webhooks.URLPolicy
	timeout time.Duration
	// sent runs after every attempt (tests move the clock with it).
	sent func(webhooks.Result)
	// disableAfter replaces the default window.
	disableAfter time.Duration
}

// recordingSender wraps a sender to observe attempts.
type recordingSender struct {
	inner webhooks.Sender
	after func(webhooks.Result)
}

func (r recordingSender) Send(ctx context.Context, s webhooks.Send) webhooks.Result {
	res := r.inner.Send(ctx, s)
	if r.after != nil {
		r.after(res)
	}
	return res
}

func newHarness(t testing.TB, o options) *harness {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 24
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(pool, reg)
	require.NoError(t, err)
	keys, err := vault.Parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	require.NoError(t, err)
	hn := &harness{t: t, store: store, pool: pool, clock: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}}

	workers := jobs.NewWorkers()
	j, err := jobs.New(pool, workers, jobs.Config{Work: true, FetchPollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	if o.policy == nil {
		o.policy = webhook.Policy{AllowPrivate: true}
	}
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	sender := recordingSender{inner: webhook.NewSender(webhook.SenderConfig{AllowPrivate: true, Timeout: o.timeout}), after: o.sent}
	schedule := make([]time.Duration, len(webhooks.DefaultSchedule))
	for i := range schedule {
		schedule[i] = 10 * time.Millisecond
	}
	hn.h, err = webhooks.NewHandler(webhooks.Deps{Pool: pool, Vault: keys, Jobs: j, Sender: sender, URLs: o.policy,
		Now: hn.clock.Now, Logger: discard(), Schedule: schedule, DisableAfter: o.disableAfter,
		Jitter: func(d time.Duration) time.Duration { return d }})
	require.NoError(t, err)
	jobs.Handle(workers, hn.h.Deliver)
	jobs.Handle(workers, func(_ context.Context, m commands.UserMail) error {
		hn.mu.Lock()
		defer hn.mu.Unlock()
		hn.mails = append(hn.mails, m)
		return nil
	})
	cursors, err := fanout.NewCursors([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	hn.deriver, err = fanout.NewDeriver(store, cursors)
	require.NoError(t, err)
	fan, err := webhooks.NewFanout(hn.deriver, hn.h)
	require.NoError(t, err)
	runner, err := projections.NewReactorRunner(store, fan, projections.WithPollInterval(20*time.Millisecond))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, j.Start(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = j.Stop(stop)
	})
	return hn
}

// receiver is a webhook receiver over real HTTP that verifies signatures.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	answer   func(n int) int // status for the n-th request (1-based)
	requests int
	ok       map[string]int // successful deliveries by webhook-id
	bad      int            // requests whose signature did not verify
	bodies   map[string][]byte
	secrets  [][]byte
	sigs     []string
	hang     chan struct{}
}

func newReceiver(t testing.TB, answer func(n int) int) *receiver {
	r := &receiver{answer: answer, ok: map[string]int{}, bodies: map[string][]byte{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.mu.Lock()
		if r.hang != nil {
			close(r.hang)
			r.hang = nil
		}
		r.mu.Unlock()
		r.srv.Close()
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests++
	n := r.requests
	hang := r.hang
	id := req.Header.Get("webhook-id")
	ts, _ := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
	sig := req.Header.Get("webhook-signature")
	r.sigs = append(r.sigs, sig)
	verified := len(r.secrets) == 0
	for _, k := range r.secrets {
		verified = verified || webhook.Verify(k, id, time.Unix(ts, 0), body, sig)
	}
	if !verified {
		r.bad++
	}
	r.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
		return
	}
	status := r.answer(n)
	if status >= 200 && status < 300 {
		r.mu.Lock()
		r.ok[id]++
		r.bodies[id] = body
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

// trust makes the receiver verify with secret (as shown by the API).
func (r *receiver) trust(t *testing.T, secret string) {
	k, err := webhook.DecodeSecret(secret)
	require.NoError(t, err)
	r.mu.Lock()
	r.secrets = append(r.secrets, k)
	r.mu.Unlock()
}

// seed appends events that derive integration events for user.
func (hn *harness) seed(user uuid.UUID, balances int) {
	hn.t.Helper()
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: user, Actor: "test"})
	conn := uuid.New()
	cs := eventstore.Stream{Type: eventstore.StreamConnection, ID: conn}
	now := hn.clock.Now()
	_, err := hn.store.Append(ctx, cs, 0, connection.ProviderConnectionAttempted{ConnectionID: conn, UserID: user, ProviderSlug: "sandbox", Alias: "a", ExpiresAt: now, At: now})
	require.NoError(hn.t, err)
	_, err = hn.store.Append(ctx, cs, 1, connection.ProviderConnectionSucceeded{ConnectionID: conn, At: now,
		Credentials: connection.Credentials{KeyID: "k", Fingerprint: "f", AccessExpiresAt: now}})
	require.NoError(hn.t, err)
	acct := eventstore.AccountStreamID(conn, "1")
	as := eventstore.Stream{Type: eventstore.StreamAccount, ID: acct}
	_, err = hn.store.Append(ctx, as, 0, account.AccountOpened{AccountID: acct, ConnectionID: conn, UserID: user, SyncID: uuid.New(),
		Details: account.Details{ProviderAccountID: "1", Name: "n", Type: "checking", Currency: "USD"}, At: now})
	require.NoError(hn.t, err)
	for i := range balances {
		_, err = hn.store.Append(ctx, as, int64(i+1), account.AccountBalanceRecorded{AccountID: acct, SyncID: uuid.New(),
			Balance: account.Balance{Current: decimal.NewFromInt(int64(i)), Currency: "USD"}, At: now})
		require.NoError(hn.t, err)
	}
}

// deliveries counts the user's deliveries by status.
func (hn *harness) deliveries(user uuid.UUID) map[string]int {
	rows, err := hn.pool.Query(context.Background(), `SELECT status, count(*) FROM webhook_deliveries WHERE user_id = $1 GROUP BY status`, user)
	require.NoError(hn.t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(hn.t, rows.Scan(&s, &n))
		out[s] = n
	}
	return out
}

// eventIDs are the ids of every integration event the log derives for user.
func (hn *harness) eventIDs(user uuid.UUID) map[string]bool {
	var recs []eventstore.Record
	require.Eventually(hn.t, func() bool {
		var n int
		require.NoError(hn.t, hn.pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
		var err error
		recs, err = hn.store.ReadAll(context.Background(), eventstore.Position{}, n+1)
		require.NoError(hn.t, err)
		return len(recs) == n
	}, 30*time.Second, 5*time.Millisecond, "every event behind the horizon")
	evs, _, err := hn.deriver.Derive(context.Background(), hn.pool, recs)
	require.NoError(hn.t, err)
	out := map[string]bool{}
	for _, e := range evs {
		if e.UserID == user {
			out[e.ID.String()] = true
		}
	}
	return out
}

func principal(user uuid.UUID) commands.Principal { return commands.Principal{UserID: user} }

// decodeType reads the type of a delivered body.
func decodeType(b []byte) string {
	var e struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Type
}
