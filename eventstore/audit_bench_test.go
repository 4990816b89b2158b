package eventstore_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// The audit benchmarks' log sizes: the figures.
const (
	auditBenchEvents     = 1_000_000
	auditBenchIncrement  = 10_000
	auditBenchVerify     = 500_000
	auditBenchStreamSize = 10
)

// readAllLeaves is the baseline of the checkpoint benchmarks: reading the
// same rows the checkpointer reads, in the same pages, and nothing else.
func readAllLeaves(b *testing.B, pool *pgxpool.Pool, after eventstore.Position) int {
	b.Helper()
	ctx := context.Background()
	n := 0
	for {
		rows, err := pool.Query(ctx, `SELECT transaction_id, global_position, hash FROM events
			WHERE (transaction_id, global_position) > ($1::xid8, $2) ORDER BY events.transaction_id, events.global_position LIMIT 10000`,
			after.TransactionID, after.GlobalPosition)
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		var hash []byte
		_, err = pgx.ForEachRow(rows, []any{&after.TransactionID, &after.GlobalPosition, &hash}, func() error { got++; return nil })
		if err != nil {
			b.Fatal(err)
		}
		n += got
		if got < 10000 {
			return n
		}
	}
}

// BenchmarkCheckpoint measures the first checkpoint over a log of one
// million events, then one over 10,000 new events, each beside a baseline
// of only reading the rows it reads, in the same run.
func BenchmarkCheckpoint(b *testing.B) {
	ctx := context.Background()
	s := mustStore(b)
	fillLog(b, s.Pool(), auditBenchEvents)
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	signer := testSigner(b)
	cp, err := eventstore.NewCheckpointer(s, signer, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	baseN := readAllLeaves(b, s.Pool(), eventstore.Position{})
	baseFirst := time.Since(start)
	start = time.Now()
	ck, made, err := cp.Checkpoint(ctx, true)
	first := time.Since(start)
	if err != nil || !made || ck.TreeSize != auditBenchEvents || baseN != auditBenchEvents {
		b.Fatalf("first checkpoint: %v made=%v size=%d baseline read %d", err, made, ck.TreeSize, baseN)
	}

	var incr, baseIncr time.Duration
	rounds := 5
	for range rounds {
		fillLog(b, s.Pool(), auditBenchIncrement)
		start = time.Now()
		if n := readAllLeaves(b, s.Pool(), ck.Last); n != auditBenchIncrement {
			b.Fatalf("baseline read %d", n)
		}
		baseIncr += time.Since(start)
		start = time.Now()
		next, made, err := cp.Checkpoint(ctx, true)
		incr += time.Since(start)
		if err != nil || !made || next.TreeSize != ck.TreeSize+auditBenchIncrement {
			b.Fatalf("incremental checkpoint: %v made=%v size=%d", err, made, next.TreeSize)
		}
		ck = next
	}
	b.StopTimer()
	b.ReportMetric(first.Seconds(), "first-1M-s")
	b.ReportMetric(baseFirst.Seconds(), "baseline-read-1M-s")
	b.ReportMetric(float64(incr.Milliseconds())/float64(rounds), "incremental-10k-ms")
	b.ReportMetric(float64(baseIncr.Milliseconds())/float64(rounds), "baseline-read-10k-ms")
}

// BenchmarkInclusionProof measures the proof of one random event in a
// checkpointed log of one million events, beside a baseline of reading that
// one event by position.
func BenchmarkInclusionProof(b *testing.B) {
	ctx := context.Background()
	s := mustStore(b)
	fillLog(b, s.Pool(), auditBenchEvents)
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	cp, err := eventstore.NewCheckpointer(s, testSigner(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cp.CheckpointAll(ctx, true); err != nil {
		b.Fatal(err)
	}
	read := func(pos int64) eventstore.Record {
		recs, err := eventstore.ReadPositions(ctx, s.Pool(), []int64{pos})
		if err != nil || len(recs) != 1 {
			b.Fatalf("read %d: %v", pos, err)
		}
		return recs[0]
	}
	var base time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r := read(rand.Int64N(auditBenchEvents) + 1)
		base += time.Since(start)
		p, err := s.InclusionProof(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Verify(r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	total := b.Elapsed() - base
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/proof")
	b.ReportMetric(float64(base.Microseconds())/1000/float64(b.N), "baseline-read-one-ms")
	b.ReportMetric(0, "ns/op")
}

// fillChainedLog writes n events with valid hash chains (streams of
// auditBenchStreamSize events, interleaved) with COPY, so verify has real
// work to do.
func fillChainedLog(b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	streams := n / auditBenchStreamSize
	ids := make([]uuid.UUID, streams)
	prev := make([][]byte, streams)
	for i := range ids {
		ids[i] = uuid.New()
		prev[i] = eventstore.ZeroHash
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	owner := uuid.New()
	meta := json.RawMessage(`{"actor":"user:bench","ip":"192.0.2.1","trace_id":"0123456789abcdef0123456789abcdef"}`)
	rows := make([][]any, 0, n)
	for v := 1; v <= auditBenchStreamSize; v++ {
		for i, id := range ids {
			// Rows as Append writes them now: digest version 2, an owner.
			r := eventstore.Record{
				Stream: eventstore.Stream{Type: eventstore.StreamAccount, ID: id}, Version: int64(v), EventID: uuid.New(),
				EventType: "CounterIncremented", SchemaVersion: 1, DigestVersion: 2,
				Payload:     json.RawMessage(`{"command_id":"bench-command-0001","amount":"1234.56"}`),
				RawMetadata: meta, RecordedAt: at, PrevHash: prev[i],
			}
			r.SetOwner(&owner)
			h, err := eventstore.ChainHash(r)
			if err != nil {
				b.Fatal(err)
			}
			rows = append(rows, []any{"account", id, int64(v), r.EventID, r.EventType, 1, string(r.Payload), string(meta), at, prev[i], h,
				2, owner})
			prev[i] = h
		}
	}
	_, err := pool.CopyFrom(context.Background(), pgx.Identifier{"events"},
		[]string{"stream_type", "stream_id", "version", "event_id", "event_type", "schema_version", "payload", "metadata", "recorded_at", "prev_hash", "hash",
			"digest_version", "owner_id"},
		pgx.CopyFromRows(rows))
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkVerifyLog measures audit verify (every chain and every
// checkpoint) over a chained, checkpointed log, beside a baseline of only
// reading the rows its scan reads (whole rows in commit order, the same
// statement and pages, nothing decoded), in the same run.
func BenchmarkVerifyLog(b *testing.B) {
	ctx := context.Background()
	s := mustStore(b)
	fillChainedLog(b, s.Pool(), auditBenchVerify)
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	cp, err := eventstore.NewCheckpointer(s, testSigner(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cp.CheckpointAll(ctx, true); err != nil {
		b.Fatal(err)
	}
	var base, verify time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		n, err := eventstore.ReadCommitOrder(ctx, s)
		if err != nil || n != auditBenchVerify {
			b.Fatalf("baseline read %d: %v", n, err)
		}
		base += time.Since(start)
		start = time.Now()
		rep, err := s.VerifyLog(ctx, eventstore.LogVerifyOptions{Trusted: eventstore.TrustedKeys{testSigner(b).PublicKey()}})
		verify += time.Since(start)
		if err != nil || len(rep.Findings) > 0 || rep.Covered != auditBenchVerify || rep.Chains.Events != auditBenchVerify {
			b.Fatalf("verify: %v %+v", err, rep)
		}
	}
	b.StopTimer()
	total := float64(auditBenchVerify * b.N)
	b.ReportMetric(total/verify.Seconds(), "events/s")
	b.ReportMetric(total/base.Seconds(), "baseline-read-events/s")
	b.ReportMetric(0, "ns/op")
}
