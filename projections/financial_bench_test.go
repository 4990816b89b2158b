package projections_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/projections/financialtest"
)

// seedFinancial appends a sync-shaped history through the store: per user
// a connection, a checking and a brokerage account with balances and
// holdings, and perAccount transactions on each (a tenth of them updated
// later, as pending ones post). It returns the number of events.
func seedFinancial(b *testing.B, store *eventstore.Store, users, perAccount int) int64 {
	b.Helper()
	l := financialtest.New(b, store)
	for u := range users {
		owner := uuid.New()
		conn := l.Connection(owner)
		for k, typ := range []string{commands.AccountTypeChecking, commands.AccountTypeBrokerage} {
			at := financialtest.Epoch.Add(time.Duration(u*2+k) * time.Second)
			acct := l.Account(conn, owner, financialtest.Details(fmt.Sprintf("%s-%d", typ, u), typ), at)
			for d := range 3 {
				l.Balance(owner, acct, fmt.Sprintf("%d.%02d", 1000+d*17, d), "", "USD", at.AddDate(0, 0, d))
			}
			l.Holdings(owner, acct, []account.Holding{{Symbol: "AAPL", Quantity: financialtest.Dec("3"),
				MarketValue: financialtest.Dec("540.12"), Currency: "USD"}}, at)
			data := make([]transaction.Data, perAccount)
			for i := range data {
				data[i] = financialtest.Tx(fmt.Sprintf("t-%d", i), fmt.Sprintf("2025-%02d-%02d", 1+i%12, 1+i%28),
					commands.TransactionTypeWithdrawal, fmt.Sprintf("-%d.%02d", i%500, i%100))
				data[i].Pending = i%10 == 0
				data[i].Description = fmt.Sprintf("Card purchase %d at a shop with a longer description", i)
			}
			ids := l.BulkTransactions(owner, acct, conn, data, at)
			var postedIDs []uuid.UUID
			var posted []transaction.Data
			for i := 0; i < len(ids); i += 10 {
				p := data[i]
				p.Pending = false
				postedIDs, posted = append(postedIDs, ids[i]), append(posted, p)
			}
			l.BulkUpdateTransactions(owner, postedIDs, posted, at.Add(time.Hour))
		}
		l.SyncCompleted(owner, conn, financialtest.Epoch.AddDate(0, 0, 3))
	}
	var n int64
	if err := store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// rebuildBenchUsers is how many users BenchmarkFinancialRebuild seeds
// (about 1,000 events each); DASHTAM_BENCH_REBUILD_USERS overrides it, e.g.
// 1000 for a log of about a million events.
func rebuildBenchUsers() int {
	if n, err := strconv.Atoi(os.Getenv("DASHTAM_BENCH_REBUILD_USERS")); err == nil && n > 0 {
		return n
	}
	return 100
}

// BenchmarkFinancialRebuild replays a sync-shaped log of about 1,000 events
// per user (100 users unless DASHTAM_BENCH_REBUILD_USERS says otherwise)
// into the financial_data read model (every data table: accounts,
// transactions, holdings, balance history, connection owners) and reports
// events per second, beside reading the same log without writing in the
// same run and database.
func BenchmarkFinancialRebuild(b *testing.B) {
	store := mustDomainStore(b)
	seedStart := time.Now()
	events := seedFinancial(b, store, rebuildBenchUsers(), 450)
	b.Logf("seeded %d events in %s", events, time.Since(seedStart).Round(time.Second))
	// A log in service has long been vacuumed; right after a million
	// inserts autovacuum would visit it during whichever replay came
	// first, at a moment no run controls.
	if _, err := testdb.Owner(b, store.Pool()).Exec(context.Background(), `VACUUM (ANALYZE) events`); err != nil {
		b.Fatal(err)
	}
	m, err := projections.NewManager(store, []projections.Projector{projections.Connections{}, projections.FinancialData{}}, ownerOf(b, store))
	if err != nil {
		b.Fatal(err)
	}
	cpu := newCPUMeter(b, store.Pool())
	var goStart, pgStart time.Duration
	startCPU := func() { goStart, pgStart = cpu.sample() }
	rate := func(b *testing.B) {
		b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		if cpu != nil {
			// CPU per event moves far less with the other work on the
			// machine than the rate does: it is what a change is judged by.
			goNow, pgNow := cpu.sample()
			n := float64(events) * float64(b.N)
			b.ReportMetric(float64((goNow-goStart).Microseconds())/n, "go-cpu-us/event")
			b.ReportMetric(float64((pgNow-pgStart).Microseconds())/n, "pg-cpu-us/event")
		}
	}
	readAll := func(b *testing.B, batch int) {
		heldBack := time.NewTicker(time.Millisecond)
		defer heldBack.Stop()
		startCPU()
		for b.Loop() {
			var pos eventstore.Position
			var n int64
			for n < events {
				recs, err := store.ReadAll(context.Background(), pos, batch)
				if err != nil {
					b.Fatal(err)
				}
				if len(recs) == 0 {
					<-heldBack.C // a transaction elsewhere holds the horizon
					continue
				}
				n += int64(len(recs))
				pos = recs[len(recs)-1].Position()
			}
		}
		rate(b)
	}
	// The live batch size, and a rebuild's: the read a rebuild cannot beat.
	b.Run("baseline_read_all", func(b *testing.B) { readAll(b, projections.DefaultBatchSize) })
	b.Run("baseline_read_all_rebuild_batch", func(b *testing.B) { readAll(b, projections.DefaultRebuildBatchSize) })
	b.Run(projections.FinancialDataName, func(b *testing.B) {
		startCPU()
		for b.Loop() {
			if err := m.Rebuild(context.Background(), projections.FinancialDataName, nil); err != nil {
				b.Fatal(err)
			}
		}
		rate(b)
	})
	// Every data projection of this code base, as `projections rebuild
	// connections financial_data` runs them: one replay of the log that
	// both projectors write from. The rate counts the log once.
	data := []string{"connections", projections.FinancialDataName}
	b.Run("all_data", func(b *testing.B) {
		startCPU()
		for b.Loop() {
			if err := m.RebuildAll(context.Background(), data, nil); err != nil {
				b.Fatal(err)
			}
		}
		rate(b)
	})
	// The same, one rebuild after the other, each replaying the whole log:
	// what all_data cost before the projectors shared the read.
	b.Run("all_data_one_by_one", func(b *testing.B) {
		startCPU()
		for b.Loop() {
			for _, name := range data {
				if err := m.Rebuild(context.Background(), name, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
		rate(b)
	})
}

// cpuMeter samples the CPU time of this process and of the local
// PostgreSQL cluster serving pool: the postmaster's own, that of the
// children it reaped (backends that ended) and that of its living
// children. It is nil when the cluster is not local or /proc is missing.
type cpuMeter struct{ postmaster int }

func newCPUMeter(b *testing.B, pool *pgxpool.Pool) *cpuMeter {
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	f, err := procStat(backend)
	if err != nil {
		b.Logf("no CPU figures: %v", err)
		return nil
	}
	ppid, _ := strconv.Atoi(f[1])
	return &cpuMeter{postmaster: ppid}
}

// sample returns the CPU used so far by this process and by the cluster.
func (m *cpuMeter) sample() (self, cluster time.Duration) {
	if m == nil {
		return 0, 0
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ticks := func(f []string, fields ...int) (n int64) {
		for _, i := range fields {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
		return n
	}
	var total int64
	if f, err := procStat(m.postmaster); err == nil {
		total += ticks(f, 11, 12, 13, 14) // utime, stime, cutime, cstime
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if f, err := procStat(pid); err == nil && f[1] == strconv.Itoa(m.postmaster) {
			total += ticks(f, 11, 12)
		}
	}
	const clockTicks = 100 // USER_HZ on Linux
	return self, time.Duration(total) * time.Second / clockTicks
}

// procStat returns the fields of /proc/pid/stat after the command's name:
// [0] is the state, [1] the parent's pid, [11] and [12] user and system time.
func procStat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}
