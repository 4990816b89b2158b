package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
)

func TestAppendAndReadStream(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	s := mustStore(t, eventstore.WithClock(func() time.Time { return at }))
	owner := uuid.New()
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{
		OwnerID: owner, Actor: "user:" + owner.String(), RequestID: "req-1", Command: "OpenCounter",
	})
	st := newStream(eventstore.StreamAccount)

	res, err := s.Append(ctx, st, 0, counterOpened{Name: "<main> & co"}, counterIncremented{CommandID: "c1", Amount: "1.50"})
	require.NoError(t, err)
	assert.EqualValues(t, 2, res.Version)

	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	for i, r := range recs {
		assert.EqualValues(t, i+1, r.Version)
		assert.Equal(t, st, r.Stream)
		assert.Equal(t, owner, r.OwnerID)
		assert.Equal(t, "req-1", r.Metadata.RequestID)
		assert.True(t, r.RecordedAt.Equal(at.Truncate(time.Microsecond)), "recorded_at %v", r.RecordedAt)
	}
	assert.Equal(t, eventstore.ZeroHash, recs[0].PrevHash)
	assert.Equal(t, recs[0].Hash, recs[1].PrevHash)
	assert.EqualValues(t, recs[1].GlobalPosition, res.LastPosition)

	e, err := s.Decode(recs[1])
	require.NoError(t, err)
	assert.Equal(t, counterIncremented{CommandID: "c1", Amount: "1.50"}, e)

	after, err := s.ReadStream(ctx, st, 1)
	require.NoError(t, err)
	require.Len(t, after, 1)
	assert.EqualValues(t, 2, after[0].Version)
}

func TestAppendRejectsWrongExpectedVersion(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamConnection)
	_, err := s.Append(ctx, st, 0, counterOpened{Name: "a"})
	require.NoError(t, err)

	for _, expected := range []int64{0, 2, 7} {
		// One event and a batch take different statements.
		for _, events := range [][]eventstore.Event{
			{counterIncremented{CommandID: "x"}},
			{counterIncremented{CommandID: "x"}, counterIncremented{CommandID: "y"}},
		} {
			_, err := s.Append(ctx, st, expected, events...)
			var ce *eventstore.ConflictError
			require.ErrorAs(t, err, &ce, "expected version %d, %d events", expected, len(events))
			assert.True(t, errors.Is(err, eventstore.ErrConflict))
			assert.Equal(t, expected, ce.Expected)
		}
	}
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	assert.Len(t, recs, 1, "nothing of a losing batch is stored")
}

func TestAppendRefusesBadInput(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	_, err := s.Append(ctx, newStream(eventstore.StreamUser), 0)
	assert.Error(t, err, "no events")
	_, err = s.Append(ctx, eventstore.Stream{Type: "ledger", ID: uuid.New()}, 0, counterOpened{})
	assert.Error(t, err, "unknown stream type")
	_, err = s.Append(ctx, newStream(eventstore.StreamUser), 0, unregistered{})
	assert.ErrorIs(t, err, eventstore.ErrUnknownEventType)
	_, err = s.Append(ctx, newStream(eventstore.StreamUser), -1, counterOpened{})
	assert.Error(t, err, "negative version")
}

type unregistered struct{}

func (unregistered) EventType() string { return "NeverRegistered" }

func TestAppendRejectsDuplicateEventID(t *testing.T) {
	id := uuid.New()
	s := mustStore(t, eventstore.WithIDs(func() (uuid.UUID, error) { return id, nil }))
	ctx := context.Background()
	_, err := s.Append(ctx, newStream(eventstore.StreamUser), 0, counterOpened{})
	require.NoError(t, err)
	_, err = s.Append(ctx, newStream(eventstore.StreamUser), 0, counterOpened{})
	assert.ErrorIs(t, err, eventstore.ErrDuplicateEvent)
}

func TestAppendIsAtomicAcrossABatch(t *testing.T) {
	// The second event of the batch reuses the first one's id: the whole batch must fail.
	id := uuid.New()
	s := mustStore(t, eventstore.WithIDs(func() (uuid.UUID, error) { return id, nil }))
	ctx := context.Background()
	st := newStream(eventstore.StreamUser)
	_, err := s.Append(ctx, st, 0, counterOpened{}, counterIncremented{})
	require.Error(t, err)
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	assert.Empty(t, recs)
}

