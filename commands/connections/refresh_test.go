package connections_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
)

// accessLife is the life of the fake's access tokens, and refreshDue the
// share of it after which the refresh job refreshes them.
const (
	accessLife = schwabtest.AccessTokenLifetime
	refreshDue = accessLife * 8 / 10
)

// snoozeOf returns the delay of a job's snooze, failing when err is not one.
func snoozeOf(t *testing.T, err error) time.Duration {
	t.Helper()
	var s *commands.JobSnoozeError
	require.ErrorAs(t, err, &s, "want a snooze, got %v", err)
	return s.Delay
}

// accounts is a data call: the account list.
func accounts(ctx context.Context, p commands.Provider, c commands.Credentials) error {
	_, err := p.Accounts(ctx, c)
	return err
}

// TestRefreshAheadOfExpiry: a completed connection's refresh job is
// scheduled at 80% of the access token's life; run early it snoozes until
// then without calling Schwab; run when due it refreshes once, stores new
// sealed credentials, records the attempt and its success, and snoozes
// until the next refresh is due. The handler is run directly, so that the
// injected clock alone decides (river's side is TestRefreshJobOnRiver).
func TestRefreshAheadOfExpiry(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{})
	ctx := context.Background()
	id := in.connect(principal(uuid.New()), "Personal")
	connected := w.clock.Now()
	before, ok := in.credentialsRow(id)
	require.True(t, ok)
	require.Equal(t, "old", before.KeyID)
	oldCreds := in.credentials(id, in.kr)
	require.WithinDuration(t, connected.Add(accessLife), before.AccessExpiresAt, time.Microsecond)

	jobs := in.jobsOf("connection_refresh", id)
	require.Len(t, jobs, 1, "one refresh job per connection")
	require.WithinDuration(t, connected.Add(refreshDue), jobs[0].ScheduledAt, time.Millisecond,
		"scheduled at 80%% of the access token's life")
	job := connections.RefreshJob{ConnectionID: id}

	w.clock.Advance(time.Minute)
	require.WithinDuration(t, connected.Add(refreshDue), w.clock.Now().Add(snoozeOf(t, in.h.RunRefresh(ctx, job))), time.Millisecond,
		"an early run snoozes until the refresh is due")
	require.Equal(t, 1, w.fake.Calls(schwabtest.EndpointToken), "an early run calls nobody")

	w.clock.Advance(refreshDue - time.Minute)
	refreshedAt := w.clock.Now()
	delay := snoozeOf(t, in.h.RunRefresh(ctx, job))
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken), "one refresh")
	require.WithinDuration(t, refreshedAt.Add(refreshDue), refreshedAt.Add(delay), time.Millisecond,
		"the job snoozes until the new token's refresh is due")

	require.Equal(t, []string{"ProviderConnectionAttempted", "ProviderConnectionSucceeded",
		"ProviderTokenRefreshAttempted", "ProviderTokenRefreshSucceeded"}, in.eventTypes(id))
	after, ok := in.credentialsRow(id)
	require.True(t, ok)
	require.Equal(t, before.Generation+1, after.Generation)
	require.NotEqual(t, before.Blob, after.Blob)
	require.NotEqual(t, before.Fingerprint, after.Fingerprint)
	require.Nil(t, after.RefreshingUntil, "the lease ends with the refresh")
	newCreds := in.credentials(id, in.kr)
	require.NotEqual(t, oldCreds.AccessToken, newCreds.AccessToken, "a new access token is sealed")
	require.Equal(t, after.Fingerprint, commands.Fingerprint(newCreds))
	require.WithinDuration(t, refreshedAt.Add(accessLife), after.AccessExpiresAt, time.Microsecond)
	succeeded, ok := in.lastEvent(id).(connection.ProviderTokenRefreshSucceeded)
	require.True(t, ok)
	require.Equal(t, after.Fingerprint, succeeded.Credentials.Fingerprint)
	require.Equal(t, "old", succeeded.Credentials.KeyID)
	require.True(t, after.AccessExpiresAt.Equal(succeeded.Credentials.AccessExpiresAt))

	// The stored access token is the new one: a data call needs no refresh.
	require.NoError(t, in.h.Call(ctx, id, accounts))
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken))

	// Run again at once (a duplicate, a retry): it snoozes, calls nobody.
	require.WithinDuration(t, refreshedAt.Add(refreshDue), w.clock.Now().Add(snoozeOf(t, in.h.RunRefresh(ctx, job))), time.Millisecond)
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken))
	require.Len(t, in.jobsOf("connection_refresh", id), 1, "still one refresh job")
}

