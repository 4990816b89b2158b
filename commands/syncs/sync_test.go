package syncs_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/eventstore"
)

func ptr(s string) *string { return &s }

// household is a snapshot of two accounts, one with positions, and a few
// transactions of the last days, one of them pending.
func (w *world) household() {
	w.bank.set([]bankAccount{
		{ID: "acc_checking", Name: "Everyday Checking", Product: "checking", Last4: "1234", Balance: "1520.10", Available: ptr("1500.00")},
		{ID: "acc_broker", Name: "Brokerage", Product: "brokerage", Last4: "9876", Balance: "25000.00"},
	}, map[string][]bankTx{
		"acc_checking": {
			{ID: "t1", Kind: "ach_credit", Description: "Salary", Amount: "2500.00", Date: w.day(-20)},
			{ID: "t2", Kind: "card_purchase", Description: "Grocer", Amount: "-54.20", Date: w.day(-3), ValueDate: w.day(-2)},
			{ID: "t3", Kind: "card_purchase", Description: "Cafe", Amount: "-4.50", Date: w.day(-1), Pending: true},
		},
		"acc_broker": {
			{ID: "b1", Kind: "dividend", Description: "VTI dividend", Amount: "12.34", Date: w.day(-30)},
		},
	}, map[string][]bankPosition{
		"acc_broker": {{Symbol: "VTI", Quantity: "10", Value: "2500.00"}, {Symbol: "BND", Quantity: "5", Value: "370.00"}},
	})
}

// A sync stores what the provider said: accounts with balances and
// holdings, transactions with their status; the sync completes with its
// counts and the latest posted date, and the index agrees with the log.
func TestSyncStoresTheProvidersData(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Household", "default")
	v := w.request(p, id)
	assert.Equal(t, syncs.StatusQueued, v.Status)
	assert.Equal(t, w.day(-365), v.From, "the first sync reaches a year back")
	assert.Equal(t, w.day(0), v.To)
	require.NoError(t, w.run(id))

	done, ok := w.outcome(id, v.ID).(connection.SyncCompleted)
	require.True(t, ok, "sync outcome: %#v", w.outcome(id, v.ID))
	assert.Equal(t, 2, done.Accounts)
	assert.Equal(t, connection.SyncCounts{Created: 4}, done.Counts)
	assert.Empty(t, done.AccountErrors)
	assert.Equal(t, w.day(-3), done.LatestPosted)

	s := w.folded()
	require.Len(t, s.accounts, 2)
	assert.Equal(t, "1520.1", s.accounts["acc_checking"].Balance)
	assert.Equal(t, "checking", s.accounts["acc_checking"].Details.Type)
	assert.Equal(t, []string{"BND 5 370", "VTI 10 2500"}, s.accounts["acc_broker"].Holdings)
	require.Len(t, s.transactions, 4)
	assert.Equal(t, transaction.StatusPending, s.transactions["acc_checking/t3"].Status)
	assert.Equal(t, transaction.StatusPosted, s.transactions["acc_checking/t2"].Status)
	assert.Equal(t, "-54.2", s.transactions["acc_checking/t2"].Data.Amount.String())
	assert.Equal(t, w.day(-2), s.transactions["acc_checking/t2"].Data.SettlementDate)
	assert.Equal(t, "withdrawal", s.transactions["acc_checking/t2"].Data.Type)
	w.indexMatchesLog()

	// Every event of the sync says whose data it is, who asked and why.
	rows, err := w.pool.Query(context.Background(), `SELECT DISTINCT stream_type, owner_id::text, metadata->>'actor', metadata->>'command'
		FROM events WHERE stream_type IN ('account', 'transaction') OR event_type LIKE 'Sync%'`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var typ, owner, actor, command string
		require.NoError(t, rows.Scan(&typ, &owner, &actor, &command))
		assert.Equal(t, p.UserID.String(), owner, typ)
		assert.Equal(t, commands.ActorUser(p.UserID), actor, typ)
		assert.Equal(t, "sync", command, typ)
	}
	require.NoError(t, rows.Err())

	// The next window starts ten days before the latest posted date.
	w.clock.Advance(connection.MinSyncInterval)
	v = w.request(p, id)
	assert.Equal(t, w.day(-13), v.From)
}

