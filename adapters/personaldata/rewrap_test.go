package personaldata_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestRewrapMovesLiveKeysToTheNewestMasterKey: after a rotation every
// live data key is wrapped under the new master key alone, so the old one
// can be dropped and the personal data still opens; an erased person
// stays erased, and running again has nothing to do.
func TestRewrapMovesLiveKeysToTheNewestMasterKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	const oldKey = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	const newKey = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	ring := func(s string) *vault.Keyring {
		r, err := vault.Parse(s)
		require.NoError(t, err)
		return r
	}
	keys := func(s string) *personaldata.Keys {
		k, err := personaldata.New(pool, ring(s), time.Now)
		require.NoError(t, err)
		return k
	}
	before := keys(oldKey)
	people := make([]uuid.UUID, 7)
	sealed := make([]string, len(people))
	for i := range people {
		people[i] = uuid.New()
		var err error
		sealed[i], err = before.Seal(ctx, people[i], "UserRegistered.email", "person@example.com")
		require.NoError(t, err)
	}
	erased := people[3]
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return before.Erase(ctx, tx, erased, time.Now()) }))

	both := ring(newKey + "," + oldKey)
	n, err := personaldata.ToRewrap(ctx, pool, both)
	require.NoError(t, err)
	assert.Equal(t, len(people)-1, n)
	var seen []personaldata.RewrapCounts
	counts, err := personaldata.Rewrap(ctx, pool, both, 2, func(c personaldata.RewrapCounts) { seen = append(seen, c) })
	require.NoError(t, err)
	assert.Equal(t, personaldata.RewrapCounts{Rewrapped: len(people) - 1}, counts)
	assert.Len(t, seen, 3, "one progress report per batch of 2")

	after := keys(newKey) // the old key dropped
	for i, p := range people {
		got, err := after.Open(ctx, p, "UserRegistered.email", sealed[i])
		if p == erased {
			assert.ErrorIs(t, err, eventstore.ErrErased)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, "person@example.com", got)
	}
	again, err := personaldata.Rewrap(ctx, pool, both, 2, nil)
	require.NoError(t, err)
	assert.Equal(t, personaldata.RewrapCounts{}, again)

	// A key wrapped under a master key the keyring lacks is counted, not lost.
	stranger := uuid.New()
	_, err = keys("k0:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=").Seal(ctx, stranger, "UserRegistered.email", "x@example.com")
	require.NoError(t, err)
	counts, err = personaldata.Rewrap(ctx, pool, both, 2, nil)
	require.NoError(t, err)
	assert.Equal(t, personaldata.RewrapCounts{Failed: 1, Remaining: 1}, counts)
}