// TestRefreshJobOnRiver runs the refresh job through river: the job the
// callback enqueued, made available early, snoozes without a call (by the
// handler's clock, not river's); made available again once the clock says
// it is due, it refreshes once and river holds it until the next refresh.
func TestRefreshJobOnRiver(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{work: true})
	ctx := context.Background()
	id := in.connect(principal(uuid.New()), "Personal")
	jobs := in.jobsOf("connection_refresh", id)
	require.Len(t, jobs, 1)
	require.Equal(t, "scheduled", jobs[0].State, "river holds the job until it is due")

	_, err := in.jobs.River().JobRetry(ctx, jobs[0].ID)
	require.NoError(t, err)
	early := in.await(river.EventKindJobSnoozed, jobID(jobs[0].ID)).Job
	require.Equal(t, 1, w.fake.Calls(schwabtest.EndpointToken), "an early run calls nobody")
	requireSnoozedFor(t, early, refreshDue, time.Minute)

	w.clock.Advance(refreshDue)
	_, err = in.jobs.River().JobRetry(ctx, jobs[0].ID)
	require.NoError(t, err)
	due := in.await(river.EventKindJobSnoozed, jobID(jobs[0].ID)).Job
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken), "one refresh")
	require.Equal(t, "ProviderTokenRefreshSucceeded", in.eventTypes(id)[3])
	requireSnoozedFor(t, due, refreshDue, time.Minute)
	require.Zero(t, due.Attempt, "snoozes do not use up attempts")
	require.Len(t, in.jobsOf("connection_refresh", id), 1)
}

// requireSnoozedFor checks that river scheduled j about d after its
// attempt, within tolerance (river stamps both with its own clock).
func requireSnoozedFor(t *testing.T, j *rivertype.JobRow, d, tolerance time.Duration) {
	t.Helper()
	require.Equal(t, rivertype.JobStateScheduled, j.State)
	require.NotNil(t, j.AttemptedAt)
	require.InDelta(t, d.Seconds(), j.ScheduledAt.Sub(*j.AttemptedAt).Seconds(), tolerance.Seconds(),
		"scheduled %s after the attempt, want about %s", j.ScheduledAt.Sub(*j.AttemptedAt), d)
}

// TestCallRefreshesOnceOn401: a data call refused with 401 (the access
// token expired early) refreshes once and runs again with the new token;
// refused again after the refresh, the connection needs the user: status
// needs_reauth, a mail job, and no further call reaches Schwab.
func TestCallRefreshesOnceOn401(t *testing.T) {
	w := newWorld(t, schwabtest.Options{})
	in := w.newInstance(instanceOptions{})
	ctx := context.Background()
	user := principal(uuid.New())
	id := in.connect(user, "Personal")

	w.fake.ExpireAccess()
	calls := 0
	err := in.h.Call(ctx, id, func(ctx context.Context, p commands.Provider, c commands.Credentials) error {
		calls++
		return accounts(ctx, p, c)
	})
	require.NoError(t, err)
	require.Equal(t, 2, calls, "refused, refreshed, run again")
	require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken), "one refresh")
	types := in.eventTypes(id)
	require.Equal(t, []string{"ProviderTokenRefreshAttempted", "ProviderTokenRefreshSucceeded"}, types[2:])
	v, err := in.h.Get(ctx, user, id)
	require.NoError(t, err)
	require.Equal(t, connection.StatusActive, v.Status)

	// Refused before and after the refresh: the user must authorise again.
	w.fake.FailNext(http.StatusUnauthorized, 0)
	w.fake.FailNext(http.StatusUnauthorized, 0)
	calls = 0
	err = in.h.Call(ctx, id, func(ctx context.Context, p commands.Provider, c commands.Credentials) error {
		calls++
		return accounts(ctx, p, c)
	})
	require.ErrorIs(t, err, connections.ErrReauthenticationRequired)
	require.Equal(t, 2, calls)
	require.Equal(t, 3, w.fake.Calls(schwabtest.EndpointToken), "still one refresh per refusal")
	types = in.eventTypes(id)
	require.Equal(t, []string{"ProviderTokenRefreshAttempted", "ProviderTokenRefreshSucceeded", "ProviderReauthenticationRequired"}, types[4:],
		"the refresh succeeded; the data call's refusal needs the user")
	reauth := in.lastEvent(id).(connection.ProviderReauthenticationRequired)
	require.Equal(t, connection.FailedAuthentication, reauth.Reason)
	v, err = in.h.Get(ctx, user, id)
	require.NoError(t, err)
	require.Equal(t, connection.StatusNeedsReauth, v.Status)
	mails := in.jobsOf("user_mail", user.UserID)
	require.Len(t, mails, 1)
	require.JSONEq(t, `{"user_id":"`+user.UserID.String()+`","template":"reauthorization_required","params":{"alias":"Personal","provider":"Charles Schwab"}}`,
		string(mails[0].Args))

	// Nothing more reaches Schwab for this connection until it is authorised again.
	data, token := w.fake.DataCalls(), w.fake.Calls(schwabtest.EndpointToken)
	err = in.h.Call(ctx, id, accounts)
	require.ErrorIs(t, err, connections.ErrReauthenticationRequired)
	_, err = in.h.RefreshNow(ctx, user, id, rc)
	require.ErrorIs(t, err, connections.ErrReauthenticationRequired)
	require.Equal(t, data, w.fake.DataCalls())
	require.Equal(t, token, w.fake.Calls(schwabtest.EndpointToken))
	require.Len(t, in.jobsOf("user_mail", user.UserID), 1, "one mail")
}

