package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

const benchWriters = 16

// Fixed workloads, so that each benchmark call measures the same amount of
// work whatever -benchtime asks, and one call is enough.
const (
	singleEventAppends = 32_000 // 2,000 per writer
	batchAppends       = 640    // 40 batches of 100 events per writer
)

// runWriters runs total operations split over writers goroutines, each
// calling op(writer, i) for its share, and returns the wall time taken.
func runWriters(b *testing.B, writers, total int, op func(w, i int) error) time.Duration {
	b.Helper()
	per := total / writers
	if per == 0 {
		per = 1
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := op(w, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return elapsed
}

// benchPool opens a pool on a fresh database sized for the benchmark's writers.
func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchWriters + 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

var benchPayload = counterIncremented{CommandID: "bench-command-0001", Amount: "1234.56"}

// BenchmarkAppendSingleEvent measures Append with one event per transaction and
// 16 concurrent writers on distinct streams, next to its baseline: a plain
// single-row INSERT of the same rows from Go at the same concurrency.
func BenchmarkAppendSingleEvent(b *testing.B) {
	ctx := context.Background()
	total := singleEventAppends * b.N
	payload, _ := json.Marshal(benchPayload)

	basePool := benchPool(b)
	baseStreams := make([]uuid.UUID, benchWriters)
	for i := range baseStreams {
		baseStreams[i] = uuid.New()
	}
	baseline := runWriters(b, benchWriters, total, func(w, i int) error {
		_, err := basePool.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
			schema_version, payload, metadata, recorded_at, prev_hash, hash)
			VALUES ('account', $1, $2, $3, 'CounterIncremented', 1, $4, '{}', $5, $6, $6)`,
			baseStreams[w], i+1, uuid.New(), payload, time.Now(), eventstore.ZeroHash)
		return err
	})

	s, err := eventstore.New(benchPool(b), testRegistry())
	if err != nil {
		b.Fatal(err)
	}
	streams := make([]eventstore.Stream, benchWriters)
	for i := range streams {
		streams[i] = newStream(eventstore.StreamAccount)
	}
	b.ResetTimer()
	appendTime := runWriters(b, benchWriters, total, func(w, i int) error {
		_, err := s.Append(ctx, streams[w], int64(i), benchPayload)
		return err
	})
	b.StopTimer()
	done := float64(total / benchWriters * benchWriters)
	rate, baseRate := done/appendTime.Seconds(), done/baseline.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(baseRate, "baseline-insert-events/s")
	b.ReportMetric(100*rate/baseRate, "%-of-baseline")
}

// BenchmarkAppendBatch100 measures Append with 100 events per transaction,
// next to a baseline of one multi-row INSERT of the same 100 rows, at several
// writer counts: on two cores, fewer writers than 16 avoid context switches.
func BenchmarkAppendBatch100(b *testing.B) {
	for _, writers := range []int{2, 4, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchAppendBatch(b, writers) })
	}
}

func benchAppendBatch(b *testing.B, writers int) {
	const batch = 100
	ctx := context.Background()
	batches := batchAppends * b.N
	payload, _ := json.Marshal(benchPayload)

	basePool := benchPool(b)
	baseline := runWriters(b, writers, batches, func(w, i int) error {
		ids := make([]uuid.UUID, batch)
		versions := make([]int64, batch)
		payloads := make([]string, batch)
		hashes := make([][]byte, batch)
		for k := range ids {
			ids[k] = uuid.New()
			versions[k] = int64(k + 1)
			payloads[k] = string(payload)
			hashes[k] = eventstore.ZeroHash
		}
		_, err := basePool.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
			schema_version, payload, metadata, recorded_at, prev_hash, hash)
			SELECT 'account', $1, v, id, 'CounterIncremented', 1, p, '{}', $5, h, h
			FROM unnest($2::bigint[], $3::uuid[], $4::json[], $6::bytea[]) AS u(v, id, p, h)`,
			uuid.New(), versions, ids, payloads, time.Now(), hashes)
		return err
	})

	s, err := eventstore.New(benchPool(b), testRegistry())
	if err != nil {
		b.Fatal(err)
	}
	events := make([]eventstore.Event, batch)
	for i := range events {
		events[i] = benchPayload
	}
	b.ResetTimer()
	appendTime := runWriters(b, writers, batches, func(w, i int) error {
		_, err := s.Append(ctx, newStream(eventstore.StreamAccount), 0, events...)
		return err
	})
	b.StopTimer()
	done := float64(batches / writers * writers * batch)
	rate, baseRate := done/appendTime.Seconds(), done/baseline.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(baseRate, "baseline-insert-events/s")
	b.ReportMetric(100*rate/baseRate, "%-of-baseline")
}

// catchUpEvents is the log size BenchmarkCatchUpRead reads: the issue's
// one-million-event figure.
const catchUpEvents = 1_000_000

// BenchmarkCatchUpRead measures reading a log of one million events in commit
// order through ReadAll (the subscription predicate, batches of 5,000), next
// to a baseline of one plain ordered scan of the same rows. Filling the log
// takes a while, so one call usually suffices whatever -benchtime says.
func BenchmarkCatchUpRead(b *testing.B) {
	ctx := context.Background()
	s := mustStore(b)
	_, err := s.Pool().Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
		schema_version, payload, metadata, recorded_at, prev_hash, hash)
		SELECT 'account', gen_random_uuid(), 1, gen_random_uuid(), 'CounterIncremented', 1,
		       jsonb_build_object('command_id', 'bench-' || g, 'amount', '1234.56'),
		       '{"actor":"bench"}', now(), $2, $2
		FROM generate_series(1, $1) g`, catchUpEvents, eventstore.ZeroHash)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}

	var baseline, elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rows, err := s.Pool().Query(ctx, `SELECT global_position, transaction_id, stream_type, stream_id, version,
			event_id, event_type, schema_version, owner_id, payload, metadata, recorded_at, prev_hash, hash
			FROM events ORDER BY global_position`)
		if err != nil {
			b.Fatal(err)
		}
		baseCount := 0
		for rows.Next() {
			baseCount++
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		baseline += time.Since(start)

		start = time.Now()
		var pos eventstore.Position
		read := 0
		for {
			batch, err := s.ReadAll(ctx, pos, 5000)
			if err != nil {
				b.Fatal(err)
			}
			if len(batch) == 0 {
				break
			}
			read += len(batch)
			pos = batch[len(batch)-1].Position()
		}
		elapsed += time.Since(start)
		if read != catchUpEvents || baseCount != catchUpEvents {
			b.Fatalf("read %d, baseline %d, want %d", read, baseCount, catchUpEvents)
		}
	}
	b.StopTimer()
	total := float64(catchUpEvents * b.N)
	b.ReportMetric(total/elapsed.Seconds(), "events/s")
	b.ReportMetric(total/baseline.Seconds(), "baseline-scan-events/s")
}
