package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Record is one stored event as read back from the log.
type Record struct {
	GlobalPosition int64
	TransactionID  uint64
	Stream         Stream
	Version        int64
	EventID        uuid.UUID
	EventType      string
	SchemaVersion  int
	OwnerID        uuid.UUID
	// Payload is the stored JSON, not upcast; Decode upcasts.
	Payload  json.RawMessage
	Metadata Metadata
	// RawMetadata is the stored metadata JSON, as audit output and the chain verifier need it.
	RawMetadata json.RawMessage
	// MetadataErr is set when RawMetadata does not decode into Metadata (a
	// row that bypassed the append path and the table's check, see
	// docs/event-store.md); Metadata then holds only OwnerID. The read does
	// not fail, so that one such row cannot stop every reader of the log:
	// each consumer decides (projectors may park it, audit verify reports it).
	MetadataErr error
	RecordedAt  time.Time
	PrevHash    []byte
	Hash        []byte
	// DigestVersion is the digest layout the event's hash was computed with
	// (events.digest_version): 1 for events written before migration 00008.
	DigestVersion int
	// ownerSet says owner_id was not NULL; OwnerID reads NULL as uuid.Nil,
	// and the chain tells the two apart.
	ownerSet bool
}

// OwnerSet says owner_id was stored (not NULL): OwnerID reads NULL as
// uuid.Nil, and digest version 2 hashes the difference.
func (r Record) OwnerSet() bool { return r.ownerSet }

// SetOwner sets OwnerID as the owner_id column stores it, nil for NULL:
// for code that builds a record from raw columns and hashes it (ChainHash).
func (r *Record) SetOwner(owner *uuid.UUID) {
	r.OwnerID, r.ownerSet = uuid.Nil, owner != nil
	if owner != nil {
		r.OwnerID = *owner
	}
}

// Position is a place in the log in commit order: subscriptions resume after it.
type Position struct {
	TransactionID  uint64
	GlobalPosition int64
}

// Position returns the record's place in commit order.
func (r Record) Position() Position {
	return Position{TransactionID: r.TransactionID, GlobalPosition: r.GlobalPosition}
}

// Less orders positions as the subscription predicate does.
func (p Position) Less(q Position) bool {
	if p.TransactionID != q.TransactionID {
		return p.TransactionID < q.TransactionID
	}
	return p.GlobalPosition < q.GlobalPosition
}

// recordColumns is the select list scanRecord expects. pgx maps xid8 to
// uint64 directly, so transaction_id needs no cast.
const recordColumns = `global_position, transaction_id, stream_type, stream_id, version, event_id,
	event_type, schema_version, owner_id, payload, metadata, recorded_at, prev_hash, hash, digest_version`

// scanRecord reads one row selected with recordColumns.
func scanRecord(row pgx.Row) (Record, error) { return scanRecordMemo(row, nil) }

// metaMemo keeps the last metadata a read decoded. The events of one
// append share their metadata (AppendMany writes one document for a whole
// batch), so a read of a large sync's log decodes it once a batch instead
// of once an event: encoding/json took a fifth of a shared read's CPU.
// Metadata holds only strings, so records may share a decoded copy.
type metaMemo struct {
	raw []byte
	md  Metadata
}

// scanRecordMemo is scanRecord that reuses the metadata decoded for the
// previous row when the bytes are the same; memo may be nil.
func scanRecordMemo(row pgx.Row, memo *metaMemo) (Record, error) {
	var (
		r       Record
		typ     string
		owner   *uuid.UUID
		payload []byte
		meta    []byte
	)
	if err := row.Scan(&r.GlobalPosition, &r.TransactionID, &typ, &r.Stream.ID, &r.Version, &r.EventID,
		&r.EventType, &r.SchemaVersion, &owner, &payload, &meta, &r.RecordedAt, &r.PrevHash, &r.Hash, &r.DigestVersion); err != nil {
		return Record{}, err
	}
	r.Stream.Type = StreamType(typ)
	if owner != nil {
		r.OwnerID, r.ownerSet = *owner, true
	}
	r.Payload = payload
	r.RawMetadata = meta
	if memo != nil && memo.raw != nil && bytes.Equal(meta, memo.raw) {
		r.RawMetadata, r.Metadata = memo.raw, memo.md
	} else if err := json.Unmarshal(meta, &r.Metadata); err != nil {
		// Unmarshal may have filled some fields before failing: keep none,
		// so that no consumer acts on half of a malformed document.
		r.Metadata = Metadata{}
		r.MetadataErr = fmt.Errorf("metadata of event %s at %s v%d: %w", r.EventID, r.Stream, r.Version, err)
	} else if memo != nil {
		memo.raw, memo.md = meta, r.Metadata
	}
	r.Metadata.OwnerID = r.OwnerID
	return r, nil
}

