package connections_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/eventstore"
)

// TestDisconnectStopsEveryCall: once disconnected, a connection's
// credentials are gone and nothing reaches Schwab for it: no data call, no
// manual refresh, no refresh job (which ends). Its alias is free again.
func TestDisconnectStopsEveryCall(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{work: true})
	ctx := context.Background()
	user := principal(uuid.New())
	id := in.connect(user, "Personal")
	require.NoError(t, in.h.Call(ctx, id, accounts))

	require.NoError(t, in.h.Disconnect(ctx, user, id, rc))
	_, ok := in.credentialsRow(id)
	require.False(t, ok, "credentials destroyed")
	require.Equal(t, []string{"ProviderDisconnectionAttempted", "ProviderDisconnectionSucceeded"}, in.eventTypes(id)[2:])
	v, err := in.h.Get(ctx, user, id)
	require.NoError(t, err)
	require.Equal(t, connection.StatusDisconnected, v.Status)

	data, token := w.fake.DataCalls(), w.fake.Calls(schwabtest.EndpointToken)
	called := false
	err = in.h.Call(ctx, id, func(context.Context, commands.Provider, commands.Credentials) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, connection.ErrDisconnected)
	require.False(t, called)
	_, err = in.h.RefreshNow(ctx, user, id, rc)
	require.ErrorIs(t, err, connection.ErrDisconnected)
	w.clock.Advance(refreshDue)
	require.ErrorIs(t, in.h.RunRefresh(ctx, connections.RefreshJob{ConnectionID: id}), commands.ErrJobCancelled)
	refresh := in.jobsOf("connection_refresh", id)[0]
	_, err = in.jobs.River().JobRetry(ctx, refresh.ID)
	require.NoError(t, err)
	in.await(river.EventKindJobCancelled, jobID(refresh.ID))
	finisher := in.jobsOf("connection_finish_disconnect", id)
	require.Len(t, finisher, 1)
	_, err = in.jobs.River().JobRetry(ctx, finisher[0].ID)
	require.NoError(t, err)
	in.await(river.EventKindJobCompleted, jobID(finisher[0].ID))
	require.Equal(t, data, w.fake.DataCalls(), "no data call after the disconnection")
	require.Equal(t, token, w.fake.Calls(schwabtest.EndpointToken), "no refresh after the disconnection")
	require.Len(t, in.eventTypes(id), 4, "nothing recorded after the disconnection")

	again := in.connect(user, "personal")
	require.NotEqual(t, id, again, "the alias is free for a new connection")
	require.Error(t, in.h.Disconnect(ctx, user, id, rc), "disconnected once")
}

// TestDisconnectEndsAnAuthorizationInFlight: a re-authorisation started
// before the disconnection and approved at Schwab afterwards finds no
// connection to complete: its code is never exchanged, so no grant is
// left alive at Schwab with nowhere to store it.
func TestDisconnectEndsAnAuthorizationInFlight(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{})
	ctx := context.Background()
	user := principal(uuid.New())
	id := in.connect(user, "Personal")
	auth, err := in.h.Reauthorize(ctx, user, id, rc)
	require.NoError(t, err)
	require.NoError(t, in.h.Disconnect(ctx, user, id, rc))

	token := w.fake.Calls(schwabtest.EndpointToken)
	u, err := url.Parse(w.fake.ApproveURL(t, auth.URL))
	require.NoError(t, err)
	out := in.h.Callback(ctx, "schwab", u.Query(), rc)
	require.False(t, out.OK)
	require.Equal(t, connection.FailedInvalidState, out.Reason)
	require.Equal(t, token, w.fake.Calls(schwabtest.EndpointToken), "the code is not exchanged")
	_, ok := in.credentialsRow(id)
	require.False(t, ok)
	v, err := in.h.Get(ctx, user, id)
	require.NoError(t, err)
	require.Equal(t, connection.StatusDisconnected, v.Status)
}

// TestDisconnectingConnectionIsNotCalled: a disconnection whose outcome
// was never recorded (its request died after the attempt) already stops
// every call; the finishing job ends it.
func TestDisconnectingConnectionIsNotCalled(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{})
	ctx := context.Background()
	user := principal(uuid.New())
	id := in.connect(user, "Personal")
	mctx := commands.WithMetadata(ctx, user.UserID, commands.ActorUser(user.UserID), "disconnect", rc)
	_, err := in.store.Append(mctx, eventstore.Stream{Type: eventstore.StreamConnection, ID: id}, 2,
		connection.ProviderDisconnectionAttempted{ConnectionID: id, At: w.clock.Now()})
	require.NoError(t, err)

	data, token := w.fake.DataCalls(), w.fake.Calls(schwabtest.EndpointToken)
	require.ErrorIs(t, in.h.Call(ctx, id, accounts), connection.ErrDisconnected)
	_, err = in.h.RefreshNow(ctx, user, id, rc)
	require.ErrorIs(t, err, connection.ErrDisconnected)
	w.clock.Advance(refreshDue)
	require.ErrorIs(t, in.h.RunRefresh(ctx, connections.RefreshJob{ConnectionID: id}), commands.ErrJobCancelled)
	require.Equal(t, data, w.fake.DataCalls())
	require.Equal(t, token, w.fake.Calls(schwabtest.EndpointToken))

	require.NoError(t, in.h.FinishDisconnect(ctx, connections.FinishDisconnectJob{ConnectionID: id}))
	_, ok := in.credentialsRow(id)
	require.False(t, ok)
	require.Equal(t, "ProviderDisconnectionSucceeded", in.eventTypes(id)[3])
}
