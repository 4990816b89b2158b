package syncs_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/syncs"
)

// failureTimeout bounds each provider exchange in these tests: long
// enough that no healthy answer of an in-process server misses it on a
// busy machine, short enough that a stalled one ends the test quickly.
const failureTimeout = 3 * time.Second

// TestProviderTimeoutsAndGarbage runs syncs against an institution that
// stalls until the adapter's HTTP timeout, or answers something that is
// not its dialect (truncated JSON, an HTML page, a 502): one account's
// failure keeps the others and retries the job, the retry converges to
// the uninterrupted run's state; the accounts list failing retries the
// whole job, and fails the sync only on the last attempt.
func TestProviderTimeoutsAndGarbage(t *testing.T) {
	reference := func() state {
		w := newWorld(t, worldOptions{})
		w.household()
		p := user()
		id := w.connectSandbox(p, "Reference", "default")
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		return w.folded()
	}()

	accountFails := func(t *testing.T, route string, brokenAt func(w *world), reason connection.FailureReason) {
		w := newWorld(t, worldOptions{httpTimeout: failureTimeout})
		w.household()
		p := user()
		id := w.connectSandbox(p, "Broken", "default")
		violations := w.noOpenTransactions()
		brokenAt(w)
		v := w.request(p, id)
		err := w.run(id)
		require.Error(t, err, "a failure that may pass retries the job")
		assert.ErrorIs(t, err, failureError(reason))
		assert.Nil(t, w.outcome(id, v.ID), "the sync stays in progress while the job retries")
		s := w.folded()
		assert.Len(t, s.accounts, 2, "both accounts are recorded")
		for key := range reference.transactions {
			if acct := reference.transactions[key].Account; route != "transactions:"+acct {
				assert.Contains(t, s.transactions, key, "the other account's transactions are stored")
			}
		}

		// On the job's last attempt the same failure completes the sync
		// with the account's error instead.
		brokenAt(w)
		last := commands.WithJobAttempt(context.Background(), commands.JobAttempt{Attempt: 2, MaxAttempts: 2})
		require.NoError(t, w.syncs.RunSync(last, syncs.Job{ConnectionID: id}))
		done, ok := w.outcome(id, v.ID).(connection.SyncCompleted)
		require.True(t, ok, "%#v", w.outcome(id, v.ID))
		require.Len(t, done.AccountErrors, 1)
		assert.Equal(t, reason, done.AccountErrors[0].Reason)
		assert.Empty(t, done.LatestPosted, "the window does not move past what was not seen")

		// The next sync, with the institution healthy, converges.
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		assert.Equal(t, reference, w.folded())
		w.indexMatchesLog()
		assert.Empty(t, *violations)
	}
	t.Run("an account's transactions time out", func(t *testing.T) {
		accountFails(t, "transactions:acc_checking", func(w *world) { w.bank.stall("transactions:acc_checking") }, connection.FailedProviderUnavailable)
	})
	t.Run("an account's transactions are truncated JSON", func(t *testing.T) {
		accountFails(t, "transactions:acc_checking", func(w *world) {
			w.bank.garble("transactions:acc_checking", http.StatusOK, `{"transactions":[{"id":"t1","account_id":"acc_chec`)
		}, connection.FailedInvalidResponse)
	})
	t.Run("an account's holdings are an HTML page", func(t *testing.T) {
		accountFails(t, "positions:acc_broker", func(w *world) {
			w.bank.garble("positions:acc_broker", http.StatusOK, "<html><body>Maintenance</body></html>")
		}, connection.FailedInvalidResponse)
	})
	t.Run("an account's transactions meet a gateway error", func(t *testing.T) {
		accountFails(t, "transactions:acc_broker", func(w *world) {
			w.bank.garble("transactions:acc_broker", http.StatusBadGateway, "<html>502 Bad Gateway</html>")
		}, connection.FailedProviderUnavailable)
	})

	listFails := func(t *testing.T, broken func(w *world), reason connection.FailureReason) {
		w := newWorld(t, worldOptions{httpTimeout: failureTimeout})
		w.household()
		p := user()
		id := w.connectSandbox(p, "Unlisted", "default")
		v := w.request(p, id)
		broken(w)
		first := commands.WithJobAttempt(context.Background(), commands.JobAttempt{Attempt: 1, MaxAttempts: 2})
		err := w.syncs.RunSync(first, syncs.Job{ConnectionID: id})
		require.ErrorIs(t, err, failureError(reason))
		assert.Nil(t, w.outcome(id, v.ID))
		assert.Empty(t, w.folded().accounts, "nothing written without the accounts")
		broken(w)
		last := commands.WithJobAttempt(context.Background(), commands.JobAttempt{Attempt: 2, MaxAttempts: 2})
		require.Error(t, w.syncs.RunSync(last, syncs.Job{ConnectionID: id}))
		failed, ok := w.outcome(id, v.ID).(connection.SyncFailed)
		require.True(t, ok, "%#v", w.outcome(id, v.ID))
		assert.Equal(t, reason, failed.Reason)
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id), "the connection syncs again at once")
		assert.Equal(t, reference, w.folded())
	}
	t.Run("the accounts list times out", func(t *testing.T) {
		listFails(t, func(w *world) { w.bank.stall("accounts") }, connection.FailedProviderUnavailable)
	})
	t.Run("the accounts list is garbage", func(t *testing.T) {
		listFails(t, func(w *world) { w.bank.garble("accounts", http.StatusOK, `[1, 2, "three"`) }, connection.FailedInvalidResponse)
	})
}

