package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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

// interleaveRounds is how many alternating slices runInterleaved cuts a
// workload into.
const interleaveRounds = 8

// runInterleaved runs a fixed workload of total operations over writers
// goroutines twice, once as the baseline and once as the measured operation,
// in alternating slices (the baseline first in even rounds, second in odd
// ones), and returns each side's wall time. On a machine shared with other
// work, load that comes and goes then falls on both sides alike, and their
// ratio holds where two back-to-back runs would drift apart. Each writer w
// calls op(w, i) for i = 0, 1, ... of its share, in order, on both sides.
func runInterleaved(b *testing.B, writers, total int, base, measured func(w, i int) error) (baseTime, measuredTime time.Duration) {
	b.Helper()
	per := max(total/writers, 1)
	rounds := min(interleaveRounds, per)
	for r := range rounds {
		from, to := r*per/rounds, (r+1)*per/rounds
		runBase := func() {
			b.StopTimer() // ns/op counts the measured side only
			baseTime += runWriters(b, writers, from, to, base)
			b.StartTimer()
		}
		runMeasured := func() { measuredTime += runWriters(b, writers, from, to, measured) }
		if r%2 == 0 {
			runBase()
			runMeasured()
		} else {
			runMeasured()
			runBase()
		}
	}
	return baseTime, measuredTime
}

// runWriters runs writers goroutines, each calling op(writer, i) for i in
// [from, to), and returns the wall time taken.
func runWriters(b *testing.B, writers, from, to int, op func(w, i int) error) time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from; i < to; i++ {
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
	testdb.ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

var benchPayload = counterIncremented{CommandID: "bench-command-0001", Amount: "1234.56"}

// BenchmarkAppendSingleEvent measures Append with one event per transaction and
// 16 concurrent writers on distinct streams, next to its baseline, run
// interleaved with it: a plain single-row INSERT of the same rows from Go at
// the same concurrency.
func BenchmarkAppendSingleEvent(b *testing.B) {
	ctx := context.Background()
	total := singleEventAppends * b.N
	payload, _ := json.Marshal(benchPayload)

	basePool := benchPool(b)
	baseStreams := make([]uuid.UUID, benchWriters)
	for i := range baseStreams {
		baseStreams[i] = uuid.New()
	}
	s, err := eventstore.New(benchPool(b), testRegistry())
	if err != nil {
		b.Fatal(err)
	}
	streams := make([]eventstore.Stream, benchWriters)
	for i := range streams {
		streams[i] = newStream(eventstore.StreamAccount)
	}
	b.ResetTimer()
	baseline, appendTime := runInterleaved(b, benchWriters, total, func(w, i int) error {
		_, err := basePool.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
			schema_version, payload, metadata, recorded_at, prev_hash, hash)
			VALUES ('account', $1, $2, $3, 'CounterIncremented', 1, $4, '{}', $5, $6, $6)`,
			baseStreams[w], i+1, uuid.New(), payload, time.Now(), eventstore.ZeroHash)
		return err
	}, func(w, i int) error {
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
// next to a baseline (interleaved) of one multi-row INSERT of the same 100
// rows, at several writer counts: on two cores, fewer writers than 16 avoid context switches.
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
	s, err := eventstore.New(benchPool(b), testRegistry())
	if err != nil {
		b.Fatal(err)
	}
	events := make([]eventstore.Event, batch)
	for i := range events {
		events[i] = benchPayload
	}
	b.ResetTimer()
	baseline, appendTime := runInterleaved(b, writers, batches, func(w, i int) error {
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
	}, func(w, i int) error {
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

// newStreamsPerTx is the sync ingest shape: one database transaction writes
// the first event of this many new transaction streams.
const (
	newStreamsPerTx = 1000
	newStreamTxs    = 16 // transactions per benchmark call, over all writers
)

// BenchmarkAppendNewStreamsInOneTx measures AppendTx appending the first
// event of 1,000 new streams in one transaction (how a sync stores the
// transactions it fetched), next to a baseline (interleaved) of 1,000 plain
// single-row INSERTs of the same rows in one transaction at the same writer
// count.
func BenchmarkAppendNewStreamsInOneTx(b *testing.B) {
	for _, writers := range []int{1, 2} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchAppendNewStreams(b, writers) })
	}
}

func benchAppendNewStreams(b *testing.B, writers int) {
	ctx := context.Background()
	txs := newStreamTxs * b.N
	payload, _ := json.Marshal(benchPayload)
	inTx := func(pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}

	basePool := benchPool(b)
	s, err := eventstore.New(benchPool(b), testRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	baseline, appendTime := runInterleaved(b, writers, txs, func(w, i int) error {
		return inTx(basePool, func(tx pgx.Tx) error {
			for range newStreamsPerTx {
				_, err := tx.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
					schema_version, payload, metadata, recorded_at, prev_hash, hash)
					VALUES ('transaction', $1, 1, $2, 'CounterIncremented', 1, $3, '{}', $4, $5, $5)`,
					uuid.New(), uuid.New(), payload, time.Now(), eventstore.ZeroHash)
				if err != nil {
					return err
				}
			}
			return nil
		})
	}, func(w, i int) error {
		return inTx(s.Pool(), func(tx pgx.Tx) error {
			for range newStreamsPerTx {
				if _, err := s.AppendTx(ctx, tx, newStream(eventstore.StreamTransaction), 0, benchPayload); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.StopTimer()
	done := float64(txs / writers * writers * newStreamsPerTx)
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

// BenchmarkAppendMany measures AppendMany recording the first event of
// 1,000 new streams per transaction (the shape of a sync's batch), next to
// a baseline (interleaved) of one multi-row INSERT … SELECT FROM unnest of
// the same 1,000 rows with no chain to link and no head to look up.
func BenchmarkAppendMany(b *testing.B) {
	for _, writers := range []int{1, 2} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchAppendMany(b, writers) })
	}
}

func benchAppendMany(b *testing.B, writers int) {
	ctx := context.Background()
	txs := newStreamTxs * b.N
	payload, _ := json.Marshal(benchPayload)
	basePool := benchPool(b)
	s, err := eventstore.New(benchPool(b), testRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	baseline, appendTime := runInterleaved(b, writers, txs, func(w, i int) error {
		ids, events := make([]uuid.UUID, newStreamsPerTx), make([]uuid.UUID, newStreamsPerTx)
		for k := range ids {
			ids[k], events[k] = uuid.New(), uuid.New()
		}
		_, err := basePool.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
			schema_version, payload, metadata, recorded_at, prev_hash, hash)
			SELECT 'transaction', s, 1, e, 'CounterIncremented', 1, $3::json, '{}', now(), $4, $4
			FROM unnest($1::uuid[], $2::uuid[]) AS u(s, e)`, ids, events, payload, eventstore.ZeroHash)
		return err
	}, func(w, i int) error {
		batch := make([]eventstore.StreamEvent, newStreamsPerTx)
		for k := range batch {
			batch[k] = eventstore.StreamEvent{Stream: newStream(eventstore.StreamTransaction), Event: benchPayload}
		}
		return s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			_, err := tx.AppendMany(ctx, batch)
			return err
		})
	})
	b.StopTimer()
	done := float64(txs / writers * writers * newStreamsPerTx)
	rate, baseRate := done/appendTime.Seconds(), done/baseline.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(baseRate, "baseline-insert-events/s")
	b.ReportMetric(100*rate/baseRate, "%-of-baseline")
}
