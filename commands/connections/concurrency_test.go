package connections_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
)

// waitingMessage is the debug line of a refresh that waits for another.
const waitingMessage = "waiting for another refresh of the connection"

// TestConcurrentRefreshNowCallsSchwabOnce: two server instances (two
// handlers, each with its own pool, one database) refresh one connection
// at once. The first one's call to Schwab is held at the gate until the
// second is seen waiting for it, so the two really overlap: exactly one
// refresh reaches Schwab and both answer its expiry.
func TestConcurrentRefreshNowCallsSchwabOnce(t *testing.T) {
	w := newWorld(t, schwabtest.Options{RotateRefresh: true})
	gate := w.gateTokens()
	a := w.newInstance(instanceOptions{})
	b := w.newInstance(instanceOptions{})
	user := principal(uuid.New())
	id := a.connect(user, "Personal")
	w.clock.Advance(time.Minute)

	gate.hold()
	type result struct {
		e   connections.Expiry
		err error
	}
	results := make(chan result, 2)
	refresh := func(in *instance) {
		e, err := in.h.RefreshNow(context.Background(), user, id, rc)
		results <- result{e, err}
	}
	go refresh(a)
	<-gate.arrived
	waiting := b.logs.written(waitingMessage)
	go refresh(b)
	select {
	case <-waiting:
	case <-gate.arrived:
		t.Fatal("the second instance called Schwab too")
	case <-time.After(30 * time.Second):
		t.Fatal("the second instance neither waited nor called")
	}
	gate.release()
	r1, r2 := <-results, <-results
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken), "the exchange and one refresh")
	require.True(t, r1.e.AccessExpiresAt.Equal(r2.e.AccessExpiresAt), "%v vs %v", r1.e.AccessExpiresAt, r2.e.AccessExpiresAt)
	require.WithinDuration(t, w.clock.Now().Add(accessLife), r1.e.AccessExpiresAt, time.Microsecond)
	require.Equal(t, []string{"ProviderTokenRefreshAttempted", "ProviderTokenRefreshSucceeded"}, a.eventTypes(id)[2:])
	// With rotating refresh tokens a second refresh would have used a
	// retired token; the stored one works.
	require.NoError(t, b.h.Call(context.Background(), id, accounts))
}

// TestConcurrentUnauthorizedCallsRefreshOnce: both instances' data calls
// meet an expired access token at once; one refreshes, the other waits for
// it (seen in its log before the refresh may finish), and both run their
// call again with the one new token.
func TestConcurrentUnauthorizedCallsRefreshOnce(t *testing.T) {
	w := newWorld(t, schwabtest.Options{RotateRefresh: true})
	gate := w.gateTokens()
	a := w.newInstance(instanceOptions{})
	b := w.newInstance(instanceOptions{})
	id := a.connect(principal(uuid.New()), "Personal")
	w.fake.ExpireAccess()

	gate.hold()
	waitingA, waitingB := a.logs.written(waitingMessage), b.logs.written(waitingMessage)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var used []time.Time // the expiry of the credentials of each successful call
	errs := make([]error, 2)
	for i, in := range []*instance{a, b} {
		wg.Go(func() {
			errs[i] = in.h.Call(context.Background(), id, func(ctx context.Context, p commands.Provider, c commands.Credentials) error {
				if err := accounts(ctx, p, c); err != nil {
					return err
				}
				mu.Lock()
				used = append(used, c.AccessExpiresAt)
				mu.Unlock()
				return nil
			})
		})
	}
	<-gate.arrived
	select {
	case <-waitingA:
	case <-waitingB:
	case <-gate.arrived:
		t.Fatal("both instances called Schwab")
	case <-time.After(30 * time.Second):
		t.Fatal("the second call neither waited nor refreshed")
	}
	gate.release()
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken), "the exchange and one refresh")
	require.Len(t, used, 2)
	require.True(t, used[0].Equal(used[1]))
	require.Equal(t, []string{"ProviderTokenRefreshAttempted", "ProviderTokenRefreshSucceeded"}, b.eventTypes(id)[2:])
}

// TestRefreshAfterAnotherCompletedIsNotRepeated: a data call refused with
// credentials that another instance has refreshed since does not refresh
// again; it runs with the stored ones.
func TestRefreshAfterAnotherCompletedIsNotRepeated(t *testing.T) {
	w := newWorld(t, schwabtest.Options{RotateRefresh: true})
	a := w.newInstance(instanceOptions{})
	b := w.newInstance(instanceOptions{})
	user := principal(uuid.New())
	id := a.connect(user, "Personal")
	w.fake.ExpireAccess()
	calls := 0
	err := a.h.Call(context.Background(), id, func(ctx context.Context, p commands.Provider, c commands.Credentials) error {
		calls++
		if calls == 1 {
			// Meanwhile, another instance refreshes.
			if _, err := b.h.RefreshNow(ctx, user, id, rc); err != nil {
				return err
			}
		}
		return accounts(ctx, p, c)
	})
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken), "the exchange and b's refresh only")
}

// TestReplayedCallbackWhileExchanging: the browser delivers the callback
// twice (a reload while the first is still exchanging the code). The
// replay is told the state is spent; the first completes the connection.
func TestReplayedCallbackWhileExchanging(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	gate := w.gateTokens()
	in := w.newInstance(instanceOptions{})
	ctx := context.Background()
	user := principal(uuid.New())
	auth, err := in.h.Connect(ctx, user, "schwab", "Personal", rc)
	require.NoError(t, err)
	u, err := url.Parse(w.fake.ApproveURL(t, auth.URL))
	require.NoError(t, err)

	gate.hold()
	first := make(chan connections.CallbackOutcome, 1)
	go func() { first <- in.h.Callback(ctx, "schwab", u.Query(), rc) }()
	<-gate.arrived
	replay := in.h.Callback(ctx, "schwab", u.Query(), rc)
	require.False(t, replay.OK)
	require.Equal(t, connection.FailedInvalidState, replay.Reason)
	gate.release()
	out := <-first
	require.True(t, out.OK, "%+v", out)
	v, err := in.h.Get(ctx, user, auth.Connection.ID)
	require.NoError(t, err)
	require.Equal(t, connection.StatusActive, v.Status)
	require.Equal(t, []string{"ProviderConnectionAttempted", "ProviderConnectionSucceeded"}, in.eventTypes(v.ID))
}
