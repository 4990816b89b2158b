package projections_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// TestStreamsRowsMatchTheLogInAnyBatchSize writes streams that begin in a
// batch (COPYed from copyMinRows rows up) beside streams that began in an
// earlier one (upserted), at batch sizes on both sides of copyMinRows, and
// compares every row of the read model with the log's own summary.
func TestStreamsRowsMatchTheLogInAnyBatchSize(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{7, 100, 1000} {
		t.Run(fmt.Sprintf("batch_%d", batch), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := mustStore(t)
			var streams []eventstore.Stream
			var versions []int64
			// The runner starts after each round's appends, so that it
			// reads them in batches of the size under test.
			caughtUp := func() {
				r, err := projections.NewRunner(store, projections.Streams{}, opts(projections.WithBatchSize(batch), ownerOf(t, store))...)
				require.NoError(t, err)
				stop := running(t, r.Run)
				defer stop()
				eventually(t, "streams caught up", func() bool {
					var behind bool
					err := store.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events e
						LEFT JOIN streams s ON s.stream_id = e.stream_id AND s.version >= e.version WHERE s.stream_id IS NULL)`).Scan(&behind)
					return err == nil && !behind // the table exists once the runner has started
				})
			}
			for round := range 3 {
				for i := range streams { // every other stream grows
					if i%2 == round%2 {
						versions[i] = mustAppend(t, store, streams[i], versions[i], 1+i%3)
					}
				}
				for range 150 { // new streams, one to three events each
					s := newStream()
					streams = append(streams, s)
					versions = append(versions, mustAppend(t, store, s, 0, 1+len(streams)%3))
				}
				caughtUp()
			}

			diff := func(q string) int {
				var n int
				require.NoError(t, store.Pool().QueryRow(ctx, q).Scan(&n))
				return n
			}
			const fromLog = `SELECT e.stream_id, e.stream_type, f.owner_id, e.version, f.first_at, e.recorded_at, e.event_type, e.global_position
				FROM events e JOIN (SELECT stream_id, max(version) AS v, min(recorded_at) AS first_at,
					(array_agg(owner_id ORDER BY version DESC) FILTER (WHERE owner_id IS NOT NULL))[1] AS owner_id
					FROM events GROUP BY stream_id) f ON f.stream_id = e.stream_id AND f.v = e.version`
			const fromModel = `SELECT stream_id, stream_type, owner_id, version, first_recorded_at, last_recorded_at, last_event_type, last_global_position FROM streams`
			require.Equal(t, len(streams), diff(`SELECT count(*) FROM streams`))
			require.Zero(t, diff(`SELECT count(*) FROM ((`+fromLog+`) EXCEPT (`+fromModel+`)) AS d`), "rows the read model lacks or holds wrong")
			require.Zero(t, diff(`SELECT count(*) FROM ((`+fromModel+`) EXCEPT (`+fromLog+`)) AS d`), "rows the log does not explain")
		})
	}
}
