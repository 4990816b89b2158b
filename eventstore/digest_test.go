package eventstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// insertRaw writes one event through raw SQL with its hash computed over f,
// chained after prev, and returns the hash. A version 1 row leaves
// digest_version to its default, as writers before migration 00008 did.
func insertRaw(t *testing.T, pool *pgxpool.Pool, prev []byte, f eventstore.DigestFields) []byte {
	t.Helper()
	hash := eventstore.ChainHashOf(prev, f)
	var owner *uuid.UUID
	if f.OwnerSet {
		owner = &f.OwnerID
	}
	cols, vals := "", ""
	args := []any{string(f.Stream.Type), f.Stream.ID, f.Version, f.EventID, f.EventType, f.SchemaVersion,
		owner, string(f.Payload), string(f.Metadata), f.RecordedAt, prev, hash}
	if f.DigestVersion != 1 {
		cols, vals = ", digest_version", ", $13"
		args = append(args, f.DigestVersion)
	}
	_, err := pool.Exec(context.Background(), `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
		schema_version, owner_id, payload, metadata, recorded_at, prev_hash, hash`+cols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, $9::jsonb, $10, $11, $12`+vals+`)`, args...)
	require.NoError(t, err)
	return hash
}

// rawFields describes a plausible event of stream at version, as the store
// would have written it.
func rawFields(digestVersion int, stream eventstore.Stream, version int64, owner *uuid.UUID) eventstore.DigestFields {
	f := eventstore.DigestFields{
		DigestVersion: digestVersion, Stream: stream, Version: version, EventID: uuid.New(),
		EventType: "CounterIncremented", SchemaVersion: 1,
		RecordedAt: time.Date(2026, 11, 20, 9, 30, 0, 654321000, time.UTC),
		Payload:    []byte(`{"command_id":"raw","amount":"2.00"}`), Metadata: []byte(`{"actor":"system"}`),
	}
	if owner != nil {
		f.OwnerID, f.OwnerSet = *owner, true
	}
	return f
}

// requireBreak runs both verifiers — VerifyChains (stream order) and
// VerifyLog (one scan in commit order, links in one join) — and requires
// each to find a break at stream id and version; it returns VerifyLog's.
func requireBreak(t *testing.T, s *eventstore.Store, id uuid.UUID, version int64) *eventstore.ChainBreak {
	t.Helper()
	_, brk, err := s.VerifyChains(context.Background(), nil)
	require.NoError(t, err)
	require.NotNil(t, brk, "VerifyChains must detect the change")
	assert.Equal(t, id, brk.Stream.ID, brk.Error())
	assert.Equal(t, version, brk.Version, brk.Error())
	assert.Contains(t, brk.Error(), id.String())
	rep, err := s.VerifyLog(context.Background(), eventstore.LogVerifyOptions{})
	require.NoError(t, err)
	lb := rep.ChainBreak
	require.NotNil(t, lb, "VerifyLog must detect the change")
	assert.Equal(t, id, lb.Stream.ID, lb.Error())
	assert.Equal(t, version, lb.Version, lb.Error())
	require.NotEmpty(t, rep.Findings)
	assert.Equal(t, eventstore.FindingChain, rep.Findings[0].Kind)
	return lb
}

// requireIntact runs both verifiers and requires neither to find a break;
// it returns VerifyChains' report, which VerifyLog's must equal.
func requireIntact(t *testing.T, s *eventstore.Store, msg string) eventstore.VerifyReport {
	t.Helper()
	rep, brk, err := s.VerifyChains(context.Background(), nil)
	require.NoError(t, err)
	require.Nil(t, brk, "VerifyChains: %s", msg)
	lr, err := s.VerifyLog(context.Background(), eventstore.LogVerifyOptions{})
	require.NoError(t, err)
	require.Nil(t, lr.ChainBreak, "VerifyLog: %s", msg)
	require.Empty(t, lr.Findings, "VerifyLog: %s", msg)
	assert.Equal(t, rep, lr.Chains, "VerifyLog's count: %s", msg)
	return rep
}

// TestVerifyAcceptsVersionOneRows: events hashed with the version 1 digest,
// before migration 00008, still verify, and the store continues their streams
// with version 2.
func TestVerifyAcceptsVersionOneRows(t *testing.T) {
	s := mustStore(t)
	pool := s.Pool()
	owner := uuid.New()
	ctx := context.Background()

	owned := newStream(eventstore.StreamAccount)
	h := insertRaw(t, pool, eventstore.ZeroHash, rawFields(1, owned, 1, &owner))
	insertRaw(t, pool, h, rawFields(1, owned, 2, &owner))
	_, err := s.Append(eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "system"}), owned, 2,
		counterIncremented{CommandID: "new", Amount: "1"})
	require.NoError(t, err)

	ownerless := newStream(eventstore.StreamUser)
	insertRaw(t, pool, eventstore.ZeroHash, rawFields(1, ownerless, 1, nil))
	_, err = s.Append(ctx, ownerless, 1, counterIncremented{CommandID: "new", Amount: "1"})
	require.NoError(t, err)

	rep := requireIntact(t, s, "version 1 rows, then version 2")
	assert.Equal(t, eventstore.VerifyReport{Events: 5, Streams: 2}, rep)
	recs, err := s.ReadStream(ctx, owned, 0)
	require.NoError(t, err)
	require.Len(t, recs, 3)
	for i, want := range []int{1, 1, 2} {
		assert.Equal(t, want, recs[i].DigestVersion, "version %d", recs[i].Version)
	}

	// Version 1 rows keep the blind spot they were written with: only their
	// own digest can check them. Version 2 rows do not have it.
	tamper(t, pool, `UPDATE events SET owner_id = '00000000-0000-0000-0000-000000000000' WHERE stream_id = $1 AND version = 1`, ownerless.ID)
	requireIntact(t, s, "a version 1 digest cannot see NULL become the zero UUID")
	tamper(t, pool, `UPDATE events SET owner_id = '00000000-0000-0000-0000-000000000000' WHERE stream_id = $1 AND version = 2`, ownerless.ID)
	requireBreak(t, s, ownerless.ID, 2)
}

// TestVerifyRefusesDigestDowngrade: once a stream has a version 2 event, a
// later event hashed with version 1, correctly chained, is still a break.
func TestVerifyRefusesDigestDowngrade(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamAccount)
	res, err := s.Append(ctx, st, 0, counterOpened{Name: "v2"})
	require.NoError(t, err)
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	require.Equal(t, 2, recs[0].DigestVersion)

	insertRaw(t, s.Pool(), recs[0].Hash, rawFields(1, st, res.Version+1, nil))
	brk := requireBreak(t, s, st.ID, 2)
	assert.Contains(t, brk.Reason, "digest version 1 follows version 2")
}

// TestVerifyCatchesTamperingWithEveryHashedColumn changes each column the
// version 2 digest covers, one at a time, and requires VerifyChains to name
// the stream and version.
func TestVerifyCatchesTamperingWithEveryHashedColumn(t *testing.T) {
	zero := uuid.Nil
	type logStreams struct{ owned, ownerless, zeroOwner eventstore.Stream }
	cases := map[string]func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64){
		"stream_type": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET stream_type = 'connection' WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"stream_id": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			// A one-event stream moved whole: only the digest knows its id.
			moved := uuid.New()
			tamper(t, pool, `UPDATE events SET stream_id = $2 WHERE stream_id = $1`, l.zeroOwner.ID, moved)
			return moved, 1
		},
		"version": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET version = 4 WHERE stream_id = $1 AND version = 3`, l.owned.ID)
			return l.owned.ID, 4
		},
		"event_id": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET event_id = gen_random_uuid() WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"event_type": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET event_type = 'CounterOpened' WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"schema_version": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET schema_version = 2 WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"owner_id NULL to the zero UUID": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET owner_id = $2 WHERE stream_id = $1 AND version = 2`, l.ownerless.ID, zero)
			return l.ownerless.ID, 2
		},
		"owner_id the zero UUID to NULL": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET owner_id = NULL WHERE stream_id = $1 AND version = 1`, l.zeroOwner.ID)
			return l.zeroOwner.ID, 1
		},
		"owner_id to NULL": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET owner_id = NULL WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"owner_id to the zero UUID": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET owner_id = $2 WHERE stream_id = $1 AND version = 2`, l.owned.ID, zero)
			return l.owned.ID, 2
		},
		"owner_id to another user": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET owner_id = gen_random_uuid() WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"recorded_at by a microsecond": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET recorded_at = recorded_at + interval '1 microsecond' WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"payload": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET payload = '{"command_id":"b","amount":"2.0"}' WHERE stream_id = $1 AND version = 3`, l.owned.ID)
			return l.owned.ID, 3
		},
		"metadata": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET metadata = metadata || '{"ip":"10.0.0.1"}' WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"digest_version of a first event": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET digest_version = 1 WHERE stream_id = $1 AND version = 1`, l.owned.ID)
			return l.owned.ID, 1
		},
		"digest_version of a later event": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET digest_version = 1 WHERE stream_id = $1 AND version = 3`, l.owned.ID)
			return l.owned.ID, 3
		},
		"digest_version of a whole stream": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET digest_version = 1 WHERE stream_id = $1`, l.ownerless.ID)
			return l.ownerless.ID, 1
		},
		"digest_version to one no verifier knows": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			// Only the owner can drop the check that keeps it to 1 or 2.
			tamper(t, pool, `ALTER TABLE events DROP CONSTRAINT events_digest_version_known`)
			tamper(t, pool, `UPDATE events SET digest_version = 3 WHERE stream_id = $1 AND version = 2`, l.owned.ID)
			return l.owned.ID, 2
		},
		"prev_hash": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			tamper(t, pool, `UPDATE events SET prev_hash = $2 WHERE stream_id = $1 AND version = 2`, l.owned.ID, eventstore.ZeroHash)
			return l.owned.ID, 2
		},
		"hash": func(t *testing.T, pool *pgxpool.Pool, l logStreams) (uuid.UUID, int64) {
			forged := sha256.Sum256([]byte("forged"))
			tamper(t, pool, `UPDATE events SET hash = $2 WHERE stream_id = $1 AND version = 3`, l.owned.ID, forged[:])
			return l.owned.ID, 3
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := mustStore(t)
			ctx := context.Background()
			owner := uuid.New()
			l := logStreams{
				owned:     newStream(eventstore.StreamAccount),
				ownerless: newStream(eventstore.StreamUser),
				zeroOwner: newStream(eventstore.StreamConnection),
			}
			_, err := s.Append(eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "user"}), l.owned, 0,
				counterOpened{}, counterIncremented{CommandID: "a", Amount: "1"}, counterIncremented{CommandID: "b", Amount: "2"})
			require.NoError(t, err)
			_, err = s.Append(ctx, l.ownerless, 0, counterOpened{}, counterIncremented{CommandID: "c", Amount: "3"})
			require.NoError(t, err)
			// Only a forger stores the zero UUID (the store writes NULL for
			// uuid.Nil), but version 2 must tell it from NULL either way.
			insertRaw(t, s.Pool(), eventstore.ZeroHash, rawFields(2, l.zeroOwner, 1, &zero))

			rep := requireIntact(t, s, "before tampering")
			require.Equal(t, eventstore.VerifyReport{Events: 6, Streams: 3}, rep)

			id, version := mutate(t, s.Pool(), l)
			requireBreak(t, s, id, version)
		})
	}
}

// TestBundlesCarryDigestVersions exports a log holding version 1 rows, an
// owner stored as NULL and one stored as the zero UUID: the bundle records
// each row's digest version and owner as stored, and verifies offline.
// A log whose stream goes back from version 2 to version 1, correctly
// chained and checkpointed, exports a bundle that does not verify.
func TestBundlesCarryDigestVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	export := func(t *testing.T, s *eventstore.Store) []byte {
		t.Helper()
		dir, err := eventstore.OpenCheckpointDir(filepath.Join(t.TempDir(), "checkpoints"))
		require.NoError(t, err)
		cp, err := eventstore.NewCheckpointer(s, testSigner(t), dir)
		require.NoError(t, err)
		checkpointAll(t, s, cp)
		var buf bytes.Buffer
		_, err = s.WriteBundle(ctx, &buf, eventstore.BundleSelection{}, testSigner(t))
		require.NoError(t, err)
		return buf.Bytes()
	}

	t.Run("versions 1 and 2, NULL and zero owners", func(t *testing.T) {
		t.Parallel()
		s := mustStore(t)
		owner, zero := uuid.New(), uuid.Nil
		owned, ownerless, zeroOwner := newStream(eventstore.StreamAccount), newStream(eventstore.StreamUser), newStream(eventstore.StreamConnection)
		h := insertRaw(t, s.Pool(), eventstore.ZeroHash, rawFields(1, owned, 1, &owner))
		insertRaw(t, s.Pool(), h, rawFields(1, owned, 2, &owner))
		_, err := s.Append(eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "system"}), owned, 2,
			counterIncremented{CommandID: "new", Amount: "1"})
		require.NoError(t, err)
		insertRaw(t, s.Pool(), eventstore.ZeroHash, rawFields(1, ownerless, 1, nil))
		_, err = s.Append(ctx, ownerless, 1, counterIncremented{CommandID: "new", Amount: "1"})
		require.NoError(t, err)
		insertRaw(t, s.Pool(), eventstore.ZeroHash, rawFields(2, zeroOwner, 1, &zero))

		b := export(t, s)
		rep, err := eventstore.VerifyBundle(bytes.NewReader(b), eventstore.TrustedKeys{testSigner(t).PublicKey()})
		require.NoError(t, err)
		assert.Equal(t, int64(6), rep.Events)
		for _, want := range []string{`"owner_id":null`, `"owner_id":"00000000-0000-0000-0000-000000000000"`,
			`"digest_version":1}`, `"digest_version":2}`} {
			assert.Contains(t, string(b), want)
		}
	})

	t.Run("a digest downgrade", func(t *testing.T) {
		t.Parallel()
		s := mustStore(t)
		st := newStream(eventstore.StreamAccount)
		_, err := s.Append(ctx, st, 0, counterOpened{Name: "v2"})
		require.NoError(t, err)
		recs, err := s.ReadStream(ctx, st, 0)
		require.NoError(t, err)
		insertRaw(t, s.Pool(), recs[0].Hash, rawFields(1, st, 2, nil))

		_, err = eventstore.VerifyBundle(bytes.NewReader(export(t, s)), eventstore.TrustedKeys{testSigner(t).PublicKey()})
		require.ErrorIs(t, err, eventstore.ErrBundle)
		assert.Contains(t, err.Error(), "digest version 1 follows version 2")
	})
}