// The same provider data twice appends no account, transaction or
// holdings event: only the sync's own events on the connection.
func TestSyncIsIdempotent(t *testing.T) {
	w := newWorld(t, worldOptions{batch: 2})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Household", "default")
	require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
	before := w.eventCounts()
	state := w.folded()

	done, ok := w.sync(p, id).(connection.SyncCompleted)
	require.True(t, ok)
	// The second window starts ten days before the latest posted date:
	// the two transactions within it are seen again, unchanged.
	assert.Equal(t, connection.SyncCounts{Unchanged: 2}, done.Counts)
	after := w.eventCounts()
	assert.Equal(t, before[eventstore.StreamAccount], after[eventstore.StreamAccount], "account events")
	assert.Equal(t, before[eventstore.StreamTransaction], after[eventstore.StreamTransaction], "transaction events")
	assert.Equal(t, before[eventstore.StreamConnection]+3, after[eventstore.StreamConnection], "started, picked up, completed")
	assert.Equal(t, state, w.folded())
}

// A pending transaction that posts (for another amount, a tip) is
// updated; one that disappears while pending is removed; a posted one
// that is no longer listed stays.
func TestPendingTransactionsPostOrDisappear(t *testing.T) {
	w := newWorld(t, worldOptions{})
	p := user()
	acct := []bankAccount{{ID: "acc", Name: "Checking", Product: "checking", Last4: "1111", Balance: "100.00"}}
	w.bank.set(acct, map[string][]bankTx{"acc": {
		{ID: "dinner", Kind: "card_purchase", Description: "Bistro", Amount: "-40.00", Date: w.day(-2), Pending: true},
		{ID: "hotel", Kind: "card_purchase", Description: "Hotel hold", Amount: "-200.00", Date: w.day(-1), Pending: true},
		{ID: "rent", Kind: "bill_payment", Description: "Rent", Amount: "-900.00", Date: w.day(-5)},
	}}, nil)
	id := w.connectSandbox(p, "Pending", "default")
	require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))

	w.clock.Advance(24 * 60 * 60 * 1e9)
	w.bank.set(acct, map[string][]bankTx{"acc": {
		{ID: "dinner", Kind: "card_purchase", Description: "Bistro", Amount: "-48.00", Date: w.day(-3), ValueDate: w.day(0)},
	}}, nil)
	done, ok := w.sync(p, id).(connection.SyncCompleted)
	require.True(t, ok)
	assert.Equal(t, connection.SyncCounts{Updated: 1, Removed: 1}, done.Counts)

	s := w.folded()
	assert.Equal(t, transaction.StatusPosted, s.transactions["acc/dinner"].Status)
	assert.Equal(t, "-48", s.transactions["acc/dinner"].Data.Amount.String())
	assert.Equal(t, transaction.StatusRemoved, s.transactions["acc/hotel"].Status)
	assert.Equal(t, transaction.StatusPosted, s.transactions["acc/rent"].Status, "posted history does not change")

	types := map[string]int{}
	rows, err := w.pool.Query(context.Background(), `SELECT event_type FROM events WHERE stream_type = 'transaction'`)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		types[name]++
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, map[string]int{"TransactionRecorded": 3, "TransactionUpdated": 1, "TransactionRemoved": 1}, types)
	w.indexMatchesLog()

	// A removed transaction that comes back is restored.
	w.bank.set(acct, map[string][]bankTx{"acc": {
		{ID: "dinner", Kind: "card_purchase", Description: "Bistro", Amount: "-48.00", Date: w.day(-3), ValueDate: w.day(0)},
		{ID: "hotel", Kind: "card_purchase", Description: "Hotel", Amount: "-180.00", Date: w.day(-2)},
	}}, nil)
	w.clock.Advance(connection.MinSyncInterval)
	require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
	assert.Equal(t, transaction.StatusPosted, w.folded().transactions["acc/hotel"].Status)
}

