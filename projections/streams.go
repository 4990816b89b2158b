package projections

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dashtam/dashtam/eventstore"
)

// Streams projects one row per stream of the log (type, owner, version, first
// and last event), for operators and auditors who need to find a stream
// without scanning the log. It reads no payload, so no event type is foreign
// to it.
type Streams struct{}

// Name identifies the projector.
func (Streams) Name() string { return "streams" }

// Tables lists the one table it owns.
func (Streams) Tables() []string { return []string{"streams"} }

// Schema creates the streams table under the given name.
func (Streams) Schema(t TableNames) string {
	return fmt.Sprintf(`
CREATE TABLE %[1]s (
    stream_id            uuid        PRIMARY KEY,
    stream_type          text        NOT NULL,
    owner_id             uuid,
    version              bigint      NOT NULL,
    first_recorded_at    timestamptz NOT NULL,
    last_recorded_at     timestamptz NOT NULL,
    last_event_type      text        NOT NULL,
    last_global_position bigint      NOT NULL
);
CREATE INDEX ON %[1]s (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX ON %[1]s (stream_type, last_recorded_at);
`, t.Of("streams"))
}

// streamRow is one stream's summary within a batch.
type streamRow struct {
	typ          string
	owner        uuid.UUID
	version      int64
	first, last  time.Time
	lastType     string
	lastPosition int64
	// created is set when the batch holds the stream's first event.
	created bool
}

// Apply folds the batch into one row per stream, COPYs the rows of the
// streams that begin in the batch (copyNewStreams) and upserts the others
// in one statement. The newest version wins field by field in the upsert,
// so a stream's events arriving in any order across batches (a parked
// event applied again, alone) give the same row.
func (Streams) Apply(ctx context.Context, tx pgx.Tx, t TableNames, batch []eventstore.Record) error {
	rows := make(map[uuid.UUID]*streamRow, len(batch))
	order := make([]uuid.UUID, 0, len(batch))
	for _, r := range batch {
		s, ok := rows[r.Stream.ID]
		if !ok {
			s = &streamRow{typ: string(r.Stream.Type), first: r.RecordedAt}
			rows[r.Stream.ID] = s
			order = append(order, r.Stream.ID)
		}
		if r.Version == 1 {
			s.created = true
		}
		if r.RecordedAt.Before(s.first) {
			s.first = r.RecordedAt
		}
		if r.Version > s.version {
			s.version, s.last, s.lastType, s.lastPosition = r.Version, r.RecordedAt, r.EventType, r.GlobalPosition
			if r.OwnerID != uuid.Nil {
				s.owner = r.OwnerID
			}
		}
	}
	if len(order) >= copyMinRows {
		var err error
		if order, err = copyNewStreams(ctx, tx, t, rows, order); err != nil {
			return err
		}
	}
	n := len(order)
	if n == 0 {
		return nil
	}
	var (
		ids       = make([][16]byte, n)
		types     = make([]string, n)
		owners    = make([]pgtype.UUID, n)
		versions  = make([]int64, n)
		firsts    = make([]time.Time, n)
		lasts     = make([]time.Time, n)
		lastTypes = make([]string, n)
		positions = make([]int64, n)
	)
	for i, id := range order {
		s := rows[id]
		ids[i], types[i], versions[i], firsts[i], lasts[i], lastTypes[i], positions[i] =
			id, s.typ, s.version, s.first, s.last, s.lastType, s.lastPosition
		owners[i] = pgtype.UUID{Bytes: s.owner, Valid: s.owner != uuid.Nil}
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s AS s (stream_id, stream_type, owner_id, version, first_recorded_at, last_recorded_at, last_event_type, last_global_position)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::bigint[])
ON CONFLICT (stream_id) DO UPDATE SET
    first_recorded_at    = least(s.first_recorded_at, excluded.first_recorded_at),
    owner_id             = CASE WHEN excluded.version > s.version THEN coalesce(excluded.owner_id, s.owner_id) ELSE coalesce(s.owner_id, excluded.owner_id) END,
    last_recorded_at     = CASE WHEN excluded.version > s.version THEN excluded.last_recorded_at ELSE s.last_recorded_at END,
    last_event_type      = CASE WHEN excluded.version > s.version THEN excluded.last_event_type ELSE s.last_event_type END,
    last_global_position = CASE WHEN excluded.version > s.version THEN excluded.last_global_position ELSE s.last_global_position END,
    version              = greatest(s.version, excluded.version)`, t.Of("streams")),
		ids, types, owners, versions, firsts, lasts, lastTypes, positions)
	if err != nil {
		return fmt.Errorf("upsert streams: %w", err)
	}
	return nil
}

// copyNewStreams COPYs in the rows of the streams whose first event is in
// the batch, and returns the others, left for the upsert. A stream's
// events are applied in version order, so no earlier batch wrote the row
// of a stream that begins in this one; a sync's batches are nearly all
// such streams (one per transaction), and COPY writes a row at a fraction
// of the upsert's cost. A parked event applied again later goes alone,
// below copyMinRows, through the upsert.
func copyNewStreams(ctx context.Context, tx pgx.Tx, t TableNames, rows map[uuid.UUID]*streamRow, order []uuid.UUID) ([]uuid.UUID, error) {
	var (
		rest   []uuid.UUID
		buf    = make([]byte, 0, 200*len(order))
		copied int
	)
	for _, id := range order {
		s := rows[id]
		if !s.created {
			rest = append(rest, id)
			continue
		}
		buf = appendUUIDText(buf, id)
		buf = append(buf, '\t')
		buf = appendCopyText(buf, s.typ)
		buf = append(buf, '\t')
		if s.owner == uuid.Nil {
			buf = append(buf, `\N`...)
		} else {
			buf = appendUUIDText(buf, s.owner)
		}
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, s.version, 10)
		buf = append(buf, '\t')
		buf = s.first.UTC().AppendFormat(buf, copyTimestamp)
		buf = append(buf, '\t')
		buf = s.last.UTC().AppendFormat(buf, copyTimestamp)
		buf = append(buf, '\t')
		buf = appendCopyText(buf, s.lastType)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, s.lastPosition, 10)
		buf = append(buf, '\n')
		copied++
	}
	if copied == 0 {
		return rest, nil
	}
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), fmt.Sprintf(`COPY %s (stream_id, stream_type, owner_id,
		version, first_recorded_at, last_recorded_at, last_event_type, last_global_position) FROM STDIN`, t.Of("streams")))
	if err != nil {
		return nil, fmt.Errorf("copy new streams: %w", err)
	}
	return rest, nil
}

// copyTimestamp is how a timestamptz is written for COPY's text format:
// in UTC to the microsecond, which is all PostgreSQL keeps.
const copyTimestamp = "2006-01-02 15:04:05.999999Z07:00"

// Reads selects every event without its payload: the summary needs only the envelope.
func (Streams) Reads() eventstore.Selection { return eventstore.Selection{Lean: true} }
