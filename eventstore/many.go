package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// StreamEvent is one event for one stream of an AppendMany: the event, the
// stream it goes to and the version the stream must be at.
type StreamEvent struct {
	Stream          Stream
	ExpectedVersion int64
	Event           Event
}

// appendManySQL appends one event to each of many streams in one
// statement: the shape of a sync, which records or updates thousands of
// transactions at once. Each event is linked to its stream's head exactly
// as appendOneSQL links a single one (the zero hash for a new stream, the
// order rule for an existing one); an input whose head is missing inserts
// nothing, and the caller, finding fewer rows than inputs, refuses the
// whole unit of work as a conflict.
//
// The head is looked up in a LATERAL subquery that LIMIT keeps from being
// flattened into a join: as a join, the planner, told the input holds
// thousands of rows, hashed every event committed so far to find the
// heads of a batch of new streams, which have none (a large sync's
// appends cost twice what they do now, growing with the log). As a
// subquery it runs once per input with an existing stream, as an index
// look-up, and not at all for a new one (docs/benchmarks.md).
const appendManySQL = `WITH input AS (
		SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], $7::json[], $8::bytea[])
			WITH ORDINALITY AS u(stream_type, stream_id, expected, event_id, event_type, schema_version, payload, digest, ord)
	), linked AS (
		SELECT i.*, CASE WHEN i.expected = 0 THEN $11::bytea ELSE e.hash END AS prev
		FROM input i
		LEFT JOIN LATERAL (
			SELECT e.hash FROM events e
			WHERE i.expected > 0 AND e.stream_id = i.stream_id AND e.version = i.expected
				AND e.stream_type = i.stream_type AND e.transaction_id <= pg_current_xact_id()
			LIMIT 1
		) e ON true
	)
	INSERT INTO events (stream_type, stream_id, version, event_id, event_type, schema_version,
		owner_id, payload, metadata, recorded_at, prev_hash, hash, digest_version)
	SELECT l.stream_type, l.stream_id, l.expected + 1, l.event_id, l.event_type, l.schema_version,
		$9::uuid, l.payload, $10::jsonb, $12::timestamptz, l.prev, sha256(l.prev || l.digest), 2
	FROM linked l WHERE l.prev IS NOT NULL
	ORDER BY l.ord
	RETURNING global_position`

// maxAppendMany bounds one AppendMany statement; larger batches are sent in
// several statements of the same transaction.
const maxAppendMany = 2000

// AppendMany appends one event to each of many streams within the unit of
// work, in as few statements as the batch needs, with the metadata of ctx
// for all of them. It returns the global position of the last event. When
// any stream is not at its expected version (or its head was written by a
// newer transaction) it returns a *ConflictError naming one such stream;
// some events may then have been inserted, so the unit of work must fail,
// which Transact does, running it again from a fresh load.
func (t *Tx) AppendMany(ctx context.Context, batch []StreamEvent) (int64, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	s := t.store
	md := MetadataFrom(ctx)
	if err := md.validate(); err != nil {
		return 0, fmt.Errorf("append many: %w", err)
	}
	mdJSON, err := json.Marshal(md)
	if err == nil {
		mdJSON, err = canonicalJSON(mdJSON)
	}
	if err != nil {
		return 0, fmt.Errorf("append many: encode metadata: %w", err)
	}
	var owner *[16]byte
	if md.OwnerID != uuid.Nil {
		b := [16]byte(md.OwnerID)
		owner = &b
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	var last int64
	for start := 0; start < len(batch); start += maxAppendMany {
		part := batch[start:min(start+maxAppendMany, len(batch))]
		n := len(part)
		var (
			types    = make([]string, n)
			streams  = make([][16]byte, n)
			expected = make([]int64, n)
			ids      = make([][16]byte, n)
			names    = make([]string, n)
			versions = make([]int32, n)
			payloads = make([]string, n)
			digests  = make([][]byte, n)
		)
		for i, se := range part {
			if !se.Stream.Type.Valid() || se.ExpectedVersion < 0 || se.Event == nil {
				return 0, fmt.Errorf("append many: invalid input for %s", se.Stream)
			}
			name, sv, payload, err := s.registry.encode(se.Event)
			if err != nil {
				return 0, fmt.Errorf("append to %s: %w", se.Stream, err)
			}
			id, err := s.newID()
			if err != nil {
				return 0, fmt.Errorf("append to %s: event id: %w", se.Stream, err)
			}
			types[i], streams[i], expected[i], ids[i] = string(se.Stream.Type), [16]byte(se.Stream.ID), se.ExpectedVersion, id
			names[i], versions[i], payloads[i] = name, int32(sv), string(payload)
			digests[i] = digestInput{
				digestVersion: digestCurrent, streamType: se.Stream.Type, streamID: se.Stream.ID,
				version: se.ExpectedVersion + 1, eventID: id, eventType: name, schemaVersion: sv,
				ownerID: md.OwnerID, ownerSet: md.OwnerID != uuid.Nil, recordedAt: at,
				payload: payload, metadata: mdJSON,
			}.digest()
		}
		rows, err := t.Query(ctx, appendManySQL, types, streams, expected, ids, names, versions, payloads, digests,
			owner, string(mdJSON), ZeroHash, at)
		if err != nil {
			return 0, classifyAppendError(part[0].Stream, part[0].ExpectedVersion, err)
		}
		positions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return 0, classifyAppendError(part[0].Stream, part[0].ExpectedVersion, err)
		}
		if len(positions) != n {
			return 0, &ConflictError{Stream: part[0].Stream, Expected: part[0].ExpectedVersion}
		}
		last = max(last, positions[len(positions)-1])
	}
	t.appended = true
	t.last = max(t.last, last)
	return last, nil
}

