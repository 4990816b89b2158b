package webhooks_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/webhook"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/commands/webhooks"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestRecoveringReceiverGetsEveryDelivery: a receiver that fails its first
// requests and then recovers receives every integration event of its user
// once it recovers, each exactly once, each signed so that the secret the
// API showed verifies it; attempts are recorded and the endpoint is no
// longer failing.
func TestRecoveringReceiverGetsEveryDelivery(t *testing.T) {
	hn := newHarness(t, options{})
	rcv := newReceiver(t, func(n int) int {
		if n <= 8 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	user, other := uuid.New(), uuid.New()
	ep, secret, err := hn.h.Create(context.Background(), principal(user), webhooks.CreateRequest{URL: rcv.srv.URL + "/hook", EventTypes: fanout.Types})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(secret, "whsec_"))
	rcv.trust(t, secret)

	hn.seed(user, 4)
	hn.seed(other, 2)
	want := hn.eventIDs(user)
	require.Len(t, want, 7)
	require.Eventually(t, func() bool { return hn.deliveries(user)["succeeded"] == len(want) }, 30*time.Second, 20*time.Millisecond)

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	assert.Zero(t, rcv.bad, "every signature verifies")
	assert.Len(t, rcv.ok, len(want))
	for id, n := range rcv.ok {
		assert.True(t, want[id], "only the user's events")
		assert.Equal(t, 1, n, "event %s received once after recovering", id)
	}
	assert.Greater(t, rcv.requests, len(want), "some were retried")

	list, err := hn.h.Deliveries(context.Background(), principal(user), ep.ID, nil, 100)
	require.NoError(t, err)
	require.Len(t, list, len(want))
	retried := 0
	for _, d := range list {
		assert.Equal(t, webhooks.DeliverySucceeded, d.Status)
		last := d.Attempts[len(d.Attempts)-1]
		assert.Equal(t, http.StatusOK, last.StatusCode)
		if len(d.Attempts) > 1 {
			retried++
			assert.Equal(t, http.StatusServiceUnavailable, d.Attempts[0].StatusCode)
		}
	}
	assert.Positive(t, retried)
	got, err := hn.h.Get(context.Background(), principal(user), ep.ID)
	require.NoError(t, err)
	assert.Nil(t, got.FailingSince, "a success ends the failing streak")
	_, err = hn.h.Deliveries(context.Background(), principal(other), ep.ID, nil, 100)
	assert.True(t, errors.Is(err, webhooks.ErrNotFound), "another user's endpoint is not found")
}

// TestHangingReceiverHitsTheTimeout: a receiver that never answers costs
// one delivery timeout per attempt and is recorded as a timeout.
func TestHangingReceiverHitsTheTimeout(t *testing.T) {
	hn := newHarness(t, options{timeout: 200 * time.Millisecond})
	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	rcv.hang = make(chan struct{})
	user := uuid.New()
	ep, _, err := hn.h.Create(context.Background(), principal(user), webhooks.CreateRequest{URL: rcv.srv.URL, EventTypes: fanout.Types})
	require.NoError(t, err)
	d, err := hn.h.Test(context.Background(), principal(user), ep.ID)
	require.NoError(t, err)
	assert.Equal(t, fanout.TypeWebhookTest, d.EventType)
	var got webhooks.Delivery
	require.Eventually(t, func() bool {
		list, err := hn.h.Deliveries(context.Background(), principal(user), ep.ID, nil, 10)
		require.NoError(t, err)
		got = list[0]
		return got.Status == webhooks.DeliveryFailed
	}, 30*time.Second, 20*time.Millisecond)
	require.Len(t, got.Attempts, 1, "a test delivery is tried once")
	assert.Equal(t, webhooks.ErrorTimeout, got.Attempts[0].Error)
	assert.Zero(t, got.Attempts[0].StatusCode)
}

// TestFailingEndpointIsDisabledAndOwnerMailed: an endpoint whose every
// attempt fails for longer than the disable window is disabled, its owner
// is mailed once, and what waited for it is cancelled; enabling it again
// forgets the failures.
func TestFailingEndpointIsDisabledAndOwnerMailed(t *testing.T) {
	var hn *harness
	hn = newHarness(t, options{disableAfter: 2 * time.Hour, sent: func(webhooks.Result) { hn.clock.Advance(40 * time.Minute) }})
	rcv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	user := uuid.New()
	ep, _, err := hn.h.Create(context.Background(), principal(user), webhooks.CreateRequest{URL: rcv.srv.URL, EventTypes: fanout.Types})
	require.NoError(t, err)
	hn.seed(user, 3)
	require.Eventually(t, func() bool {
		e, err := hn.h.Get(context.Background(), principal(user), ep.ID)
		require.NoError(t, err)
		return e.Status == webhooks.StatusDisabled
	}, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		d := hn.deliveries(user)
		return d["pending"] == 0
	}, 30*time.Second, 20*time.Millisecond)
	e, err := hn.h.Get(context.Background(), principal(user), ep.ID)
	require.NoError(t, err)
	assert.Equal(t, webhooks.DisabledFailing, e.DisabledReason)
	d := hn.deliveries(user)
	assert.Positive(t, d["cancelled"]+d["failed"])
	assert.Zero(t, d["succeeded"])
	require.Eventually(t, func() bool {
		hn.mu.Lock()
		defer hn.mu.Unlock()
		return len(hn.mails) == 1
	}, 30*time.Second, 20*time.Millisecond)
	hn.mu.Lock()
	m := hn.mails[0]
	hn.mu.Unlock()
	assert.Equal(t, user, m.UserID)
	assert.Equal(t, commands.MailWebhookDisabled, m.Template)
	assert.Equal(t, "127.0.0.1", m.Params["host"])
	assert.Equal(t, ep.ID.String(), m.Params["webhook_id"])

	on := true
	e, err = hn.h.Update(context.Background(), principal(user), ep.ID, webhooks.UpdateRequest{Enabled: &on})
	require.NoError(t, err)
	assert.Equal(t, webhooks.StatusEnabled, e.Status)
	assert.Nil(t, e.FailingSince)
	assert.Empty(t, e.DisabledReason)
}

