package projections_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// streamsTruth is what the streams read model must hold, computed from the
// log by SQL that shares no code with the projector.
const streamsTruth = `
SELECT stream_id, stream_type, (array_agg(owner_id ORDER BY version DESC) FILTER (WHERE owner_id IS NOT NULL))[1],
       max(version), min(recorded_at), (array_agg(recorded_at ORDER BY version DESC))[1],
       (array_agg(event_type ORDER BY version DESC))[1], max(global_position)
  FROM events GROUP BY stream_id, stream_type`

const streamsModel = `SELECT stream_id, stream_type, owner_id, version, first_recorded_at, last_recorded_at,
	last_event_type, last_global_position FROM streams`

const countsTruth = `SELECT stream_type, event_type, count(*), min(recorded_at), max(recorded_at) FROM events GROUP BY 1, 2`

const countsModel = `SELECT stream_type, event_type, events, first_recorded_at, last_recorded_at FROM event_type_counts`

// checkModel asserts that model and truth return the same set of rows.
func checkModel(t *testing.T, pool *pgxpool.Pool, model, truth string) {
	t.Helper()
	var diff, n int
	err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM ((`+model+` EXCEPT `+truth+`) UNION ALL (`+truth+` EXCEPT `+model+`)) d),
		(SELECT count(*) FROM (`+model+`) m)`).Scan(&diff, &n)
	if err != nil {
		t.Fatal(err)
	}
	if diff != 0 || n == 0 {
		t.Fatalf("read model differs from the log in %d rows (%d rows in the model)", diff, n)
	}
}

func caughtUp(t *testing.T, m *projections.Manager) func() bool {
	return func() bool {
		st, err := m.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Behind != 0 || s.Position.GlobalPosition == 0 {
				return false
			}
		}
		return true
	}
}

func TestRebuildWhileLive(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()

	owner := uuid.New()
	type tracked struct {
		s eventstore.Stream
		v int64
	}
	var streams []*tracked
	for i := range 100 {
		ctx := context.Background()
		if i%2 == 0 {
			ctx = eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "test"})
		}
		s := &tracked{s: newStream()}
		if i%3 == 0 {
			s.s.Type = eventstore.StreamConnection
		}
		res, err := store.Append(ctx, s.s, 0, ticked{1}, ticked{2}, ticked{3}, ticked{4}, ticked{5})
		if err != nil {
			t.Fatal(err)
		}
		s.v = res.Version
		streams = append(streams, s)
	}

	m, err := projections.NewManager(store, projections.All(), opts(projections.WithBatchSize(64), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	running(t, m.Start)
	eventually(t, "live projectors catching up", caughtUp(t, m))

	// Readers of the live table never see an error or a shrinking table.
	var (
		reads    atomic.Int64
		readErr  error
		readerWG sync.WaitGroup
	)
	readCtx, stopReading := context.WithCancel(context.Background())
	readerWG.Go(func() {
		last := 0
		for readCtx.Err() == nil {
			var n int
			if err := pool.QueryRow(readCtx, `SELECT count(*) FROM streams`).Scan(&n); err != nil {
				if !errors.Is(err, context.Canceled) {
					readErr = err
				}
				return
			}
			if n < last {
				readErr = errors.New("streams table shrank during the rebuild")
				return
			}
			last = n
			reads.Add(1)
		}
	})

	appendDuring := func(i int) {
		s := streams[i%len(streams)]
		s.v = mustAppend(t, store, s.s, s.v, 1)
	}
	for round := range 2 {
		for _, p := range projections.All() {
			name := p.Name()
			var calls int
			readsBefore := reads.Load()
			err := m.Rebuild(context.Background(), name, func(done, total int64) {
				calls++
				if done > total {
					t.Errorf("progress %d of %d", done, total)
				}
				// Appended while the shadow tables fill: the catch-up in
				// the swap or the live consumer afterwards must carry them.
				if calls <= 4 {
					appendDuring(calls + 10*round)
					mustAppend(t, store, newStream(), 0, 2)
				}
			})
			if err != nil {
				t.Fatalf("rebuild %s: %v", name, err)
			}
			if calls < 4 {
				t.Fatalf("rebuild %s reported progress %d times, want batches of 64 over 500+ events", name, calls)
			}
			eventually(t, "reads during the rebuild", func() bool { return reads.Load() > readsBefore })
		}
		// The live consumers go on writing into the swapped-in tables.
		appendDuring(99)
		eventually(t, "live projectors after the swap", caughtUp(t, m))
		checkModel(t, pool, streamsModel, streamsTruth)
		checkModel(t, pool, countsModel, countsTruth)
	}
	stopReading()
	readerWG.Wait()
	if readErr != nil {
		t.Fatalf("reading the live table during rebuilds: %v", readErr)
	}

	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.RebuiltAt == nil || s.SchemaStale || !s.ConsumerPresent {
			t.Errorf("status after rebuild: %+v", s)
		}
	}
	var leftovers int
	if err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM pg_tables WHERE schemaname = 'projections_rebuild') +
		(SELECT count(*) FROM projection_checkpoints WHERE name LIKE '%\_\_rebuild')`).Scan(&leftovers); err != nil {
		t.Fatal(err)
	}
	if leftovers != 0 {
		t.Errorf("%d shadow tables or checkpoints left behind", leftovers)
	}
}