// Decode returns the record's typed event through the store's registry,
// its personal fields opened (see WithPersonalData).
func (s *Store) Decode(r Record) (Event, error) { return s.DecodeContext(context.Background(), r) }

// DecodeContext is Decode with a context for the key lookups of personal data.
func (s *Store) DecodeContext(ctx context.Context, r Record) (Event, error) {
	e, err := s.registry.Decode(r.EventType, r.SchemaVersion, r.Payload)
	if err == nil {
		e, err = s.openEvent(ctx, e, r.OwnerID)
	}
	if err != nil {
		return nil, fmt.Errorf("event %s at %s v%d: %w", r.EventID, r.Stream, r.Version, err)
	}
	return e, nil
}

// ReadStream returns the events of stream with version > afterVersion, in version order.
func (s *Store) ReadStream(ctx context.Context, stream Stream, afterVersion int64) ([]Record, error) {
	return readStream(ctx, s.pool, stream, afterVersion)
}

// readStream is ReadStream through q, so a unit of work reads in its own transaction.
func readStream(ctx context.Context, q Querier, stream Stream, afterVersion int64) ([]Record, error) {
	rows, err := q.Query(ctx,
		`SELECT `+recordColumns+` FROM events WHERE stream_id = $1 AND stream_type = $2 AND version > $3 ORDER BY version`,
		stream.ID, string(stream.Type), afterVersion)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return out, nil
}

// readAllSQL is the subscription predicate of watermill-sql's Postgres schema:
// strictly after the checkpoint in (transaction id, position) order, and only
// transactions older than the oldest one still running. An event committed
// out of order (a lower position committing later) is therefore never skipped:
// it is not visible past the horizon until its transaction and every older one
// has ended.
const readAllSQL = `SELECT ` + recordColumns + ` FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2)
	  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY events.transaction_id, events.global_position
	LIMIT $3`

// readAllPastSQL is readAllSQL with a horizon that looks past the
// transactions in $4: the oldest transaction still running that is not one
// of them (or, with none, the next transaction id to be handed out). The
// caller vouches that those transactions never append events (a
// projector's batch writes only its read model), so nothing can commit
// behind them; every other transaction below the horizon has ended, as
// with readAllSQL.
var readAllPastSQL = `SELECT ` + recordColumns + ` FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2)
	  AND transaction_id < ` + horizonPast(4) + `
	ORDER BY events.transaction_id, events.global_position
	LIMIT $3`

// horizonSQL is a read's xid horizon: the oldest transaction still running.
const horizonSQL = `pg_snapshot_xmin(pg_current_snapshot())`

// horizonPast is the horizon of a read that looks past the running
// transactions whose ids are in parameter $n (an xid8 array): the oldest
// running transaction not among them, or the next id to be handed out.
func horizonPast(n int) string {
	return fmt.Sprintf(`(SELECT coalesce(min(x.id), pg_snapshot_xmax(pg_current_snapshot()))
	                       FROM pg_snapshot_xip(pg_current_snapshot()) AS x(id)
	                      WHERE x.id <> ALL ($%d::xid8[]))`, n)
}

// ReadAll returns up to limit events after pos in commit order, stopping at the
// horizon of transactions still in flight.
func (s *Store) ReadAll(ctx context.Context, after Position, limit int) ([]Record, error) {
	return ReadAllTx(ctx, s.pool, after, limit)
}

// Querier is what ReadAllTx needs: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadAllTx is ReadAll on a given querier, so a projector can read in the same
// transaction that writes its rows and checkpoint.
func ReadAllTx(ctx context.Context, q Querier, after Position, limit int) ([]Record, error) {
	return ReadAllPast(ctx, q, after, limit, nil)
}

// ReadAllPast is ReadAllTx with a horizon that looks past the running
// transactions whose ids are in past, which the caller knows never append
// events: its own projectors' batch transactions, say. Without it, each
// projector's short write transaction holds back every other reader until
// it commits, and projectors running side by side wait on one another.
func ReadAllPast(ctx context.Context, q Querier, after Position, limit int, past []uint64) ([]Record, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("read all: limit must be positive")
	}
	query, args := readAllSQL, []any{after.TransactionID, after.GlobalPosition, limit}
	if len(past) > 0 {
		query, args = readAllPastSQL, append(args, past)
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read all after %v: %w", after, err)
	}
	defer rows.Close()
	// Small first: a projector caught up polls with a limit of a thousand
	// and mostly reads a few, and a thousand records allocated (and zeroed)
	// per poll made most of a busy server's garbage. A batch that fills the
	// small slice grows to the whole limit at once: growing by doubling
	// copied large records over and over and took catch-up reads from
	// ~190,000 to ~135,000 events/s (docs/benchmarks.md).
	out := make([]Record, 0, min(limit, 64))
	var memo metaMemo
	for rows.Next() {
		r, err := scanRecordMemo(rows, &memo)
		if err != nil {
			return nil, fmt.Errorf("read all after %v: %w", after, err)
		}
		if len(out) == cap(out) && cap(out) < limit {
			out = append(make([]Record, 0, limit), out...)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read all after %v: %w", after, err)
	}
	return out, nil
}