// TestGoneDisablesAtOnce: 410 Gone asks senders to stop.
func TestGoneDisablesAtOnce(t *testing.T) {
	hn := newHarness(t, options{})
	rcv := newReceiver(t, func(int) int { return http.StatusGone })
	user := uuid.New()
	ep, _, err := hn.h.Create(context.Background(), principal(user), webhooks.CreateRequest{URL: rcv.srv.URL, EventTypes: []string{fanout.TypeAccountUpdated}})
	require.NoError(t, err)
	hn.seed(user, 1)
	require.Eventually(t, func() bool {
		e, err := hn.h.Get(context.Background(), principal(user), ep.ID)
		require.NoError(t, err)
		return e.DisabledReason == webhooks.DisabledGone
	}, 30*time.Second, 20*time.Millisecond)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, b := range rcv.bodies {
		assert.Equal(t, fanout.TypeAccountUpdated, decodeType(b), "only the types subscribed to")
	}
}

// TestEndpointRules: URLs on private, loopback and metadata addresses are
// refused unless private addresses are allowed; event types must exist; a
// user holds at most MaxEndpoints; another user's endpoint is not found.
func TestEndpointRules(t *testing.T) {
	strict := newHarness(t, options{policy: webhook.Policy{}})
	user := uuid.New()
	ctx := context.Background()
	for _, u := range []string{"https://127.0.0.1/hook", "https://169.254.169.254/latest/meta-data/", "https://[::1]/",
		"http://93.184.215.14/", "https://localhost/"} {
		_, _, err := strict.h.Create(ctx, principal(user), webhooks.CreateRequest{URL: u, EventTypes: fanout.Types})
		assert.True(t, errors.Is(err, webhooks.ErrInvalidURL), "%s: %v", u, err)
		assert.NotContains(t, err.Error(), "169.254", "the error does not echo the URL")
	}
	hn := newHarness(t, options{})
	_, _, err := hn.h.Create(ctx, principal(user), webhooks.CreateRequest{URL: "http://127.0.0.1:1/", EventTypes: []string{"nope"}})
	assert.True(t, errors.Is(err, webhooks.ErrInvalidEventTypes))
	_, _, err = hn.h.Create(ctx, principal(user), webhooks.CreateRequest{URL: "http://127.0.0.1:1/"})
	assert.True(t, errors.Is(err, webhooks.ErrInvalidEventTypes))
	var first webhooks.Endpoint
	for i := range webhooks.MaxEndpoints {
		e, _, err := hn.h.Create(ctx, principal(user), webhooks.CreateRequest{URL: "http://127.0.0.1:1/",
			EventTypes: []string{fanout.TypeSyncCompleted, fanout.TypeSyncCompleted}})
		require.NoError(t, err)
		assert.Equal(t, []string{fanout.TypeSyncCompleted}, e.EventTypes)
		if i == 0 {
			first = e
		}
	}
	_, _, err = hn.h.Create(ctx, principal(user), webhooks.CreateRequest{URL: "http://127.0.0.1:1/", EventTypes: fanout.Types})
	assert.True(t, errors.Is(err, webhooks.ErrTooManyEndpoints))
	page, err := hn.h.List(ctx, principal(user), nil, 4)
	require.NoError(t, err)
	require.Len(t, page, 4)
	rest, err := hn.h.List(ctx, principal(user), &webhooks.EndpointKey{CreatedAt: page[3].CreatedAt, ID: page[3].ID}, 100)
	require.NoError(t, err)
	assert.Len(t, rest, webhooks.MaxEndpoints-4)
	_, err = hn.h.Get(ctx, principal(uuid.New()), first.ID)
	assert.True(t, errors.Is(err, webhooks.ErrNotFound))
	assert.True(t, errors.Is(hn.h.Delete(ctx, principal(uuid.New()), first.ID), webhooks.ErrNotFound))
	require.NoError(t, hn.h.Delete(ctx, principal(user), first.ID))
	_, err = hn.h.Get(ctx, principal(user), first.ID)
	assert.True(t, errors.Is(err, webhooks.ErrNotFound))
}

