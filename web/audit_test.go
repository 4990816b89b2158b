package web_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/audit"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/web"
)

// fakeAudit answers the audit routes with canned values, or with err when
// set, and remembers the queries it was asked; the real service is tested
// end to end in cmd/dashtam.
type fakeAudit struct {
	mu      sync.Mutex
	err     error
	queries []audit.EventQuery
}

func (f *fakeAudit) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeAudit) Events(_ context.Context, _ commands.Principal, q audit.EventQuery, _ commands.RequestContext) (audit.EventPage, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	if err := f.fail(); err != nil {
		return audit.EventPage{}, err
	}
	return audit.EventPage{Events: []audit.Event{{
		ID: uuid.New(), Position: 7, TransactionID: 900, Stream: eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()},
		Version: 2, Type: "ProviderConnectionRenamed", SchemaVersion: 1, RecordedAt: testEpoch, Actor: "user:x",
		Metadata: []byte(`{"actor":"user:x"}`), Payload: []byte(`{"alias":"Household","amount":12345678901234567890.5}`),
	}}, NextCursor: "next"}, nil
}

func (f *fakeAudit) Event(context.Context, commands.Principal, uuid.UUID, commands.RequestContext) (audit.EventDetail, error) {
	if err := f.fail(); err != nil {
		return audit.EventDetail{}, err
	}
	return audit.EventDetail{}, audit.ErrNotFound
}

func (f *fakeAudit) Checkpoints(context.Context, commands.Principal, audit.CheckpointQuery, commands.RequestContext) (audit.CheckpointPage, error) {
	return audit.CheckpointPage{}, f.fail()
}

func (f *fakeAudit) Checkpoint(context.Context, commands.Principal, int64, commands.RequestContext) (eventstore.Checkpoint, error) {
	if err := f.fail(); err != nil {
		return eventstore.Checkpoint{}, err
	}
	return eventstore.Checkpoint{}, audit.ErrNotFound
}

func (f *fakeAudit) StreamState(context.Context, commands.Principal, audit.StateQuery, commands.RequestContext) (audit.State, error) {
	if err := f.fail(); err != nil {
		return audit.State{}, err
	}
	return audit.State{}, audit.ErrNotFound
}

func TestAuditRoutesMapErrorsToProblems(t *testing.T) {
	s := MustIdentityServer(t)
	fa := &fakeAudit{}
	s2 := MustServer(t, web.Options{Identity: s.Identity, Audit: fa, Now: s.Clock.Now})
	token, _ := s.Identity.MustToken(t, user.RoleAuditor)

	r := MustCall(t, http.MethodGet, s2.URL+"/api/v1/audit-events?actor=user:x&limit=5", "", token)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	assert.Contains(t, string(r.Body), `"amount":12345678901234567890.5`, "numbers pass unrounded")
	assert.Contains(t, string(r.Body), `"next_cursor":"next"`)
	require.Len(t, fa.queries, 1)
	assert.Equal(t, "user:x", *fa.queries[0].Actor)
	assert.Equal(t, 5, fa.queries[0].Limit)

	fa.err = &audit.InvalidError{Field: "from", Message: "must be before to"}
	r = MustCall(t, http.MethodGet, s2.URL+"/api/v1/audit-events?from=2026-02-01&to=2026-01-01", "", token)
	p := MustProblem(t, r, http.StatusUnprocessableEntity, "/api/v1/audit-events")
	assert.Equal(t, "unprocessable", p.Code)
	require.Len(t, p.Errors, 1)
	assert.Equal(t, "from", p.Errors[0].Field)

	fa.err = nil
	r = MustCall(t, http.MethodGet, s2.URL+"/api/v1/audit-checkpoints/3", "", token)
	MustProblem(t, r, http.StatusNotFound, "/api/v1/audit-checkpoints/3")
	r = MustCall(t, http.MethodGet, s2.URL+"/api/v1/audit-checkpoints/0", "", token)
	MustProblem(t, r, http.StatusBadRequest, "/api/v1/audit-checkpoints/0")
	r = MustCall(t, http.MethodGet, s2.URL+"/api/v1/audit-events?limit=101", "", token)
	MustProblem(t, r, http.StatusBadRequest, "/api/v1/audit-events")

	fa.err = user.ErrNotPermitted
	r = MustCall(t, http.MethodGet, s2.URL+"/api/v1/audit-checkpoints", "", token)
	assert.Equal(t, "forbidden", MustProblem(t, r, http.StatusForbidden, "/api/v1/audit-checkpoints").Code)

	// Without the service, the routes say so instead of failing.
	s3 := MustServer(t, web.Options{Identity: s.Identity, Now: func() time.Time { return testEpoch }})
	r = MustCall(t, http.MethodGet, s3.URL+"/api/v1/audit-checkpoints", "", token)
	assert.Equal(t, "unavailable", MustProblem(t, r, http.StatusServiceUnavailable, "/api/v1/audit-checkpoints").Code)
}
