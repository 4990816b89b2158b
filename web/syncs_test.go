package web_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/web"
)

// syncServer is a server over the fake identity and the fake syncs.
type syncServer struct {
	*testServer
	Identity *fakeIdentity
	Syncs    *fakeSyncs
}

func mustSyncServer(tb testing.TB) *syncServer {
	tb.Helper()
	clock := &fakeClock{now: testEpoch}
	id := newFakeIdentity(tb, clock)
	f := newFakeSyncs()
	s := MustServer(tb, web.Options{Identity: id, Now: clock.Now, Syncs: f, SyncReader: f})
	return &syncServer{testServer: s, Identity: id, Syncs: f}
}

// syncBody is the JSON of a sync as clients read it.
type syncBody struct {
	ID           uuid.UUID `json:"id"`
	ConnectionID uuid.UUID `json:"connection_id"`
	Status       string    `json:"status"`
	Trigger      string    `json:"trigger"`
	Force        bool      `json:"force"`
	Window       struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"window"`
	Accounts      int                       `json:"accounts"`
	Counts        connection.SyncCounts     `json:"counts"`
	AccountErrors []connection.AccountError `json:"account_errors"`
	FailureReason *string                   `json:"failure_reason"`
	StartedAt     time.Time                 `json:"started_at"`
	PickedUpAt    *time.Time                `json:"picked_up_at"`
	FinishedAt    *time.Time                `json:"finished_at"`
}

// The request answers 202 with the queued sync and where to follow it,
// and that Location answers at once, from the stream, before the read
// model has the sync.
func TestRequestSyncAnswersTheQueuedSync(t *testing.T) {
	s := mustSyncServer(t)
	token, p := s.Identity.MustToken(t, user.RoleUser)
	conn := uuid.New()
	s.Syncs.own(p.UserID, conn)
	base := s.URL + "/api/v1/connections/" + conn.String() + "/syncs"

	r := MustCall(t, http.MethodPost, base, `{"force":true}`, token)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	var got syncBody
	require.NoError(t, json.Unmarshal(r.Body, &got))
	assert.Equal(t, "queued", got.Status)
	assert.Equal(t, "manual", got.Trigger)
	assert.True(t, got.Force)
	assert.Equal(t, conn, got.ConnectionID)
	assert.Equal(t, "2025-03-10", got.Window.From)
	assert.Equal(t, "2026-03-10", got.Window.To)
	assert.NotNil(t, got.AccountErrors)
	assert.Nil(t, got.FinishedAt)
	loc := r.Header.Get("Location")
	assert.Equal(t, "/api/v1/connections/"+conn.String()+"/syncs/"+got.ID.String(), loc)

	r = MustCall(t, http.MethodGet, s.URL+loc, "", token)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var again syncBody
	require.NoError(t, json.Unmarshal(r.Body, &again))
	assert.Equal(t, got.ID, again.ID)

	// No body at all is a sync that is not forced.
	r = MustCall(t, http.MethodPost, base, "", token)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	assert.Equal(t, []bool{true, false}, s.Syncs.forced)
}

// Refusals are problems a client can act on: 409 while one runs, 429 too
// soon after the last, both with Retry-After; 409 for a connection that
// needs the user; 404 for another user's connection and for unknown
// members of the body.
func TestRequestSyncRefusals(t *testing.T) {
	s := mustSyncServer(t)
	token, p := s.Identity.MustToken(t, user.RoleUser)
	other, _ := s.Identity.MustToken(t, user.RoleUser)
	conn := uuid.New()
	s.Syncs.own(p.UserID, conn)
	path := "/api/v1/connections/" + conn.String() + "/syncs"

	running := uuid.New()
	s.Syncs.refuse = &syncs.RefusedError{Err: connection.ErrSyncRunning, RetryAfter: 30 * time.Second, Running: running}
	r := MustCall(t, http.MethodPost, s.URL+path, "", token)
	pr := MustProblem(t, r, http.StatusConflict, path)
	assert.Equal(t, "conflict", pr.Code)
	assert.Contains(t, pr.Detail, running.String())
	assert.Equal(t, "30", r.Header.Get("Retry-After"))

	s.Syncs.refuse = &syncs.RefusedError{Err: connection.ErrSyncTooSoon, RetryAfter: 200 * time.Second}
	r = MustCall(t, http.MethodPost, s.URL+path, "", token)
	assert.Equal(t, "rate_limited", MustProblem(t, r, http.StatusTooManyRequests, path).Code)
	assert.Equal(t, "200", r.Header.Get("Retry-After"))

	s.Syncs.refuse = &syncs.RefusedError{Err: connection.ErrNotActive}
	r = MustCall(t, http.MethodPost, s.URL+path, "", token)
	MustProblem(t, r, http.StatusConflict, path)
	assert.Empty(t, r.Header.Get("Retry-After"))

	r = MustCall(t, http.MethodPost, s.URL+path, "", other)
	assert.Equal(t, "not_found", MustProblem(t, r, http.StatusNotFound, path).Code)

	r = MustCall(t, http.MethodPost, s.URL+path, `{"force":true,"later":1}`, token)
	MustProblem(t, r, http.StatusBadRequest, path)
}

// Reads: the read model's syncs, newest first, page by page; another
// user's connection and an unknown sync answer 404.
func TestReadSyncs(t *testing.T) {
	s := mustSyncServer(t)
	token, p := s.Identity.MustToken(t, user.RoleUser)
	other, _ := s.Identity.MustToken(t, user.RoleUser)
	conn := uuid.New()
	s.Syncs.own(p.UserID, conn)
	var want []uuid.UUID
	for i := range 5 {
		v := syncAt(p.UserID, conn, testEpoch.Add(-time.Duration(i)*time.Hour))
		s.Syncs.project(v)
		want = append(want, v.ID)
	}
	base := s.URL + "/api/v1/connections/" + conn.String() + "/syncs"

	var seen []uuid.UUID
	url := base + "?limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		r := MustCall(t, http.MethodGet, url, "", token)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var page struct {
			Items      []syncBody `json:"items"`
			NextCursor *string    `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &page))
		for _, it := range page.Items {
			seen = append(seen, it.ID)
		}
		if page.NextCursor == nil {
			break
		}
		url = base + "?limit=2&cursor=" + *page.NextCursor
	}
	assert.Equal(t, want, seen)

	r := MustCall(t, http.MethodGet, base+"/"+want[0].String(), "", token)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var one syncBody
	require.NoError(t, json.Unmarshal(r.Body, &one))
	assert.Equal(t, "completed", one.Status)
	assert.Equal(t, connection.SyncCounts{Created: 3, Unchanged: 5}, one.Counts)
	assert.Equal(t, []connection.AccountError{{AccountID: conn, Reason: connection.FailedProviderUnavailable}}, one.AccountErrors)
	assert.NotNil(t, one.FinishedAt)

	path := "/api/v1/connections/" + conn.String() + "/syncs"
	MustProblem(t, MustCall(t, http.MethodGet, s.URL+path, "", other), http.StatusNotFound, path)
	MustProblem(t, MustCall(t, http.MethodGet, s.URL+path+"/"+want[0].String(), "", other), http.StatusNotFound, path+"/"+want[0].String())
	unknown := uuid.NewString()
	MustProblem(t, MustCall(t, http.MethodGet, s.URL+path+"/"+unknown, "", token), http.StatusNotFound, path+"/"+unknown)
	MustProblem(t, MustCall(t, http.MethodGet, s.URL+path+"?cursor=bm9wZQ", "", token), http.StatusBadRequest, path)
}
