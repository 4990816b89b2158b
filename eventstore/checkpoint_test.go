package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/eventstore/merkle"
)

// testSigner signs with a fixed seed, so failures are reproducible.
func testSigner(t testing.TB) *eventstore.Signer {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	s, err := eventstore.NewSigner(seed)
	require.NoError(t, err)
	return s
}

// fillLog inserts n events on distinct streams in one statement, with
// distinct (not chained) hashes: the audit tree needs only positions and
// hashes, and one statement fills a large log in seconds.
func fillLog(t testing.TB, pool *pgxpool.Pool, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
		schema_version, payload, metadata, recorded_at, prev_hash, hash)
		SELECT 'account', gen_random_uuid(), 1, gen_random_uuid(), 'CounterIncremented', 1,
		       '{"command_id":"x","amount":"1"}', '{"actor":"fill"}', now(), $2, sha256(gen_random_uuid()::text::bytea)
		FROM generate_series(1, $1) g`, n, eventstore.ZeroHash)
	require.NoError(t, err)
}

// logLeaves reads every event's leaf hash in commit order.
func logLeaves(t testing.TB, pool *pgxpool.Pool) []merkle.Hash {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT global_position, hash FROM events ORDER BY transaction_id, global_position`)
	require.NoError(t, err)
	defer rows.Close()
	var out []merkle.Hash
	for rows.Next() {
		var pos int64
		var hash []byte
		require.NoError(t, rows.Scan(&pos, &hash))
		out = append(out, merkle.LeafHash(eventstore.LeafData(pos, hash)))
	}
	require.NoError(t, rows.Err())
	return out
}

// checkpointAll makes checkpoints until one covers every event in the log:
// events become checkpointable only once every older transaction of the
// cluster has ended (the xid horizon), which other tests may hold back
// for a moment. It returns the newest checkpoint.
func checkpointAll(t testing.TB, s *eventstore.Store, cp *eventstore.Checkpointer) eventstore.Checkpoint {
	t.Helper()
	ctx := context.Background()
	var n int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	var last eventstore.Checkpoint
	require.Eventually(t, func() bool {
		_, err := cp.CheckpointAll(ctx, true)
		require.NoError(t, err)
		last, _, err = s.NewestCheckpoint(ctx)
		require.NoError(t, err)
		return last.TreeSize == n
	}, 30*time.Second, 5*time.Millisecond)
	return last
}

func allRecords(t testing.TB, s *eventstore.Store) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	require.NoError(t, s.Query(context.Background(), eventstore.Filter{}, func(r eventstore.Record) error {
		out = append(out, r)
		return nil
	}))
	return out
}

func TestCheckpointsCommitToTheLogAndLinkUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustStore(t)
	dir, err := eventstore.OpenCheckpointDir(filepath.Join(t.TempDir(), "checkpoints"))
	require.NoError(t, err)
	cp, err := eventstore.NewCheckpointer(s, testSigner(t), dir)
	require.NoError(t, err)

	_, made, err := cp.Checkpoint(ctx, true)
	require.NoError(t, err)
	assert.False(t, made, "an empty log gets no checkpoint")

	var cks []eventstore.Checkpoint
	// Sizes cross chunk boundaries (256 leaves) in every way: within one
	// chunk, exactly onto a boundary, across several.
	for _, n := range []int{5, 251, 1, 700, 300, 3} {
		fillLog(t, s.Pool(), n)
		ck := checkpointAll(t, s, cp)
		leaves := logLeaves(t, s.Pool())
		require.EqualValues(t, len(leaves), ck.TreeSize)
		assert.Equal(t, merkle.RootOf(leaves), ck.Root, "checkpoint %d root", ck.Seq)
		require.NoError(t, ck.VerifySignature(eventstore.TrustedKeys{testSigner(t).PublicKey()}))
		if len(cks) > 0 {
			require.NoError(t, ck.VerifyLink(&cks[len(cks)-1]))
		} else {
			require.NoError(t, ck.VerifyLink(nil))
		}
		cks = append(cks, ck)
		_, made, err := cp.Checkpoint(ctx, true)
		require.NoError(t, err)
		assert.False(t, made, "no growth, no checkpoint")
	}

	// Every stored checkpoint has its file, equal to it.
	seqs, err := dir.Seqs()
	require.NoError(t, err)
	assert.Len(t, seqs, len(cks))
	for _, ck := range cks {
		got, err := dir.Read(ck.Seq)
		require.NoError(t, err)
		assert.True(t, ck.Equal(got), "file of checkpoint %d", ck.Seq)
		stored, err := s.CheckpointBySeq(ctx, ck.Seq)
		require.NoError(t, err)
		assert.True(t, ck.Equal(stored), "row of checkpoint %d", ck.Seq)
	}

	// Every event has an inclusion proof in the newest checkpoint.
	for _, r := range allRecords(t, s) {
		p, err := s.InclusionProof(ctx, r)
		require.NoError(t, err, "position %d", r.GlobalPosition)
		require.NoError(t, p.Verify(r), "position %d leaf %d", r.GlobalPosition, p.LeafIndex)
		r.Hash = append([]byte(nil), r.Hash...)
		r.Hash[0] ^= 1
		assert.Error(t, p.Verify(r), "an altered event verified")
	}

	// A file is never rewritten.
	forged := cks[0]
	forged.TreeSize++
	assert.ErrorIs(t, dir.Write(forged), eventstore.ErrCheckpointFileDiffers)
}

