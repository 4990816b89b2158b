package projections_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// recorder is a reactor that records, in a table the test created, every
// event it applies, and every batch it prepares with whether any
// transaction of its database was open at that moment.
type recorder struct {
	mu        sync.Mutex
	prepared  int
	openTx    int
	failFirst bool
	pool      interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}
}

func (r *recorder) Name() string { return "recorder" }

func (r *recorder) Prepare(ctx context.Context, batch []eventstore.Record) error {
	var open int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`).Scan(&open); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prepared++
	r.openTx += open
	if r.failFirst && r.prepared == 1 {
		return errors.New("broker unavailable")
	}
	return nil
}

func (r *recorder) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error {
	for _, rec := range batch {
		if _, err := tx.Exec(ctx, `INSERT INTO reactor_seen (position) VALUES ($1)`, rec.GlobalPosition); err != nil {
			return err
		}
	}
	return nil
}

// TestReactorRunsThroughTheConsumerWithoutTables: a reactor owns no table
// yet is fed exactly once, in commit order, under a checkpoint of its own;
// its Prepare runs before each batch's transaction and outside any, and a
// failing Prepare is retried rather than skipped.
func TestReactorRunsThroughTheConsumerWithoutTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustStore(t)
	if _, err := testdb.Owner(t, store.Pool()).Exec(ctx, `CREATE TABLE reactor_seen (position bigint PRIMARY KEY);
		GRANT SELECT, INSERT ON reactor_seen TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, store, newStream(), 0, 30)
	mustAppend(t, store, newStream(), 0, 25)

	rec := &recorder{pool: store.Pool(), failFirst: true}
	r, err := projections.NewReactorRunner(store, rec, opts(projections.WithBatchSize(10))...)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, r.Run)
	eventually(t, "every event applied", func() bool { return countRows(t, store.Pool(), "reactor_seen") == 55 })
	stop()

	rows, err := store.Pool().Query(ctx, `SELECT s.position FROM reactor_seen s JOIN events e ON e.global_position = s.position
		ORDER BY e.transaction_id, e.global_position`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 55 {
		t.Fatalf("applied %d events, want 55 once each", len(got))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.prepared < 7 {
		t.Errorf("prepared %d batches, want at least 7 (6 batches and the failed first)", rec.prepared)
	}
	if rec.openTx != 0 {
		t.Errorf("a transaction was open during Prepare %d times", rec.openTx)
	}
	var name string
	if err := store.Pool().QueryRow(ctx, `SELECT name FROM projection_checkpoints WHERE name = 'recorder'`).Scan(&name); err != nil {
		t.Fatalf("the reactor's checkpoint: %v", err)
	}
}

// aheadReactor is a ReadAheadPreparer whose first Apply returns only once
// a second batch has been prepared: a consumer that reads ahead prepares
// batch 2 while batch 1 is written; one that does not prepares it only
// after batch 1 committed, and the first Apply waits until the test ends.
type aheadReactor struct {
	mu       sync.Mutex
	prepared int
	applied  int
	second   chan struct{} // closed at the second Prepare
	release  chan struct{} // closed when the test ends
}

func (r *aheadReactor) Name() string     { return "ahead" }
func (r *aheadReactor) ReadsAhead() bool { return true }

func (r *aheadReactor) Prepare(context.Context, []eventstore.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prepared++
	if r.prepared == 2 {
		close(r.second)
	}
	return nil
}

func (r *aheadReactor) Apply(ctx context.Context, _ pgx.Tx, batch []eventstore.Record) error {
	r.mu.Lock()
	first := r.applied == 0
	r.mu.Unlock()
	if first {
		select {
		case <-r.second:
		case <-r.release:
			return errors.New("test over")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied += len(batch)
	return nil
}

// TestReactorReadsAheadWhileItWrites: a reactor that opts in through
// ReadAheadPreparer has its next batch read and prepared while the
// previous one is written (NewReactorRunner's wrapper passes the opt-in
// on), and still applies every event.
func TestReactorReadsAheadWhileItWrites(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	mustAppend(t, store, newStream(), 0, 35)
	rec := &aheadReactor{second: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(rec.release) })
	r, err := projections.NewReactorRunner(store, rec, opts(projections.WithBatchSize(10))...)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, r.Run)
	defer stop()
	eventually(t, "batch 2 prepared while batch 1 is written, then every event applied", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.applied == 35
	})
}
