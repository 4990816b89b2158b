package syncs_test

import (
	"context"
	"testing"
	"time"

	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// BenchmarkSyncCeiling measures what the sync's rate is bounded by: the
// large persona's TransactionRecorded events (as BenchmarkSyncLarge's
// baseline appends them: AppendMany in units of 2,000, no provider, no
// decisions) appended on a fresh database with no projector, with the
// transactions' read model alone (financial_data), with the data
// projectors (connections, syncs, financial_data) and with every
// projector, each until its projectors caught up. The sync can be no
// faster than the configuration it runs in; the steps between them are
// what each part costs (docs/benchmarks.md).
func BenchmarkSyncCeiling(b *testing.B) {
	byName := map[string]projections.Projector{}
	for _, p := range projections.All() {
		byName[p.Name()] = p
	}
	parts := []struct {
		metric     string
		projectors []string
	}{
		{"appends_only", nil},
		{"appends_financial", []string{projections.FinancialDataName}},
		{"appends_data", []string{"connections", "syncs", projections.FinancialDataName}},
		{"appends_all", nil}, // every projector: filled in below
	}
	for _, p := range projections.All() {
		parts[3].projectors = append(parts[3].projectors, p.Name())
	}
	secs := make([]float64, len(parts))
	cpu := make([]float64, len(parts))
	var txs int
	for range b.N {
		b.StopTimer()
		events, _ := prepareBaseline(b)
		txs = len(events)
		for i, part := range parts {
			var ps []projections.Projector
			for _, name := range part.projectors {
				p, ok := byName[name]
				if !ok {
					b.Fatalf("no projector %q", name)
				}
				ps = append(ps, p)
			}
			w := newWorld(b, worldOptions{realSandbox: true})
			var m *projections.Manager
			if len(ps) > 0 {
				m = startProjectors(b, w, ps)
				waitCaughtUp(b, w, m)
			}
			vacuum(b, w)
			b.StartTimer()
			go0, pg0 := cpuSeconds(b, w.pool)
			start := time.Now()
			appendBaseline(b, w, events)
			if m != nil {
				waitCaughtUp(b, w, m)
			}
			secs[i] += time.Since(start).Seconds()
			go1, pg1 := cpuSeconds(b, w.pool)
			cpu[i] += go1 - go0 + pg1 - pg0
			b.StopTimer()
			// What this part wrote, vacuumed now: autovacuum would
			// otherwise do it during the next part, whose CPU figures
			// count the whole cluster.
			vacuum(b, w)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(txs), "transactions")
	for i, part := range parts {
		b.ReportMetric(float64(txs)*n/secs[i], part.metric+"_tx/s")
		// Go and PostgreSQL together; 20,000 transactions a second on 2
		// cores leave at most 100 µs of CPU a transaction.
		b.ReportMetric(cpu[i]/n/float64(txs)*1e6, part.metric+"_cpu_µs/tx")
	}
}

// vacuum vacuums and analyzes w's database, untimed.
func vacuum(b *testing.B, w *world) {
	b.Helper()
	if _, err := testdb.Owner(b, w.pool).Exec(context.Background(), `VACUUM (ANALYZE)`); err != nil {
		b.Fatal(err)
	}
}
