package syncs_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// BenchmarkSyncLarge syncs the sandbox's `large` persona (about 114,000
// transactions over 14 accounts in the first sync's year) through the
// real adapter over HTTP, with every projector of projections.All()
// running, and stops the clock when the sync has completed AND every
// projector has applied the whole log. Beside it, measured in the same
// run on a fresh database, the baseline: the same TransactionRecorded
// events appended with AppendMany in units of 2,000 (no provider, no
// decisions, no index), until the same projectors have caught up. It
// also reports how long reading the provider alone takes.
func BenchmarkSyncLarge(b *testing.B) {
	var syncSecs, baseSecs, fetchSecs, writeSecs, baseWriteSecs float64
	var syncGo, syncPG, baseGo, basePG float64
	var txs int
	for range b.N {
		b.StopTimer()
		events, fetch := prepareBaseline(b)
		fetchSecs += fetch.Seconds()
		base := newWorld(b, worldOptions{realSandbox: true})
		bm := startProjections(b, base)
		waitCaughtUp(b, base, bm)
		b.StartTimer()
		go0, pg0 := cpuSeconds(b, base.pool)
		start := time.Now()
		appendBaseline(b, base, events)
		baseWriteSecs += time.Since(start).Seconds()
		waitCaughtUp(b, base, bm)
		baseSecs += time.Since(start).Seconds()
		go1, pg1 := cpuSeconds(b, base.pool)
		baseGo, basePG = baseGo+go1-go0, basePG+pg1-pg0
		b.StopTimer()
		// Vacuum what the baseline wrote now, untimed: autovacuum would
		// otherwise do it during the sync below, whose CPU figures count
		// the whole cluster (it swung the sync's PostgreSQL CPU by a
		// third from run to run).
		vacuum(b, base)

		w := newWorld(b, worldOptions{realSandbox: true, maxConns: 8})
		p := user()
		id := w.connectSandbox(p, "Large", "large")
		m := startProjections(b, w)
		v := w.request(p, id)
		waitCaughtUp(b, w, m)
		b.StartTimer()
		go0, pg0 = cpuSeconds(b, w.pool)
		start = time.Now()
		require.NoError(b, w.run(id))
		writeSecs += time.Since(start).Seconds()
		waitCaughtUp(b, w, m)
		syncSecs += time.Since(start).Seconds()
		go1, pg1 = cpuSeconds(b, w.pool)
		syncGo, syncPG = syncGo+go1-go0, syncPG+pg1-pg0
		b.StopTimer()
		done, ok := w.outcome(id, v.ID).(connection.SyncCompleted)
		require.True(b, ok)
		require.Empty(b, done.AccountErrors)
		require.Equal(b, len(events), done.Counts.Created, "the baseline appends what the sync created")
		txs = done.Counts.Created
		require.GreaterOrEqual(b, txs, 100_000)
	}
	n := float64(b.N)
	b.ReportMetric(float64(txs), "transactions")
	b.ReportMetric(float64(txs)*n/syncSecs, "sync_tx/s")
	b.ReportMetric(float64(txs)*n/baseSecs, "baseline_tx/s")
	b.ReportMetric(100*baseSecs/syncSecs, "%_of_baseline")
	b.ReportMetric(float64(txs)*n/fetchSecs, "fetch_only_tx/s")
	// Where the time goes: until the writes end, and the projectors' catch-up after.
	b.ReportMetric(writeSecs/n, "sync_writes_s")
	b.ReportMetric((syncSecs-writeSecs)/n, "sync_catchup_s")
	b.ReportMetric(baseWriteSecs/n, "baseline_writes_s")
	b.ReportMetric((baseSecs-baseWriteSecs)/n, "baseline_catchup_s")
	// CPU seconds of this process and of PostgreSQL: what the machine's
	// load changes least. 2 cores give at most 2 CPU seconds a second.
	b.ReportMetric(syncGo/n, "sync_go_cpu_s")
	b.ReportMetric(syncPG/n, "sync_pg_cpu_s")
	b.ReportMetric(baseGo/n, "baseline_go_cpu_s")
	b.ReportMetric(basePG/n, "baseline_pg_cpu_s")
}

// prepareBaseline reads the large persona's year once, through the
// adapter, as the sync will, and returns the events the sync records for
// it (under another connection id) and how long reading took.
func prepareBaseline(b *testing.B) ([]eventstore.StreamEvent, time.Duration) {
	b.Helper()
	w := newWorld(b, worldOptions{realSandbox: true})
	p := user()
	id := w.connectSandbox(p, "Large", "large")
	ctx := context.Background()
	today := w.clock.Now().UTC().Truncate(24 * time.Hour)
	from, to := today.AddDate(-1, 0, -1), today.AddDate(0, 0, 2)
	var out []eventstore.StreamEvent
	start := time.Now()
	var listed []commands.ProviderAccount
	require.NoError(b, w.conns.Call(ctx, id, func(ctx context.Context, pr commands.Provider, c commands.Credentials) (err error) {
		listed, err = pr.Accounts(ctx, c)
		return err
	}))
	conn := uuid.New()
	syncID := uuid.New()
	for _, a := range listed {
		var txs []commands.ProviderTransaction
		require.NoError(b, w.conns.Call(ctx, id, func(ctx context.Context, pr commands.Provider, c commands.Credentials) (err error) {
			txs, err = pr.Transactions(ctx, c, a.ID, from, to)
			return err
		}))
		acct := eventstore.AccountStreamID(conn, a.ID)
		for _, pt := range txs {
			tid := eventstore.TransactionStreamID(acct, pt.ID)
			d := transaction.Data{ProviderTransactionID: pt.ID, Type: pt.Type, Subtype: pt.Subtype, Pending: pt.Pending, Amount: pt.Amount,
				Currency: pt.Currency, Description: pt.Description, Date: pt.Date.Format(time.DateOnly), Symbol: pt.Symbol,
				Quantity: pt.Quantity, UnitPrice: pt.UnitPrice, Commission: pt.Commission, Fees: pt.Fees, Raw: pt.Raw}
			if pt.SettlementDate != nil {
				d.SettlementDate = pt.SettlementDate.Format(time.DateOnly)
			}
			out = append(out, eventstore.StreamEvent{Stream: eventstore.Stream{Type: eventstore.StreamTransaction, ID: tid},
				Event: transaction.TransactionRecorded{TransactionID: tid, AccountID: acct, ConnectionID: conn, SyncID: syncID, Data: d, At: w.clock.Now()}})
		}
	}
	return out, time.Since(start)
}

// appendBaseline appends events in units of work of 2,000.
func appendBaseline(b *testing.B, w *world, events []eventstore.StreamEvent) {
	b.Helper()
	ctx := commands.WithMetadata(context.Background(), uuid.New(), commands.ActorSystem, "sync", commands.RequestContext{})
	for start := 0; start < len(events); start += 2000 {
		part := events[start:min(start+2000, len(events))]
		require.NoError(b, w.store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			_, err := tx.AppendMany(ctx, part)
			return err
		}))
	}
}