// LoadMany folds many aggregates at once, reading all their streams in one
// query per thousand: for aggregates with short streams (a transaction has
// a handful of events), where one query per stream would dominate a sync.
// Snapshots are not used. Streams without events come back folded from
// New, at version 0.
func (r *Repository[A, E]) LoadMany(ctx context.Context, q Querier, ids []uuid.UUID) (map[uuid.UUID]Loaded[A, E], error) {
	out := make(map[uuid.UUID]Loaded[A, E], len(ids))
	for _, id := range ids {
		out[id] = Loaded[A, E]{id: id, State: r.agg.New(id)}
	}
	const chunk = 1000
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		rows, err := q.Query(ctx, `SELECT `+recordColumns+` FROM events
			WHERE stream_id = ANY($1::uuid[]) AND stream_type = $2 ORDER BY stream_id, version`, part, string(r.agg.Type))
		if err != nil {
			return nil, fmt.Errorf("load %d %s streams: %w", len(part), r.agg.Type, err)
		}
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				rec, err := scanRecord(rows)
				if err != nil {
					return err
				}
				e, err := r.store.Decode(rec)
				if err != nil {
					return err
				}
				typed, ok := e.(E)
				if !ok {
					return fmt.Errorf("event %s (%T) of %s does not belong to this aggregate", rec.EventType, e, rec.Stream)
				}
				l := out[rec.Stream.ID]
				r.agg.Apply(l.State, typed)
				l.history = append(l.history, typed)
				l.Version = rec.Version
				out[rec.Stream.ID] = l
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("load %d %s streams: %w", len(part), r.agg.Type, err)
		}
	}
	return out, nil
}

// UpdateMany is UpdateTx for many aggregates of short streams at once:
// it loads them (LoadMany), asks decide for each, and appends what was
// decided — streams with one new event in one AppendMany, any with more one
// by one. Decided events are folded into the states. A stream that moved
// meanwhile makes it return a conflict for Transact to retry.
func (r *Repository[A, E]) UpdateMany(ctx context.Context, tx *Tx, ids []uuid.UUID,
	decide func(id uuid.UUID, a A) ([]E, error)) (map[uuid.UUID]Loaded[A, E], error) {
	loaded, err := r.LoadMany(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	var single []StreamEvent
	for _, id := range ids {
		l := loaded[id]
		events, err := decide(id, l.State)
		if err != nil {
			return nil, err
		}
		switch len(events) {
		case 0:
			continue
		case 1:
			single = append(single, StreamEvent{Stream: r.Stream(id), ExpectedVersion: l.Version, Event: events[0]})
		default:
			generic := make([]Event, len(events))
			for i, e := range events {
				generic[i] = e
			}
			if _, err := tx.Append(ctx, r.Stream(id), l.Version, generic...); err != nil {
				return nil, err
			}
		}
		for _, e := range events {
			r.agg.Apply(l.State, e)
		}
		l.Version += int64(len(events))
		loaded[id] = l
	}
	if _, err := tx.AppendMany(ctx, single); err != nil {
		return nil, err
	}
	return loaded, nil
}
