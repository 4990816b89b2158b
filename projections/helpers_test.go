package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// ticked is the one event type the tests append.
type ticked struct {
	N int `json:"n"`
}

func (ticked) EventType() string { return "TestTicked" }

// mustStore returns a store over a fresh, migrated database.
func mustStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	return mustStoreOn(tb, mustPool(tb))
}

// mustPool returns a pool on a fresh, migrated database, large enough for
// tests that hold many transactions open at once (pgxpool's default is four
// connections on a small machine).
func mustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = 24
	testdb.ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// ownerOf runs the DDL of store's projectors (creating their tables, a
// rebuild's shadows and swap) as the database's owner: the store's pool is
// the application role's, which may create no table.
func ownerOf(tb testing.TB, store *eventstore.Store) projections.Option {
	tb.Helper()
	return projections.WithOwnerPool(testdb.Owner(tb, store.Pool()))
}

func mustStoreOn(tb testing.TB, pool *pgxpool.Pool) *eventstore.Store {
	tb.Helper()
	reg := eventstore.NewRegistry()
	eventstore.Register[ticked](reg, 1)
	s, err := eventstore.New(pool, reg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// mustAppend appends n events to stream at version expected and returns the new version.
func mustAppend(tb testing.TB, s *eventstore.Store, stream eventstore.Stream, expected int64, n int) int64 {
	tb.Helper()
	evs := make([]eventstore.Event, n)
	for i := range evs {
		evs[i] = ticked{N: int(expected) + i + 1}
	}
	res, err := s.Append(context.Background(), stream, expected, evs...)
	if err != nil {
		tb.Fatalf("append %s: %v", stream, err)
	}
	return res.Version
}

func newStream() eventstore.Stream {
	return eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}
}

// rawAppend appends n events inside tx, the way a writer holding its own
// transaction would, and returns their ids.
func rawAppend(ctx context.Context, s *eventstore.Store, tx pgx.Tx, stream eventstore.Stream, expected int64, n int) ([]uuid.UUID, error) {
	evs := make([]eventstore.Event, n)
	for i := range evs {
		evs[i] = ticked{N: int(expected) + i + 1}
	}
	res, err := s.AppendTx(ctx, tx, stream, expected, evs...)
	return res.EventIDs, err
}

// seen is a projector that records every delivery as a row, so tests can
// count duplicates, gaps and order. afterInsert, if set, runs inside Apply
// after the rows are written and before the checkpoint moves.
type seen struct {
	name, table, tag string
	afterInsert      func(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error
}

func newSeen(name string) *seen { return &seen{name: name, table: name} }

func (p *seen) Name() string     { return p.name }
func (p *seen) Tables() []string { return []string{p.table} }
func (p *seen) Schema(t projections.TableNames) string {
	return fmt.Sprintf(`CREATE TABLE %s (
		seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		event_id uuid NOT NULL, stream_id uuid NOT NULL, version bigint NOT NULL,
		global_position bigint NOT NULL, transaction_id xid8 NOT NULL, tag text NOT NULL)`, t.Of(p.table))
}

func (p *seen) Apply(ctx context.Context, tx pgx.Tx, t projections.TableNames, batch []eventstore.Record) error {
	ids, streams := make([]uuid.UUID, len(batch)), make([]uuid.UUID, len(batch))
	versions, positions, txids := make([]int64, len(batch)), make([]int64, len(batch)), make([]string, len(batch))
	for i, r := range batch {
		ids[i], streams[i], versions[i], positions[i] = r.EventID, r.Stream.ID, r.Version, r.GlobalPosition
		txids[i] = fmt.Sprint(r.TransactionID)
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+t.Of(p.table)+` (event_id, stream_id, version, global_position, transaction_id, tag)
		SELECT e, s, v, g, x::xid8, $6 FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::text[]) WITH ORDINALITY AS u(e, s, v, g, x, ord)
		ORDER BY ord`, ids, streams, versions, positions, txids, p.tag)
	if err != nil {
		return err
	}
	if p.afterInsert != nil {
		return p.afterInsert(ctx, tx, batch)
	}
	return nil
}

// delivery is one row of a seen table.
type delivery struct {
	EventID  uuid.UUID
	StreamID uuid.UUID
	Version  int64
	Position int64
	TxID     uint64
	Tag      string
}

func readSeen(tb testing.TB, pool *pgxpool.Pool, table string) []delivery {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id, stream_id, version, global_position, transaction_id::text::numeric::bigint, tag
		FROM `+pgx.Identifier{table}.Sanitize()+` ORDER BY seq`)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (delivery, error) {
		var d delivery
		var tx int64
		err := r.Scan(&d.EventID, &d.StreamID, &d.Version, &d.Position, &tx, &d.Tag)
		d.TxID = uint64(tx)
		return d, err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// committedIDs returns the ids of every event in the log, in commit order,
// optionally only those of transactions older than below (0: all).
func committedIDs(tb testing.TB, pool *pgxpool.Pool, below uint64) []uuid.UUID {
	tb.Helper()
	q := `SELECT event_id FROM events ORDER BY transaction_id, global_position`
	args := []any{}
	if below > 0 {
		q = `SELECT event_id FROM events WHERE transaction_id < $1::text::xid8 ORDER BY transaction_id, global_position`
		args = append(args, fmt.Sprint(below))
	}
	rows, err := pool.Query(context.Background(), q, args...)
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// checkDeliveries asserts that got holds every id of want exactly once, in
// commit order (which implies per-stream version order).
func checkDeliveries(tb testing.TB, got []delivery, want []uuid.UUID) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("delivered %d events, want %d", len(got), len(want))
	}
	lastVersion := map[uuid.UUID]int64{}
	for i, d := range got {
		if d.EventID != want[i] {
			tb.Fatalf("delivery %d is event %s, want %s (commit order)", i, d.EventID, want[i])
		}
		if d.Version <= lastVersion[d.StreamID] {
			tb.Fatalf("stream %s: version %d delivered after %d", d.StreamID, d.Version, lastVersion[d.StreamID])
		}
		lastVersion[d.StreamID] = d.Version
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func countRows(tb testing.TB, pool *pgxpool.Pool, table string) int {
	tb.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// running starts r and returns a function that stops it and waits.
func running(tb testing.TB, run func(ctx context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("runner: %v", err)
		}
	}
	tb.Cleanup(stop)
	return stop
}
