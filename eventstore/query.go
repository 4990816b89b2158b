package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Filter selects events of the log for audit replay. A nil or empty field does
// not constrain; the fields that are set must all hold (AND).
type Filter struct {
	// OwnerID keeps the events whose stream belongs to this user (the indexed
	// owner_id column).
	OwnerID *uuid.UUID
	// Stream keeps the events of one stream.
	Stream *Stream
	// ConnectionID keeps the events of stream connection:ID plus every event
	// whose payload has the top-level key "connection_id" equal to ID (jsonb
	// containment, so the value must be the UUID's canonical lower-case string,
	// which is how uuid.UUID marshals). It does not follow references
	// transitively: an account event that names only its account is not
	// included, however the account came to be.
	ConnectionID *uuid.UUID
	// EventTypes keeps the events whose type is one of these names.
	EventTypes []string
	// Actor keeps the events whose metadata names this actor (index
	// events_actor, migration 00016).
	Actor *string
	// From keeps events recorded at or after this instant (inclusive).
	From *time.Time
	// To keeps events recorded before this instant (exclusive), so that
	// consecutive ranges [a, b) [b, c) neither overlap nor leave a gap.
	To *time.Time
	// AsOf keeps events recorded at or before this instant (inclusive): the
	// log as it stood then. recorded_at is stamped by the writer just before
	// its insert commits, so an event whose transaction was still open at AsOf
	// counts as already there; nothing recorded later is ever shown.
	AsOf *time.Time
}

// Validate reports a filter that cannot be queried: an invalid stream type, an
// empty event type name, or a time range that is empty by construction.
func (f Filter) Validate() error {
	if f.Stream != nil && !f.Stream.Type.Valid() {
		return fmt.Errorf("filter: invalid stream type %q", f.Stream.Type)
	}
	for _, t := range f.EventTypes {
		if t == "" {
			return errors.New("filter: empty event type")
		}
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return fmt.Errorf("filter: from %s is not before to %s", f.From.Format(time.RFC3339Nano), f.To.Format(time.RFC3339Nano))
	}
	if f.From != nil && f.AsOf != nil && f.From.After(*f.AsOf) {
		return fmt.Errorf("filter: from %s is after as-of %s", f.From.Format(time.RFC3339Nano), f.AsOf.Format(time.RFC3339Nano))
	}
	return nil
}

