package projections

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

type idleTicked struct{}

func (idleTicked) EventType() string { return "IdleTicked" }

// checkpointTuple identifies the checkpoint row's current version and its
// locker: a SELECT … FOR UPDATE or an UPDATE changes it.
func checkpointTuple(t *testing.T, pool *pgxpool.Pool, name string) string {
	t.Helper()
	var s string
	if err := pool.QueryRow(context.Background(), `SELECT ctid::text || '/' || xmin::text || '/' || xmax::text
		FROM projection_checkpoints WHERE name = $1`, name).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestIdlePollsTakeNoTransactionID polls a caught-up consumer many times and
// checks that it neither locked nor wrote its checkpoint row and took no
// transaction id. The id counter is cluster-wide and other tests share the
// cluster, so a window in which the counter moved by less than the number of
// polls suffices (before, every poll took one); the row's tuple header is
// exact.
func TestIdlePollsTakeNoTransactionID(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	reg := eventstore.NewRegistry()
	eventstore.Register[idleTicked](reg, 1)
	store, err := eventstore.New(pool, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.Append(ctx, eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}, 0, idleTicked{}, idleTicked{}); err != nil {
		t.Fatal(err)
	}
	p := Streams{}
	if err := Ensure(ctx, testdb.Owner(t, pool), p); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(pool, p, p.Name(), LiveTables(p), newConfig(nil), nil)
	stepUntilProcessed(t, c, 2)

	// A separate connection measures, so that its own statements cannot
	// count against the consumer's.
	probe, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close(ctx)

	const polls = 50
	before := checkpointTuple(t, pool, p.Name())
	best := uint64(polls)
	for window := 0; window < 20 && best > 0; window++ {
		var x0 uint64
		if err := probe.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())`).Scan(&x0); err != nil {
			t.Fatal(err)
		}
		for range polls {
			res, err := c.step(ctx)
			if err != nil || res.processed != 0 || res.more {
				t.Fatalf("idle poll: %+v, %v", res, err)
			}
		}
		var x1 uint64
		if err := probe.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())`).Scan(&x1); err != nil {
			t.Fatal(err)
		}
		best = min(best, x1-x0)
	}
	t.Logf("transaction ids assigned in the cluster during %d idle polls: %d at best", polls, best)
	if best >= polls {
		t.Errorf("every window of %d idle polls saw at least %d transaction ids assigned", polls, best)
	}
	if after := checkpointTuple(t, pool, p.Name()); after != before {
		t.Errorf("idle polls locked or wrote the checkpoint row: tuple %s became %s", before, after)
	}

	// A poll with work still moves the checkpoint, under the row lock.
	if _, err := store.Append(ctx, eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}, 0, idleTicked{}); err != nil {
		t.Fatal(err)
	}
	stepUntilProcessed(t, c, 1)
	if after := checkpointTuple(t, pool, p.Name()); after == before {
		t.Error("the checkpoint row did not change when the checkpoint moved")
	}
}

// stepUntilProcessed steps c until it has processed n events: transactions
// open elsewhere in the cluster may hold them back behind the horizon for a
// moment.
func stepUntilProcessed(t *testing.T, c *consumer, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for done := 0; done < n; {
		res, err := c.step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		done += res.processed
		if done > n || (!res.more && done < n) || time.Now().After(deadline) {
			t.Fatalf("processed %d events, want %d (last step %+v)", done, n, res)
		}
		<-tick.C
	}
}
