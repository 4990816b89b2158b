package personaldata_test

import (
	"context"
	"strings"
	"sync"
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

func mustKeys(t *testing.T) (*personaldata.Keys, func(func(pgx.Tx))) {
	t.Helper()
	pool := testdb.New(t)
	ring, err := vault.Parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	require.NoError(t, err)
	k, err := personaldata.New(pool, ring, time.Now)
	require.NoError(t, err)
	inTx := func(fn func(pgx.Tx)) {
		require.NoError(t, pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error { fn(tx); return nil }))
	}
	return k, inTx
}

func TestSealOpenAndErase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k, inTx := mustKeys(t)
	ann, bob := uuid.New(), uuid.New()

	sealed, err := k.Seal(ctx, ann, "UserRegistered.email", "ann@example.com")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(sealed, eventstore.SealedPrefix))
	assert.NotContains(t, sealed, "ann")
	again, err := k.Seal(ctx, ann, "UserRegistered.email", "ann@example.com")
	require.NoError(t, err)
	assert.NotEqual(t, sealed, again, "a fresh nonce every time")
	plain, err := k.Open(ctx, ann, "UserRegistered.email", sealed)
	require.NoError(t, err)
	assert.Equal(t, "ann@example.com", plain)

	// Bound to the person and the place.
	_, err = k.Seal(ctx, bob, "x", "y") // bob gets a key too
	require.NoError(t, err)
	_, err = k.Open(ctx, bob, "UserRegistered.email", sealed)
	assert.ErrorIs(t, err, personaldata.ErrTampered)
	_, err = k.Open(ctx, ann, "UserLoginSucceeded.ip", sealed)
	assert.ErrorIs(t, err, personaldata.ErrTampered)
	b := []byte(sealed)
	b[len(b)-3] ^= 1
	_, err = k.Open(ctx, ann, "UserRegistered.email", string(b))
	assert.ErrorIs(t, err, personaldata.ErrTampered)

	erased, err := k.Erased(ctx, ann)
	require.NoError(t, err)
	assert.False(t, erased)
	inTx(func(tx pgx.Tx) { require.NoError(t, k.Erase(ctx, tx, ann, time.Now())) })
	k.Forget(ann)
	_, err = k.Open(ctx, ann, "UserRegistered.email", sealed)
	assert.ErrorIs(t, err, eventstore.ErrErased)
	_, err = k.Seal(ctx, ann, "UserRegistered.email", "ann@example.com")
	assert.ErrorIs(t, err, eventstore.ErrErased, "nothing is sealed for an erased person again")
	erased, err = k.Erased(ctx, ann)
	require.NoError(t, err)
	assert.True(t, erased)
	// Erasing twice, and erasing someone who never had a key, is fine.
	carol := uuid.New()
	inTx(func(tx pgx.Tx) {
		require.NoError(t, k.Erase(ctx, tx, ann, time.Now()))
		require.NoError(t, k.Erase(ctx, tx, carol, time.Now()))
	})
	erased, err = k.Erased(ctx, carol)
	require.NoError(t, err)
	assert.True(t, erased)
	// Bob is untouched.
	s, err := k.Seal(ctx, bob, "f", "v")
	require.NoError(t, err)
	p, err := k.Open(ctx, bob, "f", s)
	require.NoError(t, err)
	assert.Equal(t, "v", p)
}

// Two processes that see a person for the first time at once agree on one key.
func TestConcurrentFirstSealsShareOneKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k1, _ := mustKeys(t)
	owner := uuid.New()
	var wg sync.WaitGroup
	sealed := make([]string, 8)
	for i := range sealed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := k1.Seal(ctx, owner, "f", "v")
			assert.NoError(t, err)
			sealed[i] = s
		}()
	}
	wg.Wait()
	for _, s := range sealed {
		k1.Forget(owner)
		p, err := k1.Open(ctx, owner, "f", s)
		require.NoError(t, err)
		assert.Equal(t, "v", p)
	}
}
