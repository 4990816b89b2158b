package projections_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// fast keeps idle waits short so tests that append without signalling (raw
// transactions) finish quickly; correctness never depends on them.
var fast = []projections.Option{
	projections.WithPollInterval(20 * time.Millisecond),
	projections.WithStandbyInterval(20 * time.Millisecond),
}

func opts(extra ...projections.Option) []projections.Option {
	return append(append([]projections.Option(nil), fast...), extra...)
}

func TestOutOfOrderCommitsAreDeliveredOnceInCommitOrder(t *testing.T) {
	t.Parallel()
	t.Run("one runner", func(t *testing.T) {
		t.Parallel()
		deliveredOnceInCommitOrder(t, func(store *eventstore.Store) ([]string, func(context.Context) error) {
			r, err := projections.NewRunner(store, newSeen("seen"), opts(projections.WithBatchSize(50), ownerOf(t, store))...)
			if err != nil {
				t.Fatal(err)
			}
			return []string{"seen"}, r.Run
		})
	})
	// A Manager's runners share their reads (docs/projections.md): each of
	// them must still get every event once, in commit order.
	t.Run("a manager's runners sharing reads", func(t *testing.T) {
		t.Parallel()
		deliveredOnceInCommitOrder(t, func(store *eventstore.Store) ([]string, func(context.Context) error) {
			ps := []projections.Projector{newSeen("seen_a"), newSeen("seen_b"), newSeen("seen_c")}
			m, err := projections.NewManager(store, ps, opts(projections.WithBatchSize(50), ownerOf(t, store))...)
			if err != nil {
				t.Fatal(err)
			}
			return []string{"seen_a", "seen_b", "seen_c"}, m.Start
		})
	})
}

