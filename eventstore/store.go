package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store appends to and reads from the events table.
type Store struct {
	pool     *pgxpool.Pool
	registry *Registry
	now      func() time.Time
	newID    func() (uuid.UUID, error)
	appended *Signal
}

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store stamp recorded_at from now instead of the wall clock.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithIDs makes the store draw event ids from newID (tests use a fixed sequence).
func WithIDs(newID func() (uuid.UUID, error)) Option { return func(s *Store) { s.newID = newID } }

// New returns a Store over pool that encodes and decodes events through registry.
func New(pool *pgxpool.Pool, registry *Registry, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("eventstore: nil pool")
	}
	if registry == nil {
		return nil, errors.New("eventstore: nil registry")
	}
	s := &Store{pool: pool, registry: registry, now: time.Now, newID: uuid.NewV7, appended: NewSignal()}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Pool returns the connection pool, for packages that read the log in bulk.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Registry returns the registry the store decodes with.
func (s *Store) Registry() *Registry { return s.registry }

// Appended is raised after every successful append in this process, so that
// local projectors wake at once instead of waiting for their poll.
func (s *Store) Appended() *Signal { return s.appended }

// AppendResult says where an append landed.
type AppendResult struct {
	// Version is the stream's version after the append.
	Version int64
	// LastPosition is the global position of the last appended event.
	LastPosition int64
}

// Append stores events at the end of stream if the stream is at
// expectedVersion (0 for a new stream), atomically and in one round trip.
// It returns a *ConflictError (errors.Is ErrConflict) when the stream moved;
// then nothing of this batch is stored. Metadata comes from ctx (WithMetadata).
func (s *Store) Append(ctx context.Context, stream Stream, expectedVersion int64, events ...Event) (AppendResult, error) {
	if len(events) == 0 {
		return AppendResult{}, fmt.Errorf("append to %s: no events", stream)
	}
	if !stream.Type.Valid() {
		return AppendResult{}, fmt.Errorf("append to %s: invalid stream type", stream)
	}
	if expectedVersion < 0 {
		return AppendResult{}, fmt.Errorf("append to %s: negative expected version", stream)
	}
	md := MetadataFrom(ctx)
	mdJSON, err := json.Marshal(md)
	if err == nil {
		mdJSON, err = canonicalJSON(mdJSON)
	}
	if err != nil {
		return AppendResult{}, fmt.Errorf("append to %s: encode metadata: %w", stream, err)
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	n := len(events)
	ids := make([][16]byte, n) // bytes, not uuid.UUID: its driver.Valuer would send text
	types := make([]string, n)
	versions := make([]int32, n)
	payloads := make([]string, n)
	metas := make([]string, n)
	digests := make([][]byte, n)
	for i, e := range events {
		name, sv, payload, err := s.registry.encode(e)
		if err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		// The stored payload is the canonical form, so the digest covers
		// exactly the bytes sent.
		if payload, err = canonicalJSON(payload); err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: encode %s: %w", stream, name, err)
		}
		id, err := s.newID()
		if err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: event id: %w", stream, err)
		}
		d := digestInput{
			streamType: stream.Type, streamID: stream.ID, version: expectedVersion + int64(i) + 1,
			eventID: id, eventType: name, schemaVersion: sv, ownerID: md.OwnerID, recordedAt: at,
			payload: payload, metadata: mdJSON,
		}.digest()
		ids[i], types[i], versions[i], payloads[i], metas[i], digests[i] = id, name, int32(sv), string(payload), string(mdJSON), d
	}
	var owner *[16]byte
	if md.OwnerID != uuid.Nil {
		b := [16]byte(md.OwnerID)
		owner = &b
	}
	var last int64
	err = s.pool.QueryRow(ctx,
		`SELECT append_events($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb[], $10::jsonb[], $11)`,
		string(stream.Type), [16]byte(stream.ID), expectedVersion, owner, at,
		ids, types, versions, payloads, metas, digests,
	).Scan(&last)
	if err != nil {
		return AppendResult{}, classifyAppendError(stream, expectedVersion, err)
	}
	s.appended.Raise()
	return AppendResult{Version: expectedVersion + int64(n), LastPosition: last}, nil
}

// classifyAppendError turns the database's refusals into the store's typed errors.
func classifyAppendError(stream Stream, expected int64, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "DT409":
			return &ConflictError{Stream: stream, Expected: expected}
		case pgErr.Code == "23505" && pgErr.ConstraintName == "events_stream_id_version_key":
			return &ConflictError{Stream: stream, Expected: expected}
		case pgErr.Code == "23505" && pgErr.ConstraintName == "events_event_id_key":
			return fmt.Errorf("append to %s: %w", stream, ErrDuplicateEvent)
		}
	}
	return fmt.Errorf("append to %s: %w", stream, err)
}