// TestRefreshJobProviderFailures: the refresh job against a failing token
// endpoint, through river. A 429 snoozes the job for its Retry-After
// without using up an attempt; a 503 and an unreadable answer are
// transient failures, recorded and retried with backoff. None changes the
// connection's status or its credentials.
func TestRefreshJobProviderFailures(t *testing.T) {
	cases := []struct {
		name    string
		failure schwabtest.Failure
		reason  connection.FailureReason
		snooze  time.Duration // zero: retried with backoff
	}{
		{"429 with Retry-After", schwabtest.RateLimited("120"), connection.FailedRateLimited, 120 * time.Second},
		{"503", schwabtest.GatewayFault(http.StatusServiceUnavailable, "The Service is temporarily unavailable",
			"messaging.adaptors.http.flow.ServiceUnavailable"), connection.FailedProviderUnavailable, 0},
		{"garbage", schwabtest.Failure{Status: http.StatusOK, ContentType: "application/json", Body: `{"access_token":"I0.tr`},
			connection.FailedInvalidResponse, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, schwabtest.Options{})
			in := w.newInstance(instanceOptions{work: true})
			ctx := context.Background()
			user := principal(uuid.New())
			id := in.connect(user, "Personal")
			before, _ := in.credentialsRow(id)
			job := in.jobsOf("connection_refresh", id)[0]
			w.clock.Advance(refreshDue)
			w.fake.FailNextToken(tc.failure)
			_, err := in.jobs.River().JobRetry(ctx, job.ID)
			require.NoError(t, err)

			if tc.snooze > 0 {
				requireSnoozedFor(t, in.await(river.EventKindJobSnoozed, jobID(job.ID)).Job, tc.snooze, 10*time.Second)
			} else {
				failed := in.await(river.EventKindJobFailed, jobID(job.ID)).Job
				// Retryable, or available at once when river's first backoff is short.
				require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, failed.State)
				require.Len(t, failed.Errors, 1)
				require.Equal(t, 1, failed.Attempt, "a failure uses up an attempt")
				require.True(t, failed.ScheduledAt.After(*failed.AttemptedAt), "after a backoff")
			}
			require.Equal(t, 2, w.fake.Calls(schwabtest.EndpointToken))
			types := in.eventTypes(id)
			require.Equal(t, []string{"ProviderTokenRefreshAttempted", "ProviderTokenRefreshFailed"}, types[2:])
			f := in.lastEvent(id).(connection.ProviderTokenRefreshFailed)
			require.Equal(t, tc.reason, f.Reason)
			require.True(t, f.Transient)
			v, err := in.h.Get(ctx, user, id)
			require.NoError(t, err)
			require.Equal(t, connection.StatusActive, v.Status)
			after, _ := in.credentialsRow(id)
			require.Equal(t, before.Generation, after.Generation, "credentials unchanged")
			require.Nil(t, after.RefreshingUntil, "the lease is released for the next try")

			// The next run, with Schwab back, refreshes.
			_, err = in.jobs.River().JobRetry(ctx, job.ID)
			require.NoError(t, err)
			requireSnoozedFor(t, in.await(river.EventKindJobSnoozed, jobID(job.ID)).Job, refreshDue, time.Minute)
			require.Equal(t, 3, w.fake.Calls(schwabtest.EndpointToken))
			require.Equal(t, "ProviderTokenRefreshSucceeded", in.eventTypes(id)[5])
		})
	}
}