func TestReadAllWaitsForOlderTransactions(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	pool := s.Pool()

	// A transaction that takes its xid first and commits last: its event has a
	// lower transaction id than the one committed meanwhile.
	slow, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer slow.Rollback(ctx)
	var slowXID string
	require.NoError(t, slow.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&slowXID))

	fast := newStream(eventstore.StreamAccount)
	_, err = s.Append(ctx, fast, 0, counterOpened{Name: "fast"})
	require.NoError(t, err)

	got, err := s.ReadAll(ctx, eventstore.Position{}, 100)
	require.NoError(t, err)
	assert.Empty(t, got, "an event behind an open older transaction must not be delivered yet")

	slowStream := newStream(eventstore.StreamAccount)
	_, err = slow.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type, schema_version,
		payload, metadata, recorded_at, prev_hash, hash) VALUES ('account', $1, 1, $2, 'CounterOpened', 1, '{}', '{}', now(), $3, $3)`,
		slowStream.ID, uuid.New(), eventstore.ZeroHash)
	require.NoError(t, err)
	require.NoError(t, slow.Commit(ctx))

	// The horizon is cluster-wide: a transaction another test package holds
	// open in its own database delays delivery here too, so wait for it.
	require.Eventually(t, func() bool {
		got, err = s.ReadAll(ctx, eventstore.Position{}, 100)
		require.NoError(t, err)
		return len(got) == 2
	}, time.Minute, 5*time.Millisecond)
	require.Len(t, got, 2)
	assert.Equal(t, slowStream, got[0].Stream, "the older transaction comes first in commit order")
	assert.Equal(t, fast, got[1].Stream)
	assert.True(t, got[0].Position().Less(got[1].Position()))

	rest, err := s.ReadAll(ctx, got[1].Position(), 100)
	require.NoError(t, err)
	assert.Empty(t, rest)
}

func TestMetadataIsStoredAsJSON(t *testing.T) {
	s := mustStore(t)
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{Actor: "system", IP: "127.0.0.1"})
	st := newStream(eventstore.StreamUser)
	_, err := s.Append(ctx, st, 0, counterOpened{})
	require.NoError(t, err)
	var raw []byte
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT metadata FROM events WHERE stream_id = $1`, st.ID).Scan(&raw))
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	assert.Equal(t, map[string]any{"actor": "system", "ip": "127.0.0.1"}, m)
}

// TestReadAllPastLooksPastOnlyTheNamedTransactions: a reader may look past
// running transactions it knows never append (a projector's batch), and
// past nothing else.
func TestReadAllPastLooksPastOnlyTheNamedTransactions(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	pool := s.Pool()
	begin := func() (pgx.Tx, uint64) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		var xid uint64
		require.NoError(t, tx.QueryRow(ctx, `SELECT pg_current_xact_id()`).Scan(&xid))
		return tx, xid
	}
	_, quiet := begin()       // a batch: never appends
	other, running := begin() // might append, for all a reader knows

	stream := newStream(eventstore.StreamAccount)
	_, err := s.Append(ctx, stream, 0, counterOpened{Name: "after both"})
	require.NoError(t, err)

	got, err := eventstore.ReadAllPast(ctx, pool, eventstore.Position{}, 100, []uint64{quiet})
	require.NoError(t, err)
	assert.Empty(t, got, "the other transaction still holds the event back")
	require.Eventually(t, func() bool {
		got, err = eventstore.ReadAllPast(ctx, pool, eventstore.Position{}, 100, []uint64{quiet, running})
		require.NoError(t, err)
		return len(got) == 1
	}, time.Minute, 5*time.Millisecond, "past both (other packages' transactions may delay it)")
	assert.Equal(t, stream, got[0].Stream)

	require.NoError(t, other.Rollback(ctx))
	require.Eventually(t, func() bool {
		got, err = eventstore.ReadAllPast(ctx, pool, eventstore.Position{}, 100, []uint64{quiet})
		require.NoError(t, err)
		return len(got) == 1
	}, time.Minute, 5*time.Millisecond, "past the batch once the other transaction ended")
	last := got[0].Position()
	got, err = s.ReadAll(ctx, eventstore.Position{}, 100)
	require.NoError(t, err)
	assert.Empty(t, got, "a reader that names nothing still waits for the batch")

	// The selected reads take the same horizon, for the events and for the
	// position they scanned past.
	for _, sel := range []eventstore.Selection{{Lean: true}, {StreamTypes: []eventstore.StreamType{eventstore.StreamAccount}},
		{StreamTypes: []eventstore.StreamType{eventstore.StreamUser}}} {
		got, scanned, err := eventstore.ReadSelected(ctx, pool, eventstore.Position{}, 100, sel, []uint64{quiet})
		require.NoError(t, err)
		if len(sel.StreamTypes) == 0 || sel.StreamTypes[0] == eventstore.StreamAccount {
			require.Len(t, got, 1, "%+v", sel)
		} else {
			assert.Empty(t, got, "%+v", sel)
		}
		assert.False(t, scanned.Less(last), "%+v: scanned past the event", sel)
		got, scanned, err = eventstore.ReadSelected(ctx, pool, eventstore.Position{}, 100, sel, nil)
		require.NoError(t, err)
		assert.Empty(t, got, "%+v", sel)
		assert.True(t, scanned.Less(last), "%+v: not past the batch without naming it", sel)
	}
}