// ReadPositions returns the events at the given global positions in commit
// order, leaving out positions the log does not hold; retrying a projector's
// parked events reads them back with it.
func ReadPositions(ctx context.Context, q Querier, positions []int64) ([]Record, error) {
	recs, err := collectRecords(ctx, q, `SELECT `+recordColumns+` FROM events
		WHERE global_position = ANY($1::bigint[]) ORDER BY transaction_id, global_position`, positions)
	if err != nil {
		return nil, fmt.Errorf("read events at %d positions: %w", len(positions), err)
	}
	return recs, nil
}

// Selection narrows a read of the whole log to what one reader needs, so that
// a projector of a few stream types does not read, transfer and decode the
// payloads of every transaction of a large sync (docs/projections.md).
type Selection struct {
	// StreamTypes, when not empty, keeps only the events of these stream types.
	StreamTypes []StreamType
	// Lean leaves out payload, metadata and hashes: for readers of the
	// envelope only (stream, version, type, owner, time).
	Lean bool
}

// leanColumns is the select list of a lean read, in scanLean's order.
const leanColumns = `global_position, transaction_id, stream_type, stream_id, version, event_id,
	event_type, schema_version, owner_id, recorded_at, digest_version`

// scanLean reads one row selected with leanColumns, after the given leading
// columns; Payload, RawMetadata and the hashes stay nil.
func scanLean(row pgx.Row, lead ...any) (Record, error) {
	var (
		r     Record
		typ   string
		owner *uuid.UUID
	)
	dest := append(lead, &r.GlobalPosition, &r.TransactionID, &typ, &r.Stream.ID, &r.Version, &r.EventID,
		&r.EventType, &r.SchemaVersion, &owner, &r.RecordedAt, &r.DigestVersion)
	if err := row.Scan(dest...); err != nil {
		return Record{}, err
	}
	r.Stream.Type = StreamType(typ)
	if owner != nil {
		r.OwnerID, r.ownerSet = *owner, true
	}
	r.Metadata.OwnerID = r.OwnerID
	return r, nil
}

// scanSelected reads one row of a selected read, full or lean, after the
// given leading columns.
func scanSelected(row pgx.Row, lean bool, lead ...any) (Record, error) {
	if lean {
		return scanLean(row, lead...)
	}
	if len(lead) == 0 {
		return scanRecord(row)
	}
	// scanRecord has no leading columns: scan them through a wrapper row.
	return scanRecord(leadRow{row: row, lead: lead})
}

// leadRow prepends destinations for leading columns to a Scan.
type leadRow struct {
	row  pgx.Row
	lead []any
}

func (l leadRow) Scan(dest ...any) error { return l.row.Scan(append(l.lead, dest...)...) }

// ReadSelected is ReadAllTx narrowed by sel: up to limit matching events after
// pos in commit order, behind the xid horizon. It also returns the position
// the read has scanned past: the last event returned after a full read, and
// after a short one the last event of the whole log behind the same
// statement's horizon (or after, when there is none). Every matching event up
// to that position has been returned, so a reader may move its checkpoint
// there even over events it skipped: events behind the horizon are final,
// and one committing later has a transaction id at or past the horizon and
// therefore sorts after it. The horizon and the tail are read in one
// statement, one snapshot; two statements could each see another horizon
// and let the tail run past a matching event the read did not see.
//
// past are running transactions the caller knows never append, whose ids
// the horizon looks past (ReadAllPast); nil for none.
func ReadSelected(ctx context.Context, q Querier, after Position, limit int, sel Selection, past []uint64) ([]Record, Position, error) {
	if limit <= 0 {
		return nil, after, fmt.Errorf("read selected: limit must be positive")
	}
	if len(sel.StreamTypes) == 0 && !sel.Lean {
		recs, err := ReadAllPast(ctx, q, after, limit, past)
		return recs, lastOr(recs, after), err
	}
	cols := recordColumns
	if sel.Lean {
		cols = leanColumns
	}
	// The horizon's parameter follows the others: $4 alone, $5 after the
	// stream types.
	horizon := func(n int) (string, []any) {
		if len(past) == 0 {
			return horizonSQL, nil
		}
		return horizonPast(n), []any{past}
	}
	if len(sel.StreamTypes) == 0 {
		h, extra := horizon(4)
		recs, err := readSelectedRows(ctx, q, `SELECT false, `+cols+` FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2)
	  AND transaction_id < `+h+`
	ORDER BY events.transaction_id, events.global_position
	LIMIT $3`, after, limit, sel.Lean, nil, extra...)
		return recs, lastOr(recs, after), err
	}
	types := make([]string, len(sel.StreamTypes))
	for i, t := range sel.StreamTypes {
		types[i] = string(t)
	}
	h, extra := horizon(5)
	// The second branch is the tail: the newest event behind the horizon,
	// flagged true. Its payload is read once per step, whatever it is.
	tail := Position{}
	recs, err := readSelectedRows(ctx, q, `(SELECT false, `+cols+` FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2)
	  AND transaction_id < `+h+`
	  AND stream_type = ANY($4::text[])
	ORDER BY events.transaction_id, events.global_position
	LIMIT $3)
UNION ALL
(SELECT true, `+cols+` FROM events
	WHERE transaction_id < `+h+`
	ORDER BY events.transaction_id DESC, events.global_position DESC
	LIMIT 1)`, after, limit, sel.Lean, &tail, append([]any{types}, extra...)...)
	if err != nil {
		return nil, after, err
	}
	scanned := lastOr(recs, after)
	if len(recs) < limit && scanned.Less(tail) {
		scanned = tail
	}
	return recs, scanned, nil
}

