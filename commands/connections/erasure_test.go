package connections_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/authtoken"
	"github.com/dashtam/dashtam/adapters/mail"
	"github.com/dashtam/dashtam/adapters/password"
	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/eventstore"
)

// TestErasureDisconnectsEveryConnection: an erasure (identity's, through
// the identity.Connections port this handler implements) ends every live
// connection of the user as a disconnection would — revoked at the
// provider when it can, credentials destroyed, aliases forgotten — and
// leaves other users' connections alone. The aliases live on only sealed
// in the log, under the key the erasure destroyed (docs/audit.md).
func TestErasureDisconnectsEveryConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{})
	keyring, err := vault.Parse(oldKey)
	require.NoError(t, err)
	keys, err := personaldata.New(in.pool, keyring, w.clock.Now)
	require.NoError(t, err)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(in.pool, reg, eventstore.WithClock(w.clock.Now), eventstore.WithPersonalData(keys))
	require.NoError(t, err)
	hasher, err := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	require.NoError(t, err)
	jwt, err := authtoken.NewJWT(authtoken.JWTConfig{Secret: []byte("0123456789abcdef0123456789abcdef"), Issuer: "http://dashtam.test", Now: w.clock.Now})
	require.NoError(t, err)
	mailer, err := mail.New("file://" + filepath.Join(t.TempDir(), "mail"))
	require.NoError(t, err)
	id, err := identity.NewHandler(identity.Deps{
		Store: store, Pool: in.pool, Hasher: hasher, Policy: password.Policy{}, Access: jwt, Secrets: authtoken.Opaque{},
		Mailer: mailer, Jobs: in.jobs, Vault: keyring, Now: w.clock.Now, PublicURL: "http://dashtam.test", Logger: slog.New(slog.DiscardHandler),
		NameKey: []byte("a test key for login-name digests, 32+ bytes"), Keys: keys, Connections: in.h,
	})
	require.NoError(t, err)

	register := func(email string) commands.Principal {
		v, err := id.Register(ctx, identity.RegisterInput{Email: email, Password: "a long and unusual passphrase", RequestContext: rc})
		require.NoError(t, err)
		return principal(v.ID)
	}
	erin, other := register("erin@example.com"), register("other@example.com")
	household := in.connect(erin, "Erins Household")
	savings := in.connectSandbox(erin, "Erins Savings")
	kept := in.connect(other, "Erins Household") // the same alias, another user
	for _, c := range []uuid.UUID{household, savings, kept} {
		_, ok := in.credentialsRow(c)
		require.True(t, ok, "credentials stored for %s", c)
	}

	require.NoError(t, id.EraseUser(ctx, principal(uuid.New()), erin.UserID, rc))

	for _, c := range []uuid.UUID{household, savings} {
		_, ok := in.credentialsRow(c)
		assert.False(t, ok, "the credentials of %s destroyed", c)
		v, err := in.h.Get(ctx, erin, c)
		require.NoError(t, err)
		assert.Equal(t, connection.StatusDisconnected, v.Status, "connection %s", c)
		assert.IsType(t, connection.ProviderDisconnectionSucceeded{}, in.lastEvent(c))
	}
	assert.Equal(t, 1, w.sandboxCalls.get(sandbox.Prefix+sandbox.RevokePath), "the sandbox's grant revoked")
	live, err := in.h.Live(ctx, erin.UserID)
	require.NoError(t, err)
	assert.Empty(t, live)
	var aliases int
	require.NoError(t, in.pool.QueryRow(ctx, `SELECT count(*) FROM connection_aliases WHERE user_id = $1 AND alias_key ILIKE '%erin%'`,
		erin.UserID).Scan(&aliases))
	assert.Zero(t, aliases, "the aliases she typed are forgotten")

	// The other user's connection, with the same alias, is untouched.
	_, ok := in.credentialsRow(kept)
	assert.True(t, ok)
	v, err := in.h.Get(ctx, other, kept)
	require.NoError(t, err)
	assert.Equal(t, connection.StatusActive, v.Status)
	assert.Equal(t, "Erins Household", v.Alias)
}