// One account's transactions call failing keeps the others: they are
// stored, the failing one is reported in the sync's account errors, and
// the window does not move past what it could not see.
func TestOneAccountFailingKeepsTheOthers(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Partial", "default")
	w.bank.fail("transactions:acc_broker", http.StatusNotFound, "account_not_found", "")
	v := w.request(p, id)
	require.NoError(t, w.run(id))
	done, ok := w.outcome(id, v.ID).(connection.SyncCompleted)
	require.True(t, ok, "%#v", w.outcome(id, v.ID))
	assert.Equal(t, connection.SyncCounts{Created: 3}, done.Counts)
	brokerID := eventstore.AccountStreamID(id, "acc_broker")
	assert.Equal(t, []connection.AccountError{{AccountID: brokerID, Reason: connection.FailedProviderError}}, done.AccountErrors)
	assert.Empty(t, done.LatestPosted, "an account was not seen")
	s := w.folded()
	assert.Len(t, s.transactions, 3)
	assert.Contains(t, s.transactions, "acc_checking/t1")
	assert.Len(t, s.accounts, 2, "the failing account itself is still recorded, with its balance and holdings")
	assert.Len(t, s.accounts["acc_broker"].Holdings, 2)

	// A transient failure of one account retries the job; the retry finds
	// the others done and completes.
	w.clock.Advance(connection.MinSyncInterval)
	w.bank.fail("transactions:acc_checking", http.StatusServiceUnavailable, "temporarily_unavailable", "")
	v = w.request(p, id)
	err := w.run(id)
	require.ErrorIs(t, err, commands.ErrProviderUnavailable)
	assert.Nil(t, w.outcome(id, v.ID), "the sync stays in progress while the job retries")
	require.NoError(t, w.run(id))
	done, ok = w.outcome(id, v.ID).(connection.SyncCompleted)
	require.True(t, ok)
	assert.Empty(t, done.AccountErrors)
	// The failed attempt stored the brokerage's transaction; the counts
	// are the last attempt's.
	assert.Equal(t, connection.SyncCounts{Unchanged: 4}, done.Counts)
	assert.Contains(t, w.folded().transactions, "acc_broker/b1")
}