// where renders f as a SQL condition over events with its arguments. Each
// condition is written so that an index serves it (checked with EXPLAIN on
// 300k rows): owner_id = $n uses the partial index events_owner, stream_id = $n
// the UNIQUE (stream_id, version) index, and the recorded_at bounds the BRIN
// index. The payload half of ConnectionID has no index yet, so that filter
// scans the log; a GIN (payload jsonb_path_ops) index would turn it into a
// BitmapOr of two index scans.
func (f Filter) where() (string, []any) {
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.OwnerID != nil {
		conds = append(conds, "owner_id = "+arg(*f.OwnerID))
	}
	if f.Stream != nil {
		conds = append(conds, "stream_id = "+arg(f.Stream.ID)+" AND stream_type = "+arg(string(f.Stream.Type)))
	}
	if f.ConnectionID != nil {
		// json.Marshal of a map of string cannot fail.
		doc, _ := json.Marshal(map[string]string{"connection_id": f.ConnectionID.String()})
		conds = append(conds, "((stream_type = 'connection' AND stream_id = "+arg(*f.ConnectionID)+
			") OR payload::jsonb @> "+arg(string(doc))+"::jsonb)")
	}
	if len(f.EventTypes) > 0 {
		conds = append(conds, "event_type = ANY("+arg(f.EventTypes)+"::text[])")
	}
	if f.Actor != nil {
		conds = append(conds, "metadata ->> 'actor' = "+arg(*f.Actor))
	}
	// recorded_at has microsecond precision and the driver truncates finer
	// bounds, which would move them across stored instants: a lower or an
	// exclusive upper bound rounds up instead, an inclusive upper bound down.
	if f.From != nil {
		conds = append(conds, "recorded_at >= "+arg(ceilMicrosecond(*f.From)))
	}
	if f.To != nil {
		conds = append(conds, "recorded_at < "+arg(ceilMicrosecond(*f.To)))
	}
	if f.AsOf != nil {
		conds = append(conds, "recorded_at <= "+arg(f.AsOf.Truncate(time.Microsecond)))
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// ceilMicrosecond rounds t up to the next whole microsecond.
func ceilMicrosecond(t time.Time) time.Time {
	if tr := t.Truncate(time.Microsecond); !tr.Equal(t) {
		return tr.Add(time.Microsecond)
	}
	return t
}

// pageSize is how many rows one statement of Query or VerifyChains reads. A
// single statement over the whole log would hold one snapshot, and with it
// the cluster-wide xmin horizon every projector and vacuum waits behind, for
// as long as a replay of millions of events takes; a page of 10,000 rows is
// read in milliseconds and costs a few megabytes.
const pageSize = 10_000

// Query calls fn with every event matching f, in global_position order. It
// reads in keyset pages of pageSize rows, each its own short statement, and
// calls fn only after a page's statement has finished, so that no snapshot
// stays open while fn writes its output; memory stays bounded by one page.
// The log's head position is read first and nothing after it is included, so
// a replay does not chase appends made meanwhile; an event of a transaction
// still open at the start whose position lies below the head is included if
// it commits before its page is read (a single snapshot would have left it
// out). A row whose metadata is malformed is passed to fn with
// Record.MetadataErr set, never an error. An error from fn stops the query and
// is returned as is (unwrapped), so callers can stop early with a sentinel of
// their own.
func (s *Store) Query(ctx context.Context, f Filter, fn func(Record) error) error {
	return s.query(ctx, f, fn, pageSize)
}

func (s *Store) query(ctx context.Context, f Filter, fn func(Record) error, limit int) error {
	if err := f.Validate(); err != nil {
		return err
	}
	where, args := f.where()
	head, err := s.head(ctx)
	if err != nil {
		return fmt.Errorf("query events: %w", err)
	}
	n := len(args)
	sql := `SELECT ` + recordColumns + ` FROM events WHERE ` + where +
		` AND global_position > $` + strconv.Itoa(n+1) + ` AND global_position <= $` + strconv.Itoa(n+2) +
		` ORDER BY global_position LIMIT $` + strconv.Itoa(n+3)
	after := int64(0)
	for {
		page, err := collectRecords(ctx, s.pool, sql, append(args, after, head, limit)...)
		if err != nil {
			return fmt.Errorf("query events: %w", err)
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < limit {
			return nil
		}
		after = page[len(page)-1].GlobalPosition
	}
}

// head returns the highest position in the log, 0 when it is empty.
func (s *Store) head(ctx context.Context) (int64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(global_position), 0) FROM events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("read the log's head: %w", err)
	}
	return head, nil
}

// collectRecords runs one statement selecting recordColumns and returns its rows.
func collectRecords(ctx context.Context, q Querier, sql string, args ...any) ([]Record, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Count returns how many events match f, for progress totals. It is a separate
// snapshot from a following Query, so on a live log the two may differ by the
// events appended in between.
func (s *Store) Count(ctx context.Context, f Filter) (int64, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	where, args := f.where()
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// QueryPage returns up to limit events matching f after global position
// after, in global_position order: one keyset page of the audit API, one
// short statement.
func (s *Store) QueryPage(ctx context.Context, f Filter, after int64, limit int) ([]Record, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("query events: limit must be positive")
	}
	where, args := f.where()
	n := len(args)
	sql := `SELECT ` + recordColumns + ` FROM events WHERE ` + where +
		` AND global_position > $` + strconv.Itoa(n+1) + ` ORDER BY global_position LIMIT $` + strconv.Itoa(n+2)
	recs, err := collectRecords(ctx, s.pool, sql, append(args, after, limit)...)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	return recs, nil
}

// ErrEventNotFound means no event has the requested id.
var ErrEventNotFound = errors.New("event not found")

// RecordByEventID returns the event with the given id.
func (s *Store) RecordByEventID(ctx context.Context, id uuid.UUID) (Record, error) {
	recs, err := collectRecords(ctx, s.pool, `SELECT `+recordColumns+` FROM events WHERE event_id = $1`, id)
	if err != nil {
		return Record{}, fmt.Errorf("read event %s: %w", id, err)
	}
	if len(recs) == 0 {
		return Record{}, ErrEventNotFound
	}
	return recs[0], nil
}
