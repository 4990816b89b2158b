package projections_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
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
	m, err := projections.NewManager(store, []projections.Projector{projections.Connections{}, projections.FinancialData{}}, ownerOf(b, store))
	if err != nil {
		b.Fatal(err)
	}
	rate := func(b *testing.B) {
		b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	readAll := func(b *testing.B, batch int) {
		heldBack := time.NewTicker(time.Millisecond)
		defer heldBack.Stop()
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