// lastOr returns the position of the last record, or pos when there is none.
func lastOr(recs []Record, pos Position) Position {
	if len(recs) == 0 {
		return pos
	}
	return recs[len(recs)-1].Position()
}

// readSelectedRows runs a selected read whose rows lead with a flag: false
// for a matching event, true for the tail, whose position goes to tail.
func readSelectedRows(ctx context.Context, q Querier, sql string, after Position, limit int, lean bool, tail *Position, extra ...any) ([]Record, error) {
	args := append([]any{after.TransactionID, after.GlobalPosition, limit}, extra...)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read selected after %v: %w", after, err)
	}
	defer rows.Close()
	out := make([]Record, 0, min(limit, 64))
	for rows.Next() {
		var isTail bool
		r, err := scanSelected(rows, lean, &isTail)
		if err != nil {
			return nil, fmt.Errorf("read selected after %v: %w", after, err)
		}
		if isTail {
			*tail = r.Position()
			continue
		}
		if len(out) == cap(out) && cap(out) < limit {
			out = append(make([]Record, 0, limit), out...)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read selected after %v: %w", after, err)
	}
	return out, nil
}

// committedAfterSQL finds the first visible event after ($1, $2) in commit
// order, reading only the stretches of the commit-order index between the
// transactions this statement's snapshot sees running. A plain scan from
// the position would walk, entry by entry and with a heap visit each, over
// every row of a running batch (2,000 of them while a sync writes) before
// it reached a committed one; those rows are invisible by definition, so
// skipping them changes no answer. The stretches are: from the position to
// the first running transaction after it, between consecutive running
// ones, and from the last to the snapshot's xmax (later transactions are
// invisible too). The ORDER BY and LIMIT keep even a generic plan on the
// index.
const committedAfterSQL = `WITH s AS (SELECT pg_current_snapshot() AS snap),
stretch AS (
	SELECT lo, lo_pos, lead(lo, 1, xmax) OVER (ORDER BY lo) AS hi FROM (
		SELECT $1::xid8 AS lo, $2::bigint AS lo_pos, pg_snapshot_xmax(s.snap) AS xmax FROM s
		UNION ALL
		SELECT x.id, 9223372036854775807, pg_snapshot_xmax(s.snap)
		  FROM s, pg_snapshot_xip(s.snap) AS x(id) WHERE x.id > $1::xid8
	) AS bounds
)
SELECT EXISTS (SELECT 1 FROM stretch, LATERAL (SELECT 1 FROM events
	WHERE (events.transaction_id, events.global_position) > (stretch.lo, stretch.lo_pos)
	  AND events.transaction_id < stretch.hi
	ORDER BY events.transaction_id, events.global_position LIMIT 1) AS next)`

// CommittedAfter reports whether any committed event follows pos in commit
// order, behind the xid horizon or not. After a read that came back short,
// a yes means events wait behind a transaction still open (or committed
// since the read), worth polling for; a no means the reader is caught up
// and may sleep until the next append is signalled.
func CommittedAfter(ctx context.Context, q Querier, pos Position) (bool, error) {
	rows, err := q.Query(ctx, committedAfterSQL, pos.TransactionID, pos.GlobalPosition)
	if err != nil {
		return false, fmt.Errorf("look past the horizon after %v: %w", pos, err)
	}
	ok, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil {
		return false, fmt.Errorf("look past the horizon after %v: %w", pos, err)
	}
	return ok, nil
}
