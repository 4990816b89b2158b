package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/user"
)

// SnapshotInterval is how many events a user's stream grows by between two
// snapshots of the user (table user_snapshots, migration 00007), so that a
// decision folds about that many events at most, however long the stream.
//
// A load costs one more round trip, for the snapshot, and then reads and
// decodes the events after it, SnapshotInterval/2 on average at ~15 µs
// each; a snapshot costs an upsert of the whole state, within the append's
// transaction, every SnapshotInterval events. Measured on a user with ten
// sessions and a 5,000-event stream (BenchmarkRefreshLongStream,
// docs/benchmarks.md), refreshes run at ~18/s replaying the stream; with
// snapshots every 10, 25, 50, 100 or 400 events at ~670-860, ~600-810,
// ~560-700, ~520-560 and ~240-310/s; the write-ahead log per refresh grows
// by 6-9%, 2-4% and 0.5-4% (10, 25, 100) over replay's, the snapshot's
// jsonb compressing well. 25 is the knee: within 5-10% of the fastest for
// less than half of its extra WAL.
const SnapshotInterval = 25

// upsertSnapshot stores a snapshot unless the stored one is as new or newer,
// so that a slow transaction never replaces a later snapshot with its own.
// Two transactions cannot both append one version (the events' unique
// key), so they never store two different states as the same version.
const upsertSnapshot = `INSERT INTO user_snapshots (user_id, version, schema, state, taken_at)
	VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (user_id) DO UPDATE
	SET version = excluded.version, schema = excluded.schema, state = excluded.state, taken_at = excluded.taken_at
	WHERE user_snapshots.version < excluded.version`

// readSnapshot returns user id's stored snapshot and its version, or nil
// when there is none to use: missing, of another user.SnapshotSchema,
// undecodable or of another user. Snapshots are a cache, so any of those
// means replaying the whole stream rather than failing; only a failing
// database is an error.
func (h *Handler) readSnapshot(ctx context.Context, id uuid.UUID) (*user.Snapshot, int64, error) {
	if h.snapshotEvery <= 0 {
		return nil, 0, nil
	}
	var (
		version int64
		state   []byte
	)
	err := h.pool.QueryRow(ctx, `SELECT version, state FROM user_snapshots WHERE user_id = $1 AND schema = $2`,
		id, user.SnapshotSchema).Scan(&version, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read snapshot of user %s: %w", id, err)
	}
	s, err := decodeSnapshot(state)
	if err == nil && s.ID != id {
		err = fmt.Errorf("snapshot is of user %s", s.ID)
	}
	if err != nil {
		// The next decision on this user replaces it, being SnapshotInterval
		// or more events past a snapshot at version 0.
		h.log.WarnContext(ctx, "unusable user snapshot, replaying the stream", "user_id", id, "version", version, "error", err)
		return nil, 0, nil
	}
	return &s, version, nil
}

// decodeSnapshot decodes a stored snapshot strictly: a field it does not
// know means the row was not written by this schema's code.
func decodeSnapshot(state []byte) (user.Snapshot, error) {
	var s user.Snapshot
	dec := json.NewDecoder(bytes.NewReader(state))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return user.Snapshot{}, fmt.Errorf("decode snapshot: %w", err)
	}
	if _, err := user.FromSnapshot(s); err != nil {
		return user.Snapshot{}, err
	}
	return s, nil
}

// snapshotAfter stores a snapshot of user id at version, the stream's
// version once decided is appended, when the stream has grown by
// SnapshotInterval events or more since the snapshot l was loaded from.
// Call it in the transaction that appended decided: see update.
func (h *Handler) snapshotAfter(ctx context.Context, tx pgx.Tx, id uuid.UUID, l loaded, decided []user.Event, version int64) error {
	if h.snapshotEvery <= 0 || version-l.fromVersion < h.snapshotEvery {
		return nil
	}
	u, err := l.fold(decided...)
	if err != nil {
		return fmt.Errorf("snapshot user %s at version %d: %w", id, version, err)
	}
	state, err := json.Marshal(u.Snapshot())
	if err != nil {
		return fmt.Errorf("encode snapshot of user %s: %w", id, err)
	}
	if _, err := tx.Exec(ctx, upsertSnapshot, id, version, user.SnapshotSchema, state, h.clock()); err != nil {
		return fmt.Errorf("store snapshot of user %s: %w", id, err)
	}
	return nil
}
