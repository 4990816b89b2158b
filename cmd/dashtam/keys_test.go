package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestKeysRotateRewrapsPersonalDataKeys: the personal-data keys are
// wrapped by the same keyring as the credentials, so keys rotate moves
// them to the newest key too; after it the old key can be dropped and the
// personal data still opens.
func TestKeysRotateRewrapsPersonalDataKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	const oldKey = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	const newKey = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	parse := func(s string) *vault.Keyring {
		r, err := vault.Parse(s)
		require.NoError(t, err)
		return r
	}
	before, err := personaldata.New(pool, parse(oldKey), time.Now)
	require.NoError(t, err)
	ann := uuid.New()
	sealed, err := before.Seal(ctx, ann, "UserRegistered.email", "ann@example.com")
	require.NoError(t, err)

	var stdout, stderr strings.Builder
	require.NoError(t, rotateKeys(ctx, pool, parse(newKey+","+oldKey), 10, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "re-wrapped 1 personal-data key; 0 keys did not open; 0 keys remain under older keys")

	after, err := personaldata.New(pool, parse(newKey), time.Now)
	require.NoError(t, err)
	got, err := after.Open(ctx, ann, "UserRegistered.email", sealed)
	require.NoError(t, err)
	assert.Equal(t, "ann@example.com", got)

	// A keyring lacking the key a data key is wrapped under: exit 1, keep the old keys.
	stdout.Reset()
	err = rotateKeys(ctx, pool, parse("k3:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="), 10, &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 personal-data key did not open")
}

// TestSealingNeverWaitsForTheAppendersPool: every connection of the
// store's pool is held by a transaction that appends a new user's sealed
// email, so each needs that user's key read and created while it holds
// its connection. The keystore has connections of its own, so all of them
// commit; sharing the pool, each waited for a connection the others held,
// for ever.
func TestSealingNeverWaitsForTheAppendersPool(t *testing.T) {
	t.Parallel()
	const conns = 2
	pool := testdb.NewWithConns(t, conns)
	ring, err := vault.Parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	require.NoError(t, err)
	store, _, closeKeys, err := personalStore(pool, ring)
	require.NoError(t, err)
	t.Cleanup(closeKeys)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var holding sync.WaitGroup
	holding.Add(conns)
	errs := make(chan error, conns)
	ids := make([]uuid.UUID, conns)
	for i := range conns {
		ids[i] = uuid.New()
		go func() {
			// The owner is what the email is sealed for.
			owned := eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: ids[i]})
			errs <- store.Transact(owned, func(ctx context.Context, tx *eventstore.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT 1`); err != nil { // the connection is held from here
					return err
				}
				holding.Done()
				holding.Wait() // every connection of pool is now held
				_, err := tx.Append(ctx, eventstore.Stream{Type: eventstore.StreamUser, ID: ids[i]}, 0,
					user.UserRegistered{UserID: ids[i], Email: fmt.Sprintf("u%d@example.com", i), Role: user.RoleUser, At: time.Now()})
				return err
			})
		}()
	}
	for range conns {
		require.NoError(t, <-errs, "every append committed")
	}
	for i, id := range ids {
		var payload string
		require.NoError(t, pool.QueryRow(ctx, `SELECT payload::text FROM events WHERE stream_id = $1`, id).Scan(&payload))
		assert.NotContains(t, payload, fmt.Sprintf("u%d@example.com", i), "the email is stored sealed")
	}
}