// The provider refusing the credentials (after the one refresh Call
// makes) fails the sync and leaves the connection needing the user; a
// rate limit snoozes the job for the provider's Retry-After and the sync
// goes on afterwards; unavailability is retried and fails the sync only
// on the job's last attempt.
func TestProviderFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("rate limited", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.household()
		p := user()
		id := w.connectSandbox(p, "Limited", "default")
		v := w.request(p, id)
		w.bank.fail("accounts", http.StatusTooManyRequests, "rate_limited", "7")
		var snooze *commands.JobSnoozeError
		require.ErrorAs(t, w.run(id), &snooze)
		assert.GreaterOrEqual(t, snooze.Delay.Seconds(), 6.0)
		assert.Nil(t, w.outcome(id, v.ID))
		require.NoError(t, w.run(id))
		assert.IsType(t, connection.SyncCompleted{}, w.outcome(id, v.ID))
	})
	t.Run("no slot of the provider's pace", func(t *testing.T) {
		// Two calls a minute: the accounts take the first slot, the next
		// one is further away than a sync waits in process.
		w := newWorld(t, worldOptions{schwabRate: 2})
		p := user()
		id := w.connectSchwab(p, "Paced")
		v := w.request(p, id)
		err := w.run(id)
		var snooze *commands.JobSnoozeError
		require.ErrorAs(t, err, &snooze)
		assert.Greater(t, snooze.Delay, 10*time.Second)
		assert.Nil(t, w.outcome(id, v.ID), "still in progress")
	})
	t.Run("unavailable until the last attempt", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.household()
		p := user()
		id := w.connectSandbox(p, "Down", "default")
		v := w.request(p, id)
		for attempt := 1; attempt <= 3; attempt++ {
			w.bank.fail("accounts", http.StatusServiceUnavailable, "temporarily_unavailable", "")
			actx := commands.WithJobAttempt(ctx, commands.JobAttempt{Attempt: attempt, MaxAttempts: 3})
			err := w.syncs.RunSync(actx, syncs.Job{ConnectionID: id})
			require.ErrorIs(t, err, commands.ErrProviderUnavailable, "attempt %d", attempt)
		}
		failed, ok := w.outcome(id, v.ID).(connection.SyncFailed)
		require.True(t, ok, "%#v", w.outcome(id, v.ID))
		assert.Equal(t, connection.FailedProviderUnavailable, failed.Reason)
		assert.Equal(t, 3, w.bank.called("accounts"))
		// The connection is free for the next sync at once.
		w.request(p, id)
	})
	t.Run("credentials refused", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.household()
		p := user()
		id := w.connectSandbox(p, "Refused", "default")
		v := w.request(p, id)
		w.bank.fail("accounts", http.StatusUnauthorized, "invalid_token", "")
		w.bank.fail("accounts", http.StatusUnauthorized, "invalid_token", "")
		require.NoError(t, w.run(id), "nothing left to retry")
		failed, ok := w.outcome(id, v.ID).(connection.SyncFailed)
		require.True(t, ok, "%#v", w.outcome(id, v.ID))
		assert.Equal(t, connection.FailedAuthentication, failed.Reason)
		view, err := w.conns.Get(ctx, p, id)
		require.NoError(t, err)
		assert.Equal(t, connection.StatusNeedsReauth, view.Status)
		_, err = w.syncs.Request(ctx, p, id, true, rc)
		var refused *syncs.RefusedError
		require.ErrorAs(t, err, &refused)
		assert.ErrorIs(t, err, connection.ErrNotActive)
	})
	t.Run("refused once, refreshed, then fine", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.household()
		p := user()
		id := w.connectSandbox(p, "Refreshed", "default")
		v := w.request(p, id)
		w.bank.fail("transactions:acc_checking", http.StatusUnauthorized, "invalid_token", "")
		require.NoError(t, w.run(id))
		done, ok := w.outcome(id, v.ID).(connection.SyncCompleted)
		require.True(t, ok)
		assert.Empty(t, done.AccountErrors)
		// A year is read in the adapter's 92-day windows; the refused one
		// was asked again after the refresh.
		assert.Equal(t, w.bank.called("transactions:acc_broker")+1, w.bank.called("transactions:acc_checking"))
	})
}

// One sync at a time, and not again within five minutes unless forced;
// another user's connection is not found; a sync whose worker died is
// abandoned by the next once it is stale.
func TestRequestRules(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOptions{})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Rules", "default")
	first, err := w.syncs.Request(ctx, p, id, false, rc)
	require.NoError(t, err)

	_, err = w.syncs.Request(ctx, p, id, true, rc)
	var refused *syncs.RefusedError
	require.ErrorAs(t, err, &refused)
	assert.ErrorIs(t, err, connection.ErrSyncRunning)
	assert.Equal(t, first.ID, refused.Running)
	assert.Positive(t, refused.RetryAfter)

	_, err = w.syncs.Request(ctx, user(), id, false, rc)
	assert.ErrorIs(t, err, syncs.ErrNotFound)

	current, ok, err := w.syncs.InProgress(ctx, p, id)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, syncs.StatusQueued, current.Status)

	require.NoError(t, w.run(id))
	w.clock.Advance(connection.MinSyncInterval / 2)
	_, err = w.syncs.Request(ctx, p, id, false, rc)
	require.ErrorAs(t, err, &refused)
	assert.ErrorIs(t, err, connection.ErrSyncTooSoon)
	assert.Equal(t, connection.MinSyncInterval/2, refused.RetryAfter)
	forced, err := w.syncs.Request(ctx, p, id, true, rc)
	require.NoError(t, err)

	// Nobody runs the forced one; once stale, the next takes its place.
	w.clock.Advance(connection.SyncStale)
	next, err := w.syncs.Request(ctx, p, id, false, rc)
	require.NoError(t, err)
	failed, ok := w.outcome(id, forced.ID).(connection.SyncFailed)
	require.True(t, ok)
	assert.Equal(t, connection.FailedSyncAbandoned, failed.Reason)
	require.NoError(t, w.run(id))
	assert.IsType(t, connection.SyncCompleted{}, w.outcome(id, next.ID))
}

