package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/projections/financialtest"
	"github.com/dashtam/dashtam/web"
)

// benchTransactions is how many transactions the page benchmark stores;
// DASHTAM_BENCH_TRANSACTIONS overrides it for quick profiling runs.
var benchTransactions = envInt("DASHTAM_BENCH_TRANSACTIONS", 1_000_000)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchClients is how many clients request pages at once.
const benchClients = 32

// benchWindow is how long each side of the page benchmark measures.
const benchWindow = 10 * time.Second

// bulkTransactions inserts n TransactionRecorded events of one account
// straight into the log in statements of 50,000 rows, with the payload the
// aggregate writes: the page benchmark needs a million of them, which the
// append path (hashing each) would take many minutes to store. Dates grow
// with the log over three years, as syncs record them. The read model is
// then built by a rebuild, as an operator would.
func bulkTransactions(b *testing.B, s *server, owner, conn, acct uuid.UUID, n int) {
	b.Helper()
	const chunk = 50_000
	for from := 0; from < n; from += chunk {
		_, err := s.pool.Exec(context.Background(), `INSERT INTO events (stream_type, stream_id, version, event_id,
			event_type, schema_version, owner_id, payload, metadata, recorded_at, prev_hash, hash)
			SELECT 'transaction', sid, 1, gen_random_uuid(), 'TransactionRecorded', 1, $3,
			       json_build_object('transaction_id', sid, 'account_id', $4::uuid, 'connection_id', $5::uuid,
			           'sync_id', $4::uuid, 'provider_transaction_id', 'b-' || g, 'transaction_type', 'withdrawal',
			           'subtype', 'card_purchase', 'pending', g % 25 = 0,
			           'amount', (-(g % 50000)::numeric / 100)::numeric(12, 2)::text, 'currency', 'USD',
			           'description', 'Card purchase ' || g || ' at a shop',
			           'transaction_date', (date '2023-01-01' + (g::bigint * 1095 / $6)::int)::text,
			           'at', '2026-03-01T12:00:00Z'),
			       '{"actor":"bench"}', now(), decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')
			  FROM generate_series($1::int, $2::int) AS g, LATERAL (SELECT md5($4::text || g)::uuid AS sid) AS s`,
			from, min(from+chunk, n)-1, owner, acct, conn, n)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU is the CPU time (user and system) the PostgreSQL backends
// serving the database of pool have used so far, read from /proc: the
// other half of a page's cost on a machine that runs both. ok is false
// when the server is not on this machine (or /proc is unreadable).
func backendCPU(b *testing.B, pool *pgxpool.Pool) (cpu time.Duration, ok bool) {
	b.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, false
		}
		// The fields after the command's closing parenthesis; utime and
		// stime are the 14th and 15th of the line, in clock ticks (100 Hz
		// on Linux).
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) < 13 {
			return 0, false
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		cpu += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return cpu, true
}

// pageLoad runs clients concurrent loops of do for window and returns the
// rate, latency quantiles (ms) and the CPU this process (clients, server,
// pgx; not PostgreSQL) spent per request in ms: a figure that, unlike the
// rate, other work on the machine hardly moves. It also reports, as
// pg-cpu-ms/req, the CPU the database's backends spent per request when
// they run on this machine (a backend opened during the window counts
// whole, as all its work is in it; the projectors' and the session
// cache's count too: they are the server's).
func pageLoad(b *testing.B, pool *pgxpool.Pool, clients int, window time.Duration, do func(r *rand.Rand) error) (perSec, p50, p99, cpuMs float64) {
	b.Helper()
	pg0, pgOK := backendCPU(b, pool)
	cpu0 := processCPU(b)
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			var mine []time.Duration
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := do(r); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	slices.Sort(lats)
	q := func(f float64) float64 {
		return float64(lats[min(len(lats)-1, int(f*float64(len(lats))))].Microseconds()) / 1000
	}
	if pg1, ok := backendCPU(b, pool); ok && pgOK {
		b.ReportMetric(float64((pg1-pg0).Microseconds())/1000/float64(len(lats)), "pg-cpu-ms/req")
	}
	return float64(len(lats)) / elapsed.Seconds(), q(0.50), q(0.99), float64(cpu.Microseconds()) / 1000 / float64(len(lats))
}

// BenchmarkTransactionsPage measures GET /api/v1/accounts/{id}/transactions
// (pages of 50, first pages and pages deep in the list) over an account of
// a million transactions: 32 clients over real HTTP with a bearer token
// the real identity handler verifies, beside the same queries sent by 32
// goroutines straight to PostgreSQL through the reader, in the same run.
// Rate limits are off: the per-user reads policy allows 100 a minute.
func BenchmarkTransactionsPage(b *testing.B) {
	ctx := context.Background()
	appURL, ownerURL := testdb.NewEmptyURLs(b)
	o := &globalOptions{dataDir: b.TempDir(), databaseURL: appURL, databaseMigrateURL: ownerURL}
	env := map[string]string{
		"DASHTAM_HTTP_ADDR":      "127.0.0.1:0",
		"DASHTAM_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_JWT_SECRET":     strings.Repeat("j", 40),
		"DASHTAM_MAIL_URL":       "file://" + b.TempDir(),
		// serve refuses to start without the audit checkpoints' key.
		"DASHTAM_AUDIT_SIGNING_KEY": testAuditSigningKey,
	}
	s, err := openServer(ctx, o, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	const email, password = "bench@example.com", "a long and unusual passphrase"
	u, err := s.identity.CreateUser(ctx, email, password, user.RoleUser, true)
	if err != nil {
		b.Fatal(err)
	}
	l := financialtest.New(b, s.store)
	conn := l.Connection(u.ID)
	acct := l.Account(conn, u.ID, financialtest.Details("bench", commands.AccountTypeChecking), financialtest.Epoch)
	loadStart := time.Now()
	bulkTransactions(b, s, u.ID, conn, acct, benchTransactions)
	stored := time.Since(loadStart)
	rebuildStart := time.Now()
	if err := s.manager.Rebuild(ctx, projections.FinancialDataName, nil); err != nil {
		b.Fatal(err)
	}
	rebuilt := time.Since(rebuildStart)
	// A store in service has long been vacuumed. Right after loading a
	// million rows autovacuum would set hint bits and visibility on the
	// log and the read model during the measurement, at a moment no run
	// controls: one run's figures swung 3,300-5,000 pages/s with it.
	if _, err := s.owner.Exec(ctx, `VACUUM (ANALYZE) events, accounts, transactions`); err != nil {
		b.Fatal(err)
	}
	b.Logf("stored %d transactions in %s, rebuilt the read model in %s", benchTransactions, stored.Round(time.Second), rebuilt.Round(time.Second))

	reader, err := projections.NewFinancialReader(s.reads) // as serve reads the data API
	if err != nil {
		b.Fatal(err)
	}
	srv, err := web.New(web.Options{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(),
		Readiness: readiness{pool: s.pool, manager: s.manager}, Identity: s.identity, Data: reader,
		CursorKey: deriveKey([]byte(env["DASHTAM_JWT_SECRET"]), "dashtam list cursor key v1")})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	// serve runs the session cache beside the HTTP server; without it
	// every request would read its session from the database.
	cacheCtx, stopCache := context.WithCancel(ctx)
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- s.identity.RunSessionCache(cacheCtx) }()
	defer func() { stopCache(); <-cacheDone }()
	tokens, err := s.identity.Login(ctx, identity.LoginInput{Email: email, Password: password})
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * benchClients, MaxIdleConnsPerHost: 2 * benchClients}}
	get := func(path string) ([]byte, error) {
		req, err := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tokens.AccessToken)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return body, err
	}
	// hit is get for the load: the body is read to its end and dropped, as
	// load generators do, so that the client's own garbage does not weigh
	// on the server it shares the two cores with.
	hit := func(path string) error {
		req, err := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tokens.AccessToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && (resp.StatusCode != http.StatusOK || n == 0) {
			err = fmt.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, n)
		}
		return err
	}

	// The pages the clients ask for: the first 100 of the whole list and
	// the first 100 from mid-2024 down, by the cursors the API handed out;
	// the baseline asks for the same pages by their keys.
	base := "/api/v1/accounts/" + acct.String() + "/transactions?limit=50"
	var paths []string
	var keys []*projections.TransactionKey
	var filters []projections.TransactionFilter
	for _, f := range []struct{ query, end string }{{"", ""}, {"&end_date=2024-06-30", "2024-06-30"}} {
		next, after := base+f.query, (*projections.TransactionKey)(nil)
		for range 100 {
			paths, keys = append(paths, next), append(keys, after)
			filters = append(filters, projections.TransactionFilter{AccountID: &acct, End: f.end})
			body, err := get(next)
			if err != nil {
				b.Fatal(err)
			}
			var page struct {
				Items []struct {
					ID   uuid.UUID `json:"id"`
					Date string    `json:"transaction_date"`
				} `json:"items"`
				NextCursor *string `json:"next_cursor"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				b.Fatal(err)
			}
			if len(page.Items) != 50 || page.NextCursor == nil {
				b.Fatalf("page of %d items", len(page.Items))
			}
			last := page.Items[49]
			after = &projections.TransactionKey{Date: last.Date, ID: last.ID}
			next = base + f.query + "&cursor=" + url.QueryEscape(*page.NextCursor)
		}
	}

	b.Run("baseline_sql", func(b *testing.B) {
		for b.Loop() {
			rate, p50, p99, cpu := pageLoad(b, s.pool, benchClients, benchWindow, func(r *rand.Rand) error {
				i := r.IntN(len(keys))
				rows, err := reader.ListTransactions(ctx, u.ID, filters[i], keys[i], 51)
				if err == nil && len(rows) != 51 {
					err = fmt.Errorf("page of %d rows", len(rows))
				}
				return err
			})
			b.ReportMetric(rate, "req/s")
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p99, "p99-ms")
			b.ReportMetric(cpu, "go-cpu-ms/req")
		}
	})
	b.Run("http", func(b *testing.B) {
		for b.Loop() {
			rate, p50, p99, cpu := pageLoad(b, s.pool, benchClients, benchWindow, func(r *rand.Rand) error {
				return hit(paths[r.IntN(len(paths))])
			})
			b.ReportMetric(rate, "req/s")
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p99, "p99-ms")
			b.ReportMetric(cpu, "go-cpu-ms/req")
		}
	})
}
