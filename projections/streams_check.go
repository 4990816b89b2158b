package projections

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
)

// Truncation is a stream whose log ends before the version the streams read
// model once saw: events were removed from its end (or the whole stream).
type Truncation struct {
	Stream      eventstore.Stream
	LogVersion  int64
	SeenVersion int64
}

// Error describes the truncation for an operator.
func (t Truncation) Error() string {
	return fmt.Sprintf("stream %s ends at version %d in the log, but the streams read model saw version %d: events were removed from its end",
		t.Stream, t.LogVersion, t.SeenVersion)
}

// FindTruncation compares every stream's head in the log with the version the
// live streams read model recorded and returns the first stream the log is
// shorter for, or nil. It complements the hash chains, which cannot see a
// removed tail. A read model that lags the log never gives a false alarm; one
// rebuilt after the removal cannot see it. ok is false when the read model
// does not exist yet.
func FindTruncation(ctx context.Context, q eventstore.Querier) (t *Truncation, ok bool, err error) {
	rows, err := q.Query(ctx, `SELECT to_regclass('streams') IS NOT NULL`)
	if err != nil {
		return nil, false, fmt.Errorf("check stream heads: %w", err)
	}
	exists, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil || !exists {
		return nil, false, err
	}
	rows, err = q.Query(ctx, `SELECT s.stream_type, s.stream_id, coalesce(h.version, 0), s.version
		FROM streams s
		LEFT JOIN LATERAL (SELECT max(e.version) AS version FROM events e WHERE e.stream_id = s.stream_id) h ON true
		WHERE coalesce(h.version, 0) < s.version
		ORDER BY s.stream_id
		LIMIT 1`)
	if err != nil {
		return nil, true, fmt.Errorf("check stream heads: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, true, rows.Err()
	}
	var (
		typ string
		id  uuid.UUID
		tr  Truncation
	)
	if err := rows.Scan(&typ, &id, &tr.LogVersion, &tr.SeenVersion); err != nil {
		return nil, true, fmt.Errorf("check stream heads: %w", err)
	}
	tr.Stream = eventstore.Stream{Type: eventstore.StreamType(typ), ID: id}
	return &tr, true, nil
}