// A sync requested the moment the previous one completed gets a job of
// its own, although river has not yet recorded the previous job's end (it
// completes jobs in batches, after the handler returned, so that job is
// still running): a job per connection would be refused as its duplicate
// and the sync would stay queued until stale. The previous job, run again,
// leaves the new sync alone.
func TestSyncRequestedAsThePreviousJobEnds(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOptions{})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Back to back", "default")
	first := w.request(p, id)
	firstJob := w.syncJob(first.ID)
	require.NoError(t, w.syncs.RunSync(ctx, firstJob))
	require.IsType(t, connection.SyncCompleted{}, w.outcome(id, first.ID))
	_, err := w.pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()
		WHERE kind = 'sync' AND args->>'sync_id' = $1`, first.ID.String())
	require.NoError(t, err)

	second := w.request(p, id)
	secondJob := w.syncJob(second.ID)
	assert.Equal(t, syncs.Job{ConnectionID: id, SyncID: second.ID}, secondJob)
	require.NoError(t, w.syncs.RunSync(ctx, firstJob), "the previous job again: its sync is over")
	current, ok, err := w.syncs.InProgress(ctx, p, id)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, syncs.StatusQueued, current.Status, "untouched by the previous job")
	require.NoError(t, w.syncs.RunSync(ctx, secondJob))
	assert.IsType(t, connection.SyncCompleted{}, w.outcome(id, second.ID))
}

// syncJob returns the arguments of the sync job river holds, waiting to
// run, for sync syncID.
func (w *world) syncJob(syncID uuid.UUID) syncs.Job {
	w.tb.Helper()
	var job syncs.Job
	require.NoError(w.tb, w.pool.QueryRow(context.Background(), `SELECT args FROM river_job
		WHERE kind = 'sync' AND args->>'sync_id' = $1 AND state = 'available'`, syncID.String()).Scan(&job),
		"no sync job waiting for sync %s", syncID)
	return job
}

// Concurrent requests on one connection start one sync: the stream's
// optimistic concurrency decides between them.
func TestConcurrentRequestsStartOneSync(t *testing.T) {
	w := newWorld(t, worldOptions{maxConns: 20})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Race", "default")
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := w.syncs.Request(context.Background(), p, id, true, rc)
			errs <- err
		}()
	}
	started := 0
	for range n {
		err := <-errs
		if err == nil {
			started++
			continue
		}
		require.ErrorIs(t, err, connection.ErrSyncRunning)
	}
	assert.Equal(t, 1, started)
	var jobs int
	require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'sync'`).Scan(&jobs))
	assert.Equal(t, 1, jobs)
}

// No database transaction is open while the provider is called, in a
// sync that writes several batches, removes and closes.
func TestNoTransactionOpenDuringProviderCalls(t *testing.T) {
	w := newWorld(t, worldOptions{batch: 2})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Careful", "default")
	violations := w.noOpenTransactions()
	require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
	w.bank.set([]bankAccount{{ID: "acc_checking", Name: "Everyday Checking", Product: "checking", Last4: "1234", Balance: "1.00"}},
		map[string][]bankTx{"acc_checking": {{ID: "t1", Kind: "ach_credit", Description: "Salary", Amount: "2500.00", Date: w.day(-20)}}}, nil)
	w.bank.fail("transactions:acc_checking", http.StatusUnauthorized, "invalid_token", "")
	w.clock.Advance(connection.MinSyncInterval)
	done, ok := w.sync(p, id).(connection.SyncCompleted)
	require.True(t, ok)
	assert.Equal(t, 1, done.Counts.Removed)
	assert.False(t, w.folded().accounts["acc_broker"].Active, "no longer listed: closed")
	assert.Positive(t, w.bank.called("accounts"))
	assert.Empty(t, *violations)
}