// deliveredOnceInCommitOrder appends from eight writers whose transactions
// commit out of order, some rolled back, behind one long transaction, while
// start's consumers run, and checks that each of its tables received every
// committed event once, in commit order, and nothing rolled back.
func deliveredOnceInCommitOrder(t *testing.T, start func(*eventstore.Store) (tables []string, run func(context.Context) error)) {
	ctx := context.Background()
	store := mustStore(t)
	pool := store.Pool()

	// Committed before the long transaction takes its xid: deliverable while it is open.
	early := newStream()
	mustAppend(t, store, early, 0, 20)

	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	longIDs, err := rawAppend(ctx, store, long, newStream(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var longXID uint64
	if err := long.QueryRow(ctx, `SELECT pg_current_xact_id()::text::numeric::bigint`).Scan(&longXID); err != nil {
		t.Fatal(err)
	}

	tables, run := start(store)
	stop := running(t, run)

	var (
		mu         sync.Mutex
		rolledBack []uuid.UUID
	)
	g, gctx := errgroup.WithContext(ctx)
	for w := range 8 {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			a, b := newStream(), newStream()
			var va, vb int64
			appendA := func() error {
				n := 1 + rng.IntN(3)
				evs := make([]eventstore.Event, n)
				for i := range evs {
					evs[i] = ticked{N: i}
				}
				res, err := store.Append(gctx, a, va, evs...)
				va = res.Version
				return err
			}
			for range 25 {
				if rng.IntN(3) == 0 {
					if err := appendA(); err != nil {
						return err
					}
					continue
				}
				tx, err := pool.Begin(gctx)
				if err != nil {
					return err
				}
				k := 1 + rng.IntN(3)
				ids, err := rawAppend(gctx, store, tx, b, vb, k)
				if err != nil {
					tx.Rollback(gctx)
					return err
				}
				// Held open across another writer's whole commit: that
				// one has the higher xid and position yet commits first.
				if err := appendA(); err != nil {
					tx.Rollback(gctx)
					return err
				}
				if rng.IntN(3) == 0 {
					if err := tx.Rollback(gctx); err != nil {
						return err
					}
					mu.Lock()
					rolledBack = append(rolledBack, ids...)
					mu.Unlock()
					continue
				}
				if err := tx.Commit(gctx); err != nil {
					return err
				}
				vb += int64(k)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	// While the long transaction is open only what precedes it is delivered.
	before := committedIDs(t, pool, longXID)
	if len(before) != 20 {
		t.Fatalf("%d events precede the long transaction, want 20", len(before))
	}
	for _, table := range tables {
		eventually(t, "events before the long transaction", func() bool { return countRows(t, pool, table) >= len(before) })
	}
	var behind int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&behind); err != nil {
		t.Fatal(err)
	}
	if behind <= 20 {
		t.Fatalf("only %d events in the log: the writers did not run", behind)
	}

	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	all := committedIDs(t, pool, 0)
	for _, table := range tables {
		eventually(t, "every committed event", func() bool { return countRows(t, pool, table) >= len(all) })
	}
	stop()

	if len(rolledBack) == 0 {
		t.Fatal("no transaction rolled back: the test lost its point")
	}
	for _, table := range tables {
		got := readSeen(t, pool, table)
		checkDeliveries(t, got, all)
		// Commit order puts the long transaction's event right after the 20
		// early ones: nothing that committed while it was open overtook it.
		if got[20].EventID != longIDs[0] {
			t.Errorf("%s: delivery 20 is %s, want the long transaction's event %s", table, got[20].EventID, longIDs[0])
		}
		delivered := map[uuid.UUID]bool{}
		for _, d := range got {
			delivered[d.EventID] = true
		}
		for _, id := range rolledBack {
			if delivered[id] {
				t.Errorf("%s: rolled-back event %s delivered", table, id)
			}
		}
	}
}

func TestCancelInsideApplyResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()
	for range 5 {
		mustAppend(t, store, newStream(), 0, 10)
	}

	ctx, cancel := context.WithCancel(context.Background())
	p := newSeen("seen")
	var (
		calls    atomic.Int32
		firstTwo atomic.Int32 // events in the first two batches: 14, unless another test's transaction held some back
	)
	p.afterInsert = func(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error {
		if calls.Add(1) == 3 {
			cancel()
			return ctx.Err()
		}
		firstTwo.Add(int32(len(batch)))
		return nil
	}
	r, err := projections.NewRunner(store, p, opts(projections.WithBatchSize(7), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, pool, "seen"); n != int(firstTwo.Load()) {
		t.Fatalf("after cancelling the third batch the read model has %d rows, want the first two batches' %d", n, firstTwo.Load())
	}

	p.afterInsert = nil
	r2, err := projections.NewRunner(store, p, opts(projections.WithBatchSize(7), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, r2.Run)
	eventually(t, "all 50 events", func() bool { return countRows(t, pool, "seen") >= 50 })
	stop()
	checkDeliveries(t, readSeen(t, pool, "seen"), committedIDs(t, pool, 0))
}

func TestKilledConnectionsResumeFromCheckpoint(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()
	for range 5 {
		mustAppend(t, store, newStream(), 0, 10)
	}

	p := newSeen("seen")
	var calls atomic.Int32
	killed := make(chan struct{})
	p.afterInsert = func(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error {
		if calls.Add(1) != 3 {
			return nil
		}
		// A process kill as the database sees it: the batch's backend and
		// the lock session both die mid-transaction. The timeout form
		// returns only once they are gone.
		_, err := pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
			WHERE datname = current_database() AND (pid = $1 OR application_name = $2)`,
			tx.Conn().PgConn().PID(), "dashtam projection seen")
		close(killed)
		return err // nil: the runner carries on into a dead connection
	}
	r, err := projections.NewRunner(store, p, opts(projections.WithBatchSize(7), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, r.Run)
	<-killed
	eventually(t, "all 50 events after the kill", func() bool { return countRows(t, pool, "seen") >= 50 })
	stop()
	checkDeliveries(t, readSeen(t, pool, "seen"), committedIDs(t, pool, 0))
	if calls.Load() <= 3 {
		t.Fatalf("%d batches: the runner did not resume", calls.Load())
	}
}

func TestOneConsumerPerProjection(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()

	var inApply atomic.Int32
	mk := func(tag string) (*seen, *projections.Runner) {
		p := newSeen("seen")
		p.tag = tag
		p.afterInsert = func(context.Context, pgx.Tx, []eventstore.Record) error {
			if n := inApply.Add(1); n != 1 {
				t.Errorf("%d consumers applying at once", n)
			}
			inApply.Add(-1)
			return nil
		}
		r, err := projections.NewRunner(store, p, opts(ownerOf(t, store))...)
		if err != nil {
			t.Fatal(err)
		}
		return p, r
	}
	_, a := mk("a")
	_, b := mk("b")
	stopA := running(t, a.Run)
	stopB := running(t, b.Run)
	eventually(t, "one active runner", func() bool { return a.Active() || b.Active() })
	if a.Active() && b.Active() {
		t.Fatal("both runners active")
	}
	first, second, stopFirst := a, b, stopA
	firstTag, secondTag := "a", "b"
	if b.Active() {
		first, second, stopFirst = b, a, stopB
		firstTag, secondTag = "b", "a"
	}

	s := newStream()
	v := mustAppend(t, store, s, 0, 30)
	eventually(t, "first 30 events", func() bool { return countRows(t, pool, "seen") >= 30 })
	if second.Active() {
		t.Fatal("standby runner became active while the first consumed")
	}

	stopFirst()
	if first.Active() {
		t.Fatal("stopped runner still active")
	}
	eventually(t, "take-over", second.Active)
	mustAppend(t, store, s, v, 30)
	eventually(t, "next 30 events", func() bool { return countRows(t, pool, "seen") >= 60 })

	got := readSeen(t, pool, "seen")
	checkDeliveries(t, got, committedIDs(t, pool, 0))
	for i, d := range got {
		want := firstTag
		if i >= 30 {
			want = secondTag
		}
		if d.Tag != want {
			t.Fatalf("delivery %d by runner %q, want %q", i, d.Tag, want)
		}
	}
}

func TestNotifierWakesRunnersOfOtherProcesses(t *testing.T) {
	t.Parallel()
	writer := mustStore(t)
	pool := writer.Pool()
	// A second store is a second process as far as in-process signals go.
	reader := mustStoreOn(t, pool)

	n, err := projections.NewNotifier(writer, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	running(t, n.Run)

	s := newStream()
	mustAppend(t, writer, s, 0, 1)
	p := newSeen("seen")
	if err := projections.Ensure(context.Background(), testdb.Owner(t, pool), p); err != nil {
		t.Fatal(err)
	}
	r, err := projections.NewRunner(reader, p, projections.WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	running(t, r.Run)
	// The first event is read at start; the second only a NOTIFY can announce.
	eventually(t, "the event appended before start", func() bool { return countRows(t, pool, "seen") == 1 })
	mustAppend(t, writer, s, 1, 1)
	eventually(t, "the event announced by NOTIFY", func() bool { return countRows(t, pool, "seen") == 2 })
}

func TestManagerRejectsBadProjectorSets(t *testing.T) {
	t.Parallel()
	store := mustStoreOn(t, unconnectedPool(t))
	cases := map[string][]projections.Projector{
		"duplicate name":    {newSeen("a"), newSeen("a")},
		"bad name":          {newSeen("Bad-Name")},
		"double underscore": {newSeen("a__b")},
		"shared table":      {&seen{name: "a", table: "t"}, &seen{name: "b", table: "t"}},
	}
	for name, ps := range cases {
		if _, err := projections.NewManager(store, ps); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := projections.NewManager(store, projections.All()); err != nil {
		t.Errorf("All: %v", err)
	}
}

// unconnectedPool is a pool that never connects: pgxpool dials lazily.
func unconnectedPool(t *testing.T) *pgxpool.Pool {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestBatchesOfOneManagerDoNotHoldEachOtherBack: while one projector's
// batch transaction stays open, another projector of the same Manager
// applies events committed after it (the batch never appends, so nothing
// can commit behind it), and a transaction that may append still holds
// every reader back: after all of it, both saw every event once, in commit
// order.
func TestBatchesOfOneManagerDoNotHoldEachOtherBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustStore(t)
	pool := store.Pool()

	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	slow, fast := newSeen("slow_batches"), newSeen("fast_batches")
	slow.afterInsert = func(ctx context.Context, _ pgx.Tx, _ []eventstore.Record) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m, err := projections.NewManager(store, []projections.Projector{slow, fast}, opts(ownerOf(t, store))...)
	require.NoError(t, err)
	require.NoError(t, m.Ensure(ctx))
	stop := running(t, m.Start)
	defer stop()

	mustAppend(t, store, newStream(), 0, 1)
	<-entered // slow's batch holds its transaction id, its checkpoint row locked
	mustAppend(t, store, newStream(), 0, 2)
	eventually(t, "fast to apply events committed after slow's batch began", func() bool {
		return countRows(t, pool, "fast_batches") == 3
	})

	// A transaction that appends, open before the next event commits.
	long, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer long.Rollback(ctx)
	_, err = rawAppend(ctx, store, long, newStream(), 0, 1)
	require.NoError(t, err)
	mustAppend(t, store, newStream(), 0, 1)
	close(gate)
	require.NoError(t, long.Commit(ctx))

	want := committedIDs(t, pool, 0)
	require.Len(t, want, 5)
	for _, table := range []string{"slow_batches", "fast_batches"} {
		eventually(t, table+" to catch up", func() bool { return countRows(t, pool, table) == len(want) })
		checkDeliveries(t, readSeen(t, pool, table), want)
	}
}