// TestRotationSignsWithBothSecretsDuringTheOverlap: after a rotation,
// deliveries carry one signature under the new secret and one under the
// old until the overlap ends, then only the new one.
func TestRotationSignsWithBothSecretsDuringTheOverlap(t *testing.T) {
	hn := newHarness(t, options{})
	rcv := newReceiver(t, func(int) int { return http.StatusNoContent })
	user := uuid.New()
	ctx := context.Background()
	ep, oldSecret, err := hn.h.Create(ctx, principal(user), webhooks.CreateRequest{URL: rcv.srv.URL, EventTypes: fanout.Types})
	require.NoError(t, err)
	ep, newSecret, err := hn.h.RotateSecret(ctx, principal(user), ep.ID)
	require.NoError(t, err)
	require.NotEqual(t, oldSecret, newSecret)
	require.NotNil(t, ep.PreviousSecretUntil)

	sent := func() string {
		n := len(rcv.sigs)
		_, err := hn.h.Test(ctx, principal(user), ep.ID)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			return len(rcv.sigs) > n
		}, 30*time.Second, 10*time.Millisecond)
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.sigs[len(rcv.sigs)-1]
	}
	rcv.trust(t, oldSecret)
	assert.Len(t, strings.Fields(sent()), 2)
	assert.Zero(t, rcv.bad, "a receiver still on the old secret verifies")
	rcv.mu.Lock()
	rcv.secrets = nil
	rcv.mu.Unlock()
	rcv.trust(t, newSecret)
	assert.Len(t, strings.Fields(sent()), 2)
	assert.Zero(t, rcv.bad, "a receiver on the new secret verifies")

	hn.clock.Advance(webhooks.DefaultRotationOverlap + time.Minute)
	assert.Len(t, strings.Fields(sent()), 1, "the old secret stops signing after the overlap")
	assert.Zero(t, rcv.bad)
}