// The first sync follows a completed authorisation (its request job is
// enqueued in the callback's unit of work); the scheduler asks again for
// every active connection whose last sync is older than the interval;
// disconnecting closes the accounts once the sync in progress ended.
func TestScheduleAndDisconnect(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOptions{})
	w.household()
	p := user()
	id := w.connectSandbox(p, "Scheduled", "default")
	var args string
	require.NoError(t, w.pool.QueryRow(ctx, `SELECT args::text FROM river_job WHERE kind = 'sync_request'`).Scan(&args))
	require.Contains(t, args, id.String())
	require.NoError(t, w.syncs.RunRequest(ctx, syncs.RequestJob{ConnectionID: id, Trigger: connection.SyncFirst}))
	current, ok, err := w.syncs.InProgress(ctx, p, id)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, connection.SyncFirst, current.Trigger)
	require.NoError(t, w.run(id))
	// The request job again (a duplicate) starts nothing so soon.
	require.NoError(t, w.syncs.RunRequest(ctx, syncs.RequestJob{ConnectionID: id, Trigger: connection.SyncScheduled}))
	_, ok, err = w.syncs.InProgress(ctx, p, id)
	require.NoError(t, err)
	assert.False(t, ok)

	m := startProjections(t, w)
	waitCaughtUp(t, w, m)
	require.NoError(t, w.syncs.Schedule(ctx, syncs.ScheduleJob{}))
	assert.Equal(t, 1, w.jobCount("sync_request"), "not due yet")
	w.clock.Advance(syncs.DefaultInterval + time.Second)
	require.NoError(t, w.syncs.Schedule(ctx, syncs.ScheduleJob{}))
	assert.Equal(t, 2, w.jobCount("sync_request"), "due now")
	require.NoError(t, w.syncs.RunRequest(ctx, syncs.RequestJob{ConnectionID: id, Trigger: connection.SyncScheduled}))
	current, ok, err = w.syncs.InProgress(ctx, p, id)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, connection.SyncScheduled, current.Trigger)
	assert.Equal(t, commands.ActorSystem, w.lastActor(id))

	// Disconnect while that sync is queued: the accounts close only after
	// the sync ended, which its job finds out.
	require.NoError(t, w.conns.Disconnect(ctx, p, id, rc))
	require.Equal(t, 1, w.jobCount("sync_close_accounts"))
	var snooze *commands.JobSnoozeError
	require.ErrorAs(t, w.syncs.CloseAccounts(ctx, syncs.CloseAccountsJob{ConnectionID: id}), &snooze)
	require.NoError(t, w.run(id))
	failed, ok := w.outcome(id, current.ID).(connection.SyncFailed)
	require.True(t, ok)
	assert.Equal(t, connection.FailedDisconnected, failed.Reason)
	require.NoError(t, w.syncs.CloseAccounts(ctx, syncs.CloseAccountsJob{ConnectionID: id}))
	for name, a := range w.folded().accounts {
		assert.False(t, a.Active, name)
	}
	w.indexMatchesLog()
	before := w.eventCounts()
	require.NoError(t, w.syncs.CloseAccounts(ctx, syncs.CloseAccountsJob{ConnectionID: id}))
	assert.Equal(t, before, w.eventCounts(), "closing again decides nothing")
	_, err = w.syncs.Request(ctx, p, id, true, rc)
	assert.ErrorIs(t, err, connection.ErrDisconnected)
}

// jobCount counts river's jobs of kind.
func (w *world) jobCount(kind string) int {
	w.tb.Helper()
	var n int
	require.NoError(w.tb, w.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1`, kind).Scan(&n))
	return n
}

// lastActor is the actor of connection id's newest event.
func (w *world) lastActor(id interface{ String() string }) string {
	w.tb.Helper()
	var actor string
	require.NoError(w.tb, w.pool.QueryRow(context.Background(), `SELECT metadata->>'actor' FROM events WHERE stream_id = $1::uuid
		ORDER BY version DESC LIMIT 1`, id.String()).Scan(&actor))
	return actor
}