// TestSchwabFailures runs the Schwab dialect's failures through a sync:
// a 429 with Retry-After snoozes the job; a 503 gateway fault, the CDN's
// HTML "Access Denied" page, truncated JSON and a stalled answer each
// fail one account's call, keep the other account and retry the job,
// whose retry converges to the state of an uninterrupted sync.
func TestSchwabFailures(t *testing.T) {
	reference := func() state {
		w := newWorld(t, worldOptions{})
		p := user()
		id := w.connectSchwab(p, "Reference")
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		return w.folded()
	}()
	converges := func(t *testing.T, w *world, p commands.Principal, id, syncID uuid.UUID) {
		t.Helper()
		require.NoError(t, w.run(id))
		done, ok := w.outcome(id, syncID).(connection.SyncCompleted)
		require.True(t, ok, "%#v", w.outcome(id, syncID))
		assert.Empty(t, done.AccountErrors)
		assert.Equal(t, reference, w.folded())
		w.indexMatchesLog()
	}

	t.Run("rate limited", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		p := user()
		id := w.connectSchwab(p, "Limited")
		v := w.request(p, id)
		w.schwab.FailNextAt(schwabtest.EndpointTransactions, schwabFailure(http.StatusTooManyRequests, "9"))
		var snooze *commands.JobSnoozeError
		require.ErrorAs(t, w.run(id), &snooze)
		assert.GreaterOrEqual(t, snooze.Delay, 9*time.Second)
		assert.Nil(t, w.outcome(id, v.ID))
		converges(t, w, p, id, v.ID)
	})
	for _, c := range []struct {
		name   string
		fl     schwabtest.Failure
		reason connection.FailureReason
	}{
		{"service unavailable", schwabFailure(http.StatusServiceUnavailable, ""), connection.FailedProviderUnavailable},
		{"access denied page", schwabtest.AccessDenied(http.StatusForbidden), connection.FailedProviderUnavailable},
		{"truncated JSON", schwabtest.Failure{Status: http.StatusOK, ContentType: "application/json", Body: `[{"activityId":1234,"time":"2026-`},
			connection.FailedInvalidResponse},
		{"stalled", schwabtest.Failure{Stall: true}, connection.FailedProviderUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{httpTimeout: failureTimeout})
			p := user()
			id := w.connectSchwab(p, "Broken")
			v := w.request(p, id)
			w.schwab.FailNextAt(schwabtest.EndpointTransactions, c.fl)
			err := w.run(id)
			require.ErrorIs(t, err, failureError(c.reason))
			assert.Nil(t, w.outcome(id, v.ID), "the sync stays in progress while the job retries")
			s := w.folded()
			assert.Len(t, s.accounts, 2, "both accounts are recorded")
			assert.NotEmpty(t, s.transactions, "the other account's transactions are stored")
			assert.Less(t, len(s.transactions), len(reference.transactions))
			converges(t, w, p, id, v.ID)
		})
	}
}

// schwabFailure is Schwab's own answer for status, with a Retry-After.
func schwabFailure(status int, retryAfter string) schwabtest.Failure {
	f := schwabtest.Failure{Status: status, ContentType: "application/json",
		Body: `{"errors":[{"id":"` + uuid.NewString() + `","status":` + strconv.Itoa(status) + `,"title":"` + http.StatusText(status) + `"}]}`}
	if status == http.StatusServiceUnavailable {
		f = schwabtest.GatewayFault(status, "The Service is temporarily unavailable", "messaging.adaptors.http.flow.ServiceUnavailable")
	}
	if retryAfter != "" {
		f.Header = http.Header{"Retry-After": {retryAfter}}
	}
	return f
}

// failureError is the provider error a sync's failure reason names.
func failureError(reason connection.FailureReason) error {
	switch reason {
	case connection.FailedInvalidResponse:
		return commands.ErrProviderInvalidResponse
	case connection.FailedRateLimited:
		return commands.ErrProviderRateLimited
	}
	return commands.ErrProviderUnavailable
}
