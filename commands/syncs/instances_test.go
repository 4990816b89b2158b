package syncs_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/eventstore"
)

// TestTwoInstancesRunOneSync runs the same sync on two instances at once
// — what happens when river rescues a job it believes stuck while its
// first worker still runs it. The units of work of both are decisions
// under optimistic concurrency, so the result is the uninterrupted run's:
// the same folded state and index, the same account and transaction
// events (none twice), one SyncCompleted; the instance that finds its
// sync finished looks again later instead of failing. Both list the
// accounts before either writes, so their units of work interleave.
func TestTwoInstancesRunOneSync(t *testing.T) {
	reference := func() (state, map[eventstore.StreamType]int) {
		w := newWorld(t, worldOptions{batch: 2})
		before, after := convergeSnapshots(w)
		before()
		p := user()
		id := w.connectSandbox(p, "Reference", "default")
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		after()
		w.clock.Advance(time.Hour)
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		return w.folded(), w.eventCounts()
	}
	want, wantCounts := reference()

	for round := range 4 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			w := newWorld(t, worldOptions{batch: 2, maxConns: 16})
			before, after := convergeSnapshots(w)
			before()
			p := user()
			id := w.connectSandbox(p, "Twice", "default")
			require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
			after()
			w.clock.Advance(time.Hour)
			v := w.request(p, id)
			other, err := syncs.NewHandler(w.syncDeps)
			require.NoError(t, err)

			// Both list the accounts before either writes anything: the
			// first request to the bank's accounts waits for the second.
			listing := make(chan struct{})
			var arrived atomic.Int32
			w.bank.mu.Lock()
			w.bank.onRequest = func(r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "/accounts") {
					return
				}
				if arrived.Add(1) == 2 {
					close(listing)
				}
				<-listing
			}
			w.bank.mu.Unlock()
			job := w.syncJob(v.ID)
			start := make(chan struct{})
			errs := make(chan error, 2)
			for _, h := range []*syncs.Handler{w.syncs, other} {
				go func() {
					<-start
					errs <- h.RunSync(context.Background(), job)
				}()
			}
			close(start)
			for range 2 {
				require.NoError(t, <-errs, "the instance that lost ends its job: the sync is over")
			}

			w.bank.mu.Lock()
			w.bank.onRequest = nil
			w.bank.mu.Unlock()
			completed := 0
			for _, e := range w.connectionEvents(id) {
				if c, ok := e.(connection.SyncCompleted); ok && c.SyncID == v.ID {
					completed++
				}
			}
			assert.Equal(t, 1, completed)
			assert.Equal(t, want, w.folded())
			got := w.eventCounts()
			assert.Equal(t, wantCounts[eventstore.StreamAccount], got[eventstore.StreamAccount], "account events")
			assert.Equal(t, wantCounts[eventstore.StreamTransaction], got[eventstore.StreamTransaction], "transaction events")
			w.indexMatchesLog()
			// The job run again (river rescuing it, say) finds nothing to do.
			require.NoError(t, w.syncs.RunSync(context.Background(), job))
			assert.Equal(t, got, w.eventCounts())
		})
	}
}
