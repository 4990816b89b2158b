package connections

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestResealGuardsEachRow interleaves a rotation's read and write of a
// credentials row with a refresh's replacement of it, both ways round,
// deterministically: a refresh that lands between the rotation's read and
// write wins (the rotation writes nothing over it), and a rotation that
// lands inside a refresh (after its lease, before it stores) does not
// stop the refresh from storing.
func TestResealGuardsEachRow(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	key := func(id string, b byte) string {
		return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
	}
	old, err := vault.Parse(key("old", 1))
	require.NoError(t, err)
	both, err := vault.Parse(key("new", 2) + "," + key("old", 1))
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Microsecond)
	sealRow := func(kr *vault.Keyring, id uuid.UUID, secret string) vaultRow {
		blob, keyID, err := kr.Seal(id, []byte(secret))
		require.NoError(t, err)
		return vaultRow{keyID: keyID, blob: blob, fingerprint: secret, accessExpiresAt: now.Add(time.Hour)}
	}
	a, b := uuid.New(), uuid.New()
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, id := range []uuid.UUID{a, b} {
			if err := storeCredentials(ctx, tx, id, sealRow(old, id, "first "+id.String()), now); err != nil {
				return err
			}
		}
		return nil
	}))
	open := func(id uuid.UUID) (string, string, int64) {
		r, err := readCredentials(ctx, pool, id)
		require.NoError(t, err)
		plain, err := both.Open(id, r.blob)
		require.NoError(t, err)
		return string(plain), r.keyID, r.generation
	}

	// The rotation reads both rows; a refresh of a (by a server still on
	// "old") lands before the rotation writes.
	stale, err := staleCredentials(ctx, pool, "new", uuid.Nil, 10)
	require.NoError(t, err)
	require.Len(t, stale, 2)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ok, err := replaceCredentials(ctx, tx, a, 1, sealRow(old, a, "refreshed a"), now)
		require.True(t, ok)
		return err
	}))
	var resealed []sealedRow
	for _, r := range stale {
		blob, err := reseal(both, r.connectionID, r.blob, "new")
		require.NoError(t, err)
		resealed = append(resealed, sealedRow{connectionID: r.connectionID, generation: r.generation, blob: blob})
	}
	n, err := replaceSealedCredentials(ctx, pool, "new", resealed)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only b is still as read")
	plain, keyID, gen := open(a)
	require.Equal(t, "refreshed a", plain, "the refresh's credentials stay")
	require.Equal(t, "old", keyID)
	require.EqualValues(t, 2, gen)
	plain, keyID, gen = open(b)
	require.Equal(t, "first "+b.String(), plain)
	require.Equal(t, "new", keyID)
	require.EqualValues(t, 1, gen, "a rotation does not move the generation")

	// A refresh of a takes its lease (generation 2); the rotation re-seals
	// a meanwhile; the refresh still stores its credentials.
	lease, ok, err := takeRefreshLease(ctx, pool, a, now, now.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)
	stale, err = staleCredentials(ctx, pool, "new", uuid.Nil, 10)
	require.NoError(t, err)
	require.Len(t, stale, 1)
	blob, err := reseal(both, a, stale[0].blob, "new")
	require.NoError(t, err)
	n, err = replaceSealedCredentials(ctx, pool, "new", []sealedRow{{connectionID: a, generation: stale[0].generation, blob: blob}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ok, err := replaceCredentials(ctx, tx, a, lease.generation, sealRow(both, a, "refreshed a again"), now)
		require.True(t, ok, "a rotation does not make a refresh's credentials look moved")
		return err
	}))
	plain, keyID, gen = open(a)
	require.Equal(t, "refreshed a again", plain)
	require.Equal(t, "new", keyID)
	require.EqualValues(t, 3, gen)
}
