package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
)

// EventTypeCounts projects how many events of each type each stream type has
// recorded and when the first and last were: a cheap view of what the system
// does, for operators and for spotting event types nobody emits any more.
type EventTypeCounts struct{}

// Name identifies the projector.
func (EventTypeCounts) Name() string { return "event_type_counts" }

// Tables lists the one table it owns.
func (EventTypeCounts) Tables() []string { return []string{"event_type_counts"} }

// Schema creates the event_type_counts table under the given name.
func (EventTypeCounts) Schema(t TableNames) string {
	return fmt.Sprintf(`
CREATE TABLE %[1]s (
    stream_type       text        NOT NULL,
    event_type        text        NOT NULL,
    events            bigint      NOT NULL,
    first_recorded_at timestamptz NOT NULL,
    last_recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (stream_type, event_type)
);
`, t.Of("event_type_counts"))
}

type typeKey struct{ stream, event string }

type typeCount struct {
	n           int64
	first, last time.Time
}

// Apply adds the batch's counts per (stream type, event type) in one upsert.
func (EventTypeCounts) Apply(ctx context.Context, tx pgx.Tx, t TableNames, batch []eventstore.Record) error {
	counts := map[typeKey]*typeCount{}
	order := []typeKey{}
	for _, r := range batch {
		k := typeKey{string(r.Stream.Type), r.EventType}
		c, ok := counts[k]
		if !ok {
			c = &typeCount{first: r.RecordedAt, last: r.RecordedAt}
			counts[k] = c
			order = append(order, k)
		}
		c.n++
		if r.RecordedAt.Before(c.first) {
			c.first = r.RecordedAt
		}
		if r.RecordedAt.After(c.last) {
			c.last = r.RecordedAt
		}
	}
	n := len(order)
	streams, events, ns := make([]string, n), make([]string, n), make([]int64, n)
	firsts, lasts := make([]time.Time, n), make([]time.Time, n)
	for i, k := range order {
		c := counts[k]
		streams[i], events[i], ns[i], firsts[i], lasts[i] = k.stream, k.event, c.n, c.first, c.last
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s AS c (stream_type, event_type, events, first_recorded_at, last_recorded_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
ON CONFLICT (stream_type, event_type) DO UPDATE SET
    events            = c.events + excluded.events,
    first_recorded_at = least(c.first_recorded_at, excluded.first_recorded_at),
    last_recorded_at  = greatest(c.last_recorded_at, excluded.last_recorded_at)`, t.Of("event_type_counts")),
		streams, events, ns, firsts, lasts)
	if err != nil {
		return fmt.Errorf("upsert event type counts: %w", err)
	}
	return nil
}

// Reads selects every event without its payload: counts need only the envelope.
func (EventTypeCounts) Reads() eventstore.Selection { return eventstore.Selection{Lean: true} }