func TestRebuildWithoutLiveConsumer(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	for range 10 {
		mustAppend(t, store, newStream(), 0, 3)
	}
	m, err := projections.NewManager(store, projections.All(), ownerOf(t, store))
	if err != nil {
		t.Fatal(err)
	}
	// No live table, no checkpoint yet: a rebuild creates both.
	if err := m.Rebuild(context.Background(), "streams", nil); err != nil {
		t.Fatal(err)
	}
	checkModel(t, store.Pool(), streamsModel, streamsTruth)
	if err := m.Rebuild(context.Background(), "nope", nil); !errors.Is(err, projections.ErrUnknownProjector) {
		t.Fatalf("rebuild of an unknown projector: %v", err)
	}
}

// TestSwapDoesNotQueueReadersBehindALongReader holds the live streams table
// open in a reader's transaction for as long as the test likes, and checks
// that while the rebuild's swap keeps trying to replace it, new readers are
// served without waiting for that reader to end: each gives up after a
// statement_timeout far shorter than the old reader's life, and none may.
func TestSwapDoesNotQueueReadersBehindALongReader(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()
	for range 20 {
		mustAppend(t, store, newStream(), 0, 3)
	}
	m, err := projections.NewManager(store, projections.All(), opts(ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	longReader, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer longReader.Rollback(ctx)
	var oid uint32
	if err := longReader.QueryRow(ctx, `SELECT 'streams'::regclass::oid FROM (SELECT count(*) FROM streams) s`).Scan(&oid); err != nil {
		t.Fatal(err)
	}

	rebuilt := make(chan error, 1)
	go func() { rebuilt <- m.Rebuild(ctx, "streams", nil) }()

	swapWaiting := func() bool {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE relation = $1 AND mode = 'AccessExclusiveLock' AND NOT granted`, oid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	for i := range 3 {
		// Issue a new reader while the swap's lock request is queued: it
		// may queue behind the request, but never behind the long reader.
		eventually(t, "the swap waiting for the long reader's lock", swapWaiting)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '3s'`); err != nil {
				return err
			}
			var n int
			return tx.QueryRow(ctx, `SELECT count(*) FROM streams`).Scan(&n)
		})
		if err != nil {
			t.Fatalf("reader %d while the swap tried: %v", i, err)
		}
		select {
		case err := <-rebuilt:
			t.Fatalf("the rebuild finished while the long reader held the live table: %v", err)
		default:
		}
	}

	if err := longReader.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-rebuilt; err != nil {
		t.Fatal(err)
	}
	checkModel(t, pool, streamsModel, streamsTruth)
	var rebuiltAt *time.Time
	if err := pool.QueryRow(ctx, `SELECT rebuilt_at FROM projection_checkpoints WHERE name = 'streams'`).Scan(&rebuiltAt); err != nil || rebuiltAt == nil {
		t.Fatalf("rebuilt_at %v, %v", rebuiltAt, err)
	}
}
