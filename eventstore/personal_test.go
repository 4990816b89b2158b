package eventstore_test

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// memoryKeys stands in for the keystore (adapters/personaldata has its
// own tests against the database): a reversible encoding bound to owner
// and place, and a set of erased owners.
type memoryKeys struct {
	mu     sync.Mutex
	erased map[uuid.UUID]bool
}

func (m *memoryKeys) Seal(_ context.Context, owner uuid.UUID, where, v string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.erased[owner] {
		return "", eventstore.ErrErased
	}
	return eventstore.SealedPrefix + base64.RawURLEncoding.EncodeToString([]byte(owner.String()+"|"+where+"|"+v)), nil
}

func (m *memoryKeys) Open(_ context.Context, owner uuid.UUID, where, s string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.erased[owner] {
		return "", eventstore.ErrErased
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, eventstore.SealedPrefix))
	if err != nil {
		return "", err
	}
	parts := strings.SplitN(string(b), "|", 3)
	if len(parts) != 3 || parts[0] != owner.String() || parts[1] != where {
		return "", assert.AnError
	}
	return parts[2], nil
}

func (m *memoryKeys) Erased(_ context.Context, owner uuid.UUID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.erased[owner], nil
}

// signedUp is an event with a personal field.
type signedUp struct {
	Email string `json:"email" personal:"true"`
	Plan  string `json:"plan"`
}

func (signedUp) EventType() string { return "SignedUp" }

func TestPersonalDataIsSealedOpenedAndShredded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := &memoryKeys{erased: map[uuid.UUID]bool{}}
	reg := eventstore.NewRegistry()
	eventstore.Register[signedUp](reg, 1)
	pool := testdb.New(t)
	store, err := eventstore.New(pool, reg, eventstore.WithPersonalData(keys))
	require.NoError(t, err)
	plainStore, err := eventstore.New(pool, reg) // an older writer, before sealing
	require.NoError(t, err)
	assert.Equal(t, []string{"email"}, reg.PersonalFields("SignedUp"))

	owner := uuid.New()
	s := eventstore.Stream{Type: eventstore.StreamUser, ID: owner}
	md := eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "user:x", IP: "198.51.100.4", UserAgent: "curl/8.5"})
	_, err = plainStore.Append(md, s, 0, signedUp{Email: "legacy@example.com", Plan: "basic"})
	require.NoError(t, err)
	_, err = store.Append(md, s, 1, signedUp{Email: "ann@example.com", Plan: "gold"})
	require.NoError(t, err)

	recs, err := store.ReadStream(ctx, s, 0)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	stored := string(recs[1].Payload) + string(recs[1].RawMetadata)
	for _, secret := range []string{"ann@example.com", "198.51.100.4", "curl/8.5"} {
		assert.NotContains(t, stored, secret, "stored in the clear")
	}
	assert.Contains(t, string(recs[1].Payload), `"plan":"gold"`, "only personal fields are sealed")

	e, err := store.Decode(recs[1])
	require.NoError(t, err)
	assert.Equal(t, signedUp{Email: "ann@example.com", Plan: "gold"}, e)
	payload, meta, err := store.Reveal(ctx, recs[1])
	require.NoError(t, err)
	assert.Contains(t, string(payload), "ann@example.com")
	assert.Contains(t, string(meta), "198.51.100.4")

	// Erasure: nothing changes in the log, everything personal reads erased,
	// the legacy plaintext event included.
	keys.mu.Lock()
	keys.erased[owner] = true
	keys.mu.Unlock()
	for _, r := range recs {
		e, err := store.Decode(r)
		require.NoError(t, err)
		assert.Equal(t, eventstore.ErasedValue, e.(signedUp).Email)
		payload, meta, err := store.Reveal(ctx, r)
		require.NoError(t, err)
		for _, secret := range []string{"ann@example.com", "legacy@example.com", "198.51.100.4", "curl/8.5"} {
			assert.NotContains(t, string(payload)+string(meta), secret)
		}
		assert.Contains(t, string(payload), eventstore.ErasedValue)
	}
	// Written after the erasure: never stored.
	_, err = store.Append(md, s, 2, signedUp{Email: "late@example.com", Plan: "gold"})
	require.NoError(t, err)
	recs, err = store.ReadStream(ctx, s, 2)
	require.NoError(t, err)
	assert.NotContains(t, string(recs[0].Payload)+string(recs[0].RawMetadata), "late@example.com")
	assert.NotContains(t, string(recs[0].RawMetadata), "198.51.100.4")

	rep, err := store.VerifyLog(ctx, eventstore.LogVerifyOptions{})
	require.NoError(t, err)
	assert.Empty(t, rep.Findings, "the chains hash the ciphertext: erasure breaks nothing")
}
