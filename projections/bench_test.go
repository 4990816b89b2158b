package projections_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// seedEvents writes n events over n/10 streams straight into the table, in
// transactions of 1,000: a projector reads neither digests nor chains, and
// appending 100k events through the store would dominate the benchmark's run.
func seedEvents(b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	streams := n / 10
	for from := 0; from < n; from += 1000 {
		_, err := pool.Exec(context.Background(), `INSERT INTO events (stream_type, stream_id, version, event_id,
			event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash)
			SELECT 'account', md5('s' || (g % $3))::uuid, g / $3 + 1, gen_random_uuid(),
			       'TestTicked', 1, jsonb_build_object('n', g), '{"actor":"bench"}', now(),
			       decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')
			  FROM generate_series($1::int, $2::int) AS g`, from, min(from+1000, n)-1, streams)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProjector measures a full replay of 100k events (read, write the
// read model, move the checkpoint, batch after batch) against reading the
// same log without writing, in the same run and database.
func BenchmarkProjector(b *testing.B) {
	const events = 100_000
	store := mustStore(b)
	seedEvents(b, store.Pool(), events)
	m, err := projections.NewManager(store, projections.All(), ownerOf(b, store))
	if err != nil {
		b.Fatal(err)
	}
	rate := func(b *testing.B) {
		b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("baseline_read_all", func(b *testing.B) {
		// An autoanalyze that started while the log was seeded holds a
		// transaction id and, until it ends, the horizon: poll past it as
		// a consumer would instead of stopping short.
		heldBack := time.NewTicker(time.Millisecond)
		defer heldBack.Stop()
		for b.Loop() {
			var pos eventstore.Position
			n := 0
			for n < events {
				recs, err := store.ReadAll(context.Background(), pos, projections.DefaultBatchSize)
				if err != nil {
					b.Fatal(err)
				}
				if len(recs) == 0 {
					<-heldBack.C
					continue
				}
				n += len(recs)
				pos = recs[len(recs)-1].Position()
			}
			if n != events {
				b.Fatalf("read %d events, want %d", n, events)
			}
		}
		rate(b)
	})
	for _, p := range projections.All() {
		b.Run(p.Name(), func(b *testing.B) {
			for b.Loop() {
				if err := m.Rebuild(context.Background(), p.Name(), nil); err != nil {
					b.Fatal(err)
				}
			}
			rate(b)
		})
	}
}

// BenchmarkAppendToReadModelLag appends at a steady ~1,000 events/s from four
// writers for a few seconds while every projector runs, and reports the time
// from an append's commit (Append returning) to the commit of the streams
// read model's batch that holds it.
func BenchmarkAppendToReadModelLag(b *testing.B) {
	const (
		writers  = 4
		perSec   = 1000
		duration = 4 * time.Second
	)
	for b.Loop() {
		store := mustStore(b)
		var (
			mu        sync.Mutex
			committed = map[int64]time.Time{}
			appended  = map[int64]time.Time{}
		)
		m, err := projections.NewManager(store, projections.All(), ownerOf(b, store), projections.WithAfterCommit(func(name string, batch []eventstore.Record) {
			if name != "streams" {
				return
			}
			now := time.Now()
			mu.Lock()
			for _, r := range batch {
				committed[r.GlobalPosition] = now
			}
			mu.Unlock()
		}))
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Ensure(context.Background()); err != nil {
			b.Fatal(err)
		}
		stop := running(b, m.Start)

		ctx, cancel := context.WithTimeout(context.Background(), duration)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Go(func() {
				tick := time.NewTicker(time.Second * writers / perSec)
				defer tick.Stop()
				s, v := newStream(), int64(0)
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					res, err := store.Append(context.Background(), s, v, ticked{N: int(v)})
					if err != nil {
						errs <- err
						return
					}
					at := time.Now()
					v = res.Version
					mu.Lock()
					appended[res.LastPosition] = at
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		eventually(b, "every append projected", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for pos := range appended {
				if _, ok := committed[pos]; !ok {
					return false
				}
			}
			return true
		})
		stop()

		lags := make([]time.Duration, 0, len(appended))
		for pos, at := range appended {
			lags = append(lags, max(0, committed[pos].Sub(at)))
		}
		slices.Sort(lags)
		q := func(f float64) float64 {
			return float64(lags[min(len(lags)-1, int(f*float64(len(lags))))].Microseconds()) / 1000
		}
		b.ReportMetric(q(0.50), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
		b.ReportMetric(q(1), "max-ms")
		b.ReportMetric(float64(len(lags))/duration.Seconds(), "appends/s")
	}
}
