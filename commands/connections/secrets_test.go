package connections_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
)

// TestNoSecretLeaves: connect, call, refresh (scheduled, on 401 and on
// request), fail in every way that makes Schwab quote what it was sent
// (a spent code, a refused refresh token), reconnect and disconnect, all
// against the fake; then no token, code or client secret the fake ever
// handed out or knows occurs in the event log, the handlers' logs, or any
// job's row (arguments, errors, metadata).
func TestNoSecretLeaves(t *testing.T) {
	w := newWorld(t, schwabtest.Options{RotateRefresh: true})
	in := w.newInstance(instanceOptions{work: true})
	ctx := context.Background()
	user := principal(uuid.New())
	id := in.connect(user, "Personal")

	// A data call, a refresh on 401, a manual and a scheduled refresh.
	require.NoError(t, in.h.Call(ctx, id, accounts))
	w.fake.ExpireAccess()
	require.NoError(t, in.h.Call(ctx, id, accounts))
	_, err := in.h.RefreshNow(ctx, user, id, rc)
	require.NoError(t, err)
	job := in.jobsOf("connection_refresh", id)[0]
	w.clock.Advance(refreshDue)
	_, err = in.jobs.River().JobRetry(ctx, job.ID)
	require.NoError(t, err)
	in.await(river.EventKindJobSnoozed, jobID(job.ID))

	// Failures: a 503 and a 429 from the token endpoint through the job
	// (their errors are kept in the job's row).
	w.clock.Advance(refreshDue)
	w.fake.FailNextToken(schwabtest.GatewayFault(http.StatusServiceUnavailable, "The Service is temporarily unavailable", "x"))
	_, err = in.jobs.River().JobRetry(ctx, job.ID)
	require.NoError(t, err)
	in.await(river.EventKindJobFailed, jobID(job.ID))
	in.await(river.EventKindJobSnoozed, jobID(job.ID)) // river's own retry refreshes

	// A code spent before the callback exchanges it: Schwab's answer
	// quotes the code.
	auth, err := in.h.Connect(ctx, user, "schwab", "Spent", rc)
	require.NoError(t, err)
	u, err := url.Parse(w.fake.ApproveURL(t, auth.URL))
	require.NoError(t, err)
	spend(t, w, u.Query().Get("code"))
	require.False(t, in.h.Callback(ctx, "schwab", u.Query(), rc).OK)

	// Schwab refuses the refresh token, quoting it, through the job.
	w.fake.RevokeRefresh()
	w.clock.Advance(refreshDue)
	_, err = in.jobs.River().JobRetry(ctx, job.ID)
	require.NoError(t, err)
	in.await(river.EventKindJobCancelled, jobID(job.ID))

	// Authorise again, then disconnect.
	again, err := in.h.Reauthorize(ctx, user, id, rc)
	require.NoError(t, err)
	u, err = url.Parse(w.fake.ApproveURL(t, again.URL))
	require.NoError(t, err)
	require.True(t, in.h.Callback(ctx, "schwab", u.Query(), rc).OK)
	require.NoError(t, in.h.Disconnect(ctx, user, id, rc))

	secrets := w.fake.Secrets()
	require.Greater(t, len(secrets), 8, "the fake handed out codes and tokens")
	var events, jobs string
	require.NoError(t, in.pool.QueryRow(ctx, `SELECT coalesce(string_agg(e::text, E'\n'), '') FROM events e`).Scan(&events))
	require.NoError(t, in.pool.QueryRow(ctx, `SELECT coalesce(string_agg(j::text, E'\n'), '') FROM river_job j`).Scan(&jobs))
	require.Contains(t, events, "ProviderTokenRefreshSucceeded")
	require.Contains(t, jobs, "connection_refresh")
	require.Contains(t, jobs, "503", "the job's row keeps the failure")
	logs := in.logs.String()
	require.Contains(t, logs, "token refresh failed")
	require.Empty(t, containsAny(events, secrets), "secrets in the event log")
	require.Empty(t, containsAny(jobs, secrets), "secrets in river_job")
	require.Empty(t, containsAny(logs, secrets), "secrets in the logs:\n%s", logs)
}

// spend exchanges code at the fake directly, as a stolen code would be.
func spend(t *testing.T, w *world, code string) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {w.fake.RedirectURI()}}
	req, err := http.NewRequest(http.MethodPost, w.fake.TokenURL(), strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(w.fake.ClientID()), url.QueryEscape(w.fake.ClientSecret()))
	resp, err := w.fake.HTTPClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
