package projections_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// selectiveSeen is a seen projector that reads only connection streams.
type selectiveSeen struct{ *seen }

func (selectiveSeen) Reads() eventstore.Selection {
	return eventstore.Selection{StreamTypes: []eventstore.StreamType{eventstore.StreamConnection}}
}

// checkpointOf reads a projection's checkpoint row.
func checkpointOf(tb testing.TB, pool *pgxpool.Pool, name string) eventstore.Position {
	tb.Helper()
	var p eventstore.Position
	var xid int64
	err := pool.QueryRow(context.Background(), `SELECT transaction_id::text::numeric::bigint, global_position
		FROM projection_checkpoints WHERE name = $1`, name).Scan(&xid, &p.GlobalPosition)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Position{} // the runner has not created it yet
	}
	if err != nil {
		tb.Fatal(err)
	}
	p.TransactionID = uint64(xid)
	return p
}

// headOf reads the position of the last event of the log in commit order.
func headOf(tb testing.TB, pool *pgxpool.Pool) eventstore.Position {
	tb.Helper()
	var p eventstore.Position
	var xid int64
	if err := pool.QueryRow(context.Background(), `SELECT transaction_id::text::numeric::bigint, global_position
		FROM events ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&xid, &p.GlobalPosition); err != nil {
		tb.Fatal(err)
	}
	p.TransactionID = uint64(xid)
	return p
}

// connectionIDs returns the ids of the committed events of connection
// streams, in commit order.
func connectionIDs(tb testing.TB, pool *pgxpool.Pool) []uuid.UUID {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id FROM events WHERE stream_type = 'connection'
		ORDER BY transaction_id, global_position`)
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

func connStream() eventstore.Stream {
	return eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()}
}

// TestSelectiveProjectorIsGapFreeUnderOutOfOrderCommits: an event of a
// stream the projector reads, committed late by a transaction older than
// events it skips, is still applied, exactly once and in commit order; the
// checkpoint never passes it while it is open, and reaches the head of the
// log once everything has committed, though the last events are skipped.
func TestSelectiveProjectorIsGapFreeUnderOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustStore(t)
	pool := store.Pool()
	mustAppend(t, store, newStream(), 0, 10)

	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	longIDs, err := rawAppend(ctx, store, long, connStream(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var longXID int64
	if err := long.QueryRow(ctx, `SELECT pg_current_xact_id()::text::numeric::bigint`).Scan(&longXID); err != nil {
		t.Fatal(err)
	}

	p := selectiveSeen{newSeen("selective")}
	r, err := projections.NewRunner(store, p, opts(projections.WithBatchSize(5), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, r.Run)

	var (
		mu         sync.Mutex
		rolledBack []uuid.UUID
	)
	g, gctx := errgroup.WithContext(ctx)
	for w := range 6 {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			skipped, wanted := newStream(), connStream()
			var vs, vw int64
			appendSkipped := func() error {
				res, err := store.Append(gctx, skipped, vs, ticked{N: int(vs)}, ticked{N: int(vs) + 1})
				vs = res.Version
				return err
			}
			for range 20 {
				if rng.IntN(3) == 0 {
					if err := appendSkipped(); err != nil {
						return err
					}
					continue
				}
				tx, err := pool.Begin(gctx)
				if err != nil {
					return err
				}
				ids, err := rawAppend(gctx, store, tx, wanted, vw, 1)
				if err != nil {
					tx.Rollback(gctx)
					return err
				}
				// A skipped event with a higher xid commits first.
				if err := appendSkipped(); err != nil {
					tx.Rollback(gctx)
					return err
				}
				if rng.IntN(4) == 0 {
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
				vw++
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// While the long transaction is open, the checkpoint stays before it,
	// however many skipped events committed after it.
	eventually(t, "the events before the long transaction", func() bool {
		return checkpointOf(t, pool, "selective").TransactionID > 0
	})
	if cp := checkpointOf(t, pool, "selective"); int64(cp.TransactionID) >= longXID {
		t.Fatalf("checkpoint %v passed the open transaction %d", cp, longXID)
	}
	if got := readSeen(t, pool, "selective"); len(got) > 0 && got[len(got)-1].TxID >= uint64(longXID) {
		t.Fatalf("an event after the open transaction was applied before it")
	}
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Skipped events last: the checkpoint must reach them anyway.
	mustAppend(t, store, newStream(), 0, 7)
	head := headOf(t, pool)
	eventually(t, "the checkpoint at the head", func() bool { return checkpointOf(t, pool, "selective") == head })
	stop()

	got := readSeen(t, pool, "selective")
	checkDeliveries(t, got, connectionIDs(t, pool))
	found := false
	for _, d := range got {
		found = found || d.EventID == longIDs[0]
		for _, id := range rolledBack {
			if d.EventID == id {
				t.Errorf("rolled-back event %s applied", id)
			}
		}
	}
	if !found {
		t.Error("the late event of the long transaction was never applied")
	}
	if len(rolledBack) == 0 {
		t.Fatal("no transaction rolled back: the test lost its point")
	}
}

// TestIdleSelectiveProjectorReachesTheHead: a projector none of whose
// streams is ever appended to still has its checkpoint at the head, so that
// status and lag do not show it behind.
func TestIdleSelectiveProjectorReachesTheHead(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()
	p := selectiveSeen{newSeen("idle_selective")}
	r, err := projections.NewRunner(store, p, opts(projections.WithBatchSize(3), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	running(t, r.Run)
	for range 3 {
		mustAppend(t, store, newStream(), 0, 4)
		head := headOf(t, pool)
		eventually(t, "the checkpoint at the head", func() bool { return checkpointOf(t, pool, "idle_selective") == head })
	}
	if n := countRows(t, pool, "idle_selective"); n != 0 {
		t.Fatalf("%d events applied, want none", n)
	}
}
