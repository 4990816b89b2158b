package connections_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
)

// TestSandboxRefreshAnswersTheStoredExpiry: with an adapter that stamps
// nanoseconds (the sandbox's reads its clock raw), a manual refresh
// answers exactly the expiry that is stored and that the connection shows
// afterwards, as a caller waiting for that refresh reads it.
func TestSandboxRefreshAnswersTheStoredExpiry(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{})
	ctx := context.Background()
	user := principal(uuid.New())
	id := in.connectSandbox(user, "Everyday")
	e, err := in.h.RefreshNow(ctx, user, id, rc)
	require.NoError(t, err)
	row, ok := in.credentialsRow(id)
	require.True(t, ok)
	require.True(t, e.AccessExpiresAt.Equal(row.AccessExpiresAt), "answered %v, stored %v", e.AccessExpiresAt, row.AccessExpiresAt)
	v, err := in.h.Get(ctx, user, id)
	require.NoError(t, err)
	require.True(t, e.AccessExpiresAt.Equal(*v.AccessExpires), "answered %v, shown %v", e.AccessExpiresAt, *v.AccessExpires)
}

// TestSandboxDisconnectRevokes: disconnecting a connection of a provider
// that can revoke asks it to, records that it did, and afterwards nothing
// reaches the institution for the connection.
func TestSandboxDisconnectRevokes(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{})
	ctx := context.Background()
	user := principal(uuid.New())
	id := in.connectSandbox(user, "Everyday")
	require.NoError(t, in.h.Call(ctx, id, accounts))

	require.NoError(t, in.h.Disconnect(ctx, user, id, rc))
	require.Equal(t, 1, w.sandboxCalls.get(sandbox.Prefix+sandbox.RevokePath))
	done, ok := in.lastEvent(id).(connection.ProviderDisconnectionSucceeded)
	require.True(t, ok)
	require.True(t, done.RevokedAtProvider)

	before := w.sandboxCalls.total()
	require.ErrorIs(t, in.h.Call(ctx, id, func(context.Context, commands.Provider, commands.Credentials) error { return nil }),
		connection.ErrDisconnected)
	_, err := in.h.RefreshNow(ctx, user, id, rc)
	require.ErrorIs(t, err, connection.ErrDisconnected)
	require.Equal(t, before, w.sandboxCalls.total())
}
