package connections_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/eventstore"
)

// TestResealWhileRefreshing rotates the vault from keyring "old" to
// "new,old" while a server already on the new keyring refreshes the same
// connections from two goroutines, against a Schwab that retires each
// refresh token as it is used: a refresh overwritten by a re-sealed copy
// of the credentials it replaced would leave a dead refresh token behind.
// Afterwards every credential blob and every PKCE verifier opens under
// "new" alone, and every connection still refreshes.
func TestResealWhileRefreshing(t *testing.T) {
	w := newWorld(t, schwabtest.Options{RotateRefresh: true})
	before := w.newInstance(instanceOptions{keyring: oldKey})
	user := principal(uuid.New())
	var ids []uuid.UUID
	for i := range 12 {
		ids = append(ids, before.connect(user, "Account "+string(rune('A'+i))))
	}
	// Authorisations in flight, their PKCE verifiers sealed under "old".
	var pending []connections.Authorization
	for i := range 3 {
		auth, err := before.h.Connect(context.Background(), user, sandbox.Slug, "Sandbox "+string(rune('A'+i)), rc)
		require.NoError(t, err)
		pending = append(pending, auth)
	}

	server := w.newInstance(instanceOptions{keyring: newKey + "," + oldKey})
	both, err := vault.Parse(newKey + "," + oldKey)
	require.NoError(t, err)
	ctx := context.Background()
	todo, err := connections.ToReseal(ctx, server.pool, both)
	require.NoError(t, err)
	require.Equal(t, len(ids)+len(pending), todo)

	stop := make(chan struct{})
	var refreshes atomic.Int64
	started := make(chan struct{}, 2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for g := range 2 {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each goroutine walks the connections in its own order.
				id := ids[(k*(g+1)+g*5)%len(ids)]
				if _, err := server.h.RefreshNow(ctx, user, id, rc); err != nil {
					errs[g] = err
					return
				}
				if refreshes.Add(1) == 2 {
					close(started)
				}
			}
		})
	}
	<-started
	counts, err := connections.Reseal(ctx, server.pool, both, connections.ResealOptions{BatchSize: 2})
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	t.Logf("reseal %+v beside %d refreshes", counts, refreshes.Load())
	require.Zero(t, counts.Failed)
	require.Zero(t, counts.Remaining)
	require.Equal(t, len(pending), counts.Verifiers)
	require.LessOrEqual(t, counts.Credentials, len(ids))

	newOnly, err := vault.Parse(newKey)
	require.NoError(t, err)
	for _, id := range ids {
		row, ok := server.credentialsRow(id)
		require.True(t, ok)
		require.Equal(t, "new", row.KeyID)
		_, err := newOnly.Open(id, row.Blob)
		require.NoError(t, err, "connection %s", id)
		// The stored credentials are the last refresh's, not a re-sealed older copy.
		recs, err := server.store.ReadStream(ctx, eventstore.Stream{Type: eventstore.StreamConnection, ID: id}, 0)
		require.NoError(t, err)
		last, err := server.store.Decode(recs[len(recs)-1])
		require.NoError(t, err)
		var fp string
		switch e := last.(type) {
		case connection.ProviderTokenRefreshSucceeded:
			fp = e.Credentials.Fingerprint
		case connection.ProviderConnectionSucceeded:
			fp = e.Credentials.Fingerprint
		default:
			t.Fatalf("connection %s ends with %T", id, last)
		}
		require.Equal(t, fp, row.Fingerprint)
	}
	var verifiers [][]byte
	var owners []uuid.UUID
	rows, err := server.pool.Query(ctx, `SELECT connection_id, verifier_blob FROM oauth_states WHERE verifier_blob IS NOT NULL`)
	require.NoError(t, err)
	for rows.Next() {
		var id uuid.UUID
		var blob []byte
		require.NoError(t, rows.Scan(&id, &blob))
		owners, verifiers = append(owners, id), append(verifiers, blob)
	}
	require.NoError(t, rows.Err())
	require.Len(t, verifiers, len(pending))
	for i := range verifiers {
		_, err := newOnly.Open(owners[i], verifiers[i])
		require.NoError(t, err)
	}

	// A server on "new" alone: every refresh token still works, and an
	// authorisation started before the rotation completes with its verifier.
	after := w.newInstance(instanceOptions{keyring: newKey})
	for _, id := range ids {
		_, err := after.h.RefreshNow(ctx, user, id, rc)
		require.NoError(t, err, "connection %s", id)
	}
	out := after.h.Callback(ctx, sandbox.Slug, after.approveSandbox(pending[0].URL), rc)
	require.True(t, out.OK, "%+v", out)

	again, err := connections.Reseal(ctx, after.pool, newOnly, connections.ResealOptions{})
	require.NoError(t, err)
	require.Equal(t, connections.ResealCounts{}, again, "nothing left to do")
}

// TestResealCountsBlobsThatDoNotOpen: a blob under a key the keyring lacks
// is left alone and counted, and is what remains.
func TestResealCountsBlobsThatDoNotOpen(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	before := w.newInstance(instanceOptions{keyring: oldKey})
	user := principal(uuid.New())
	before.connect(user, "Personal")
	before.connect(user, "Joint")
	other, err := vault.Parse(newKey) // lacks "old"
	require.NoError(t, err)
	ctx := context.Background()
	var progress []connections.ResealCounts
	counts, err := connections.Reseal(ctx, before.pool, other, connections.ResealOptions{BatchSize: 1,
		Progress: func(c connections.ResealCounts) { progress = append(progress, c) }})
	require.NoError(t, err)
	require.Equal(t, connections.ResealCounts{Failed: 2, Remaining: 2}, counts)
	require.NotEmpty(t, progress)
	require.Equal(t, 2, progress[len(progress)-1].Done())
}