func TestCheckpointJSONRoundTrip(t *testing.T) {
	t.Parallel()
	s := mustStore(t)
	cp, err := eventstore.NewCheckpointer(s, testSigner(t), nil)
	require.NoError(t, err)
	fillLog(t, s.Pool(), 300)
	checkpointAll(t, s, cp)
	fillLog(t, s.Pool(), 30)
	ck := checkpointAll(t, s, cp)
	b, err := json.Marshal(ck)
	require.NoError(t, err)
	var back eventstore.Checkpoint
	require.NoError(t, json.Unmarshal(b, &back))
	assert.True(t, ck.Equal(back))
	// A change to any signed field breaks the digest check, and to the
	// signature the signature check.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	doc["tree_size"] = float64(ck.TreeSize + 1)
	b2, _ := json.Marshal(doc)
	assert.Error(t, json.Unmarshal(b2, &back))
	forged := ck
	forged.Signature = append([]byte(nil), ck.Signature...)
	forged.Signature[3] ^= 1
	assert.Error(t, forged.VerifySignature(nil))
	other, err := eventstore.NewSigner(make([]byte, 32))
	require.NoError(t, err)
	assert.Error(t, ck.VerifySignature(eventstore.TrustedKeys{other.PublicKey()}), "an untrusted key")
}

func TestConcurrentCheckpointersMakeOneChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustStoreConns(t, 12)
	fillLog(t, s.Pool(), 1000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cp, err := eventstore.NewCheckpointer(s, testSigner(t), nil)
			if err != nil {
				errs <- err
				return
			}
			for range 3 {
				fillLog(t, s.Pool(), rand.IntN(50)+1)
				if _, _, err := cp.Checkpoint(ctx, true); err != nil {
					errs <- err
				}
				if _, _, err := cp.Checkpoint(ctx, false); err != nil && !errors.Is(err, eventstore.ErrCheckpointBusy) {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	cp, err := eventstore.NewCheckpointer(s, testSigner(t), nil)
	require.NoError(t, err)
	checkpointAll(t, s, cp)
	var prev *eventstore.Checkpoint
	require.NoError(t, s.Checkpoints(ctx, 1, 0, func(ck eventstore.Checkpoint) error {
		if err := ck.VerifyLink(prev); err != nil {
			return err
		}
		prev = &ck
		return nil
	}))
	require.NotNil(t, prev)
	assert.Equal(t, merkle.RootOf(logLeaves(t, s.Pool())[:prev.TreeSize]), prev.Root)
}

func TestCheckpointDirIgnoresForeignFiles(t *testing.T) {
	t.Parallel()
	d := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(d, "README"), []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(d, "checkpoint-abc.json"), []byte("x"), 0o600))
	dir, err := eventstore.ReadCheckpointDir(d)
	require.NoError(t, err)
	seqs, err := dir.Seqs()
	require.NoError(t, err)
	assert.Empty(t, seqs)
}

func TestInclusionProofsOfARandomSampleVerifyAndAlteredEventsFail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustStore(t)
	cp, err := eventstore.NewCheckpointer(s, testSigner(t), nil)
	require.NoError(t, err)
	for _, n := range []int{700, 300, 40} {
		fillLog(t, s.Pool(), n)
		checkpointAll(t, s, cp)
	}
	recs := allRecords(t, s)
	for range 50 {
		r := recs[rand.IntN(len(recs))]
		p, err := s.InclusionProof(ctx, r)
		require.NoError(t, err)
		require.NoError(t, p.Verify(r), "position %d", r.GlobalPosition)
	}
	victim := recs[rand.IntN(len(recs))]
	tamper(t, s.Pool(), `UPDATE events SET hash = sha256(hash) WHERE global_position = $1`, victim.GlobalPosition)
	altered, err := eventstore.ReadPositions(ctx, s.Pool(), []int64{victim.GlobalPosition})
	require.NoError(t, err)
	p, err := s.InclusionProof(ctx, altered[0])
	require.NoError(t, err, "the proof is of the checkpointed leaf at that place")
	assert.ErrorIs(t, p.Verify(altered[0]), merkle.ErrProof, "an altered event does not verify")
}
