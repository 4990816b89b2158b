package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/vault"
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
