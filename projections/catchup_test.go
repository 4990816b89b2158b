package projections_test

import (
	"sync"
	"testing"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// TestCatchUpBatchesGrowWhileBehind: a consumer whose batch was full reads
// the larger catch-up batch next, and once caught up reads the small batch
// again, so that a projector far behind pays fewer round trips and one that
// keeps up still writes short transactions.
func TestCatchUpBatchesGrowWhileBehind(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()
	var (
		mu    sync.Mutex
		sizes []int
	)
	record := projections.WithAfterCommit(func(_ string, batch []eventstore.Record) {
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
	})
	s := newStream()
	v := mustAppend(t, store, s, 0, 130)
	p := newSeen("catch_up")
	r, err := projections.NewRunner(store, p, opts(projections.WithBatchSize(10), projections.WithCatchUpBatchSize(50), record, ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	running(t, r.Run)
	head := headOf(t, pool)
	eventually(t, "the backlog", func() bool { return checkpointOf(t, pool, "catch_up") == head })
	mustAppend(t, store, s, v, 25)
	head = headOf(t, pool)
	eventually(t, "the new events", func() bool { return checkpointOf(t, pool, "catch_up") == head })
	if n := countRows(t, pool, "catch_up"); n != 155 {
		t.Fatalf("%d events applied, want 155", n)
	}

	mu.Lock()
	defer mu.Unlock()
	// 10 (full), then 50, 50 while behind, then the short 20; caught up,
	// the small batch again, 10 (full), then the catch-up batch takes the
	// remaining 15.
	want := []int{10, 50, 50, 20, 10, 15}
	if len(sizes) != len(want) {
		t.Fatalf("batches %v, want %v", sizes, want)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("batches %v, want %v", sizes, want)
		}
	}
}
