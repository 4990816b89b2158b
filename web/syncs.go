package web

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web/api"
)

// SyncService starts syncs and knows the one in progress; syncs.Handler
// implements it.
type SyncService interface {
	// Request starts a sync of one of p's connections. Errors:
	// syncs.ErrNotFound, *syncs.RefusedError.
	Request(ctx context.Context, p commands.Principal, connectionID uuid.UUID, force bool, rc commands.RequestContext) (syncs.View, error)
	// InProgress returns the sync in progress of one of p's connections
	// from its stream; ok is false when none is. Errors: syncs.ErrNotFound.
	InProgress(ctx context.Context, p commands.Principal, connectionID uuid.UUID) (syncs.View, bool, error)
}

// SyncReader reads the syncs read model; projections.SyncReader implements it.
type SyncReader interface {
	// GetSync returns one sync of userID's connection, or projections.ErrSyncNotFound.
	GetSync(ctx context.Context, userID, connectionID, syncID uuid.UUID) (projections.SyncView, error)
	// ListSyncs returns up to limit syncs of userID's connection after the key, newest first.
	ListSyncs(ctx context.Context, userID, connectionID uuid.UUID, after *projections.SyncKey, limit int) ([]projections.SyncView, error)
}

// errSyncsOff answers the sync routes of a server built without them.
var errSyncsOff = &Error{Code: CodeUnavailable, Detail: "syncs are not configured on this server"}

// syncNotFound is the one 404 of the sync routes: a missing connection,
// another user's, and a missing sync read the same.
func syncNotFound(err error) error {
	return &Error{Code: CodeNotFound, Detail: "no such resource", Err: err}
}

// syncError maps the sync use cases' errors to problems, here beside the
// routes that meet them.
func syncError(err error) error {
	var refused *syncs.RefusedError
	switch {
	case errors.Is(err, syncs.ErrNotFound):
		return syncNotFound(err)
	case errors.As(err, &refused):
		e := &Error{Code: CodeConflict, Err: err, retryAfter: refused.RetryAfter}
		switch {
		case errors.Is(refused, connection.ErrSyncRunning):
			e.Detail = "a sync of this connection is running; follow it, or retry later"
			if refused.Running != uuid.Nil {
				e.Detail = "a sync of this connection is running (" + refused.Running.String() + "); follow it, or retry later"
			}
		case errors.Is(refused, connection.ErrSyncTooSoon):
			e.Code, e.Detail = CodeRateLimited, "the connection was synced moments ago; retry later or force the sync"
		case errors.Is(refused, connection.ErrDisconnected):
			e.Detail = "the connection is disconnected"
		default:
			e.Detail = "the connection is not active; authorize it again first"
		}
		return e
	}
	return err
}

// syncCaller returns the service, the reader and the verified caller.
func (h *strictAPI) syncCaller(ctx context.Context) (SyncService, SyncReader, commands.Principal, error) {
	if h.s.syncs == nil || h.s.syncReader == nil {
		return nil, nil, commands.Principal{}, errSyncsOff
	}
	p, err := callerOf(ctx)
	return h.s.syncs, h.s.syncReader, p, err
}

// syncsPath is where a connection's syncs live, for Location.
func syncsPath(connectionID uuid.UUID) string {
	return "/api/v1/connections/" + connectionID.String() + "/syncs/"
}

// RequestSync starts a sync and answers it, queued.
func (h *strictAPI) RequestSync(ctx context.Context, req api.RequestSyncRequestObject) (api.RequestSyncResponseObject, error) {
	svc, _, p, err := h.syncCaller(ctx)
	if err != nil {
		return nil, err
	}
	force := req.Body != nil && req.Body.Force != nil && *req.Body.Force
	v, err := svc.Request(ctx, p, req.Id, force, requestContextOf(ctx))
	if err != nil {
		return nil, syncError(err)
	}
	loc := syncsPath(req.Id) + v.ID.String()
	body := inProgressJSON(v)
	body.Position = answeredPosition(ctx)
	return api.RequestSync202JSONResponse{Body: body, Headers: api.RequestSync202ResponseHeaders{Location: &loc}}, nil
}

// GetSync answers one sync from the read model, or the sync in progress
// from the connection's stream while the read model catches up.
func (h *strictAPI) GetSync(ctx context.Context, req api.GetSyncRequestObject) (api.GetSyncResponseObject, error) {
	svc, reader, p, err := h.syncCaller(ctx)
	if err != nil {
		return nil, err
	}
	v, err := reader.GetSync(ctx, p.UserID, req.Id, req.SyncId)
	if err == nil {
		return api.GetSync200JSONResponse(syncJSON(v)), nil
	}
	if !errors.Is(err, projections.ErrSyncNotFound) {
		return nil, err
	}
	current, ok, err := svc.InProgress(ctx, p, req.Id)
	if err != nil {
		return nil, syncError(err)
	}
	if !ok || current.ID != req.SyncId {
		return nil, syncNotFound(projections.ErrSyncNotFound)
	}
	return api.GetSync200JSONResponse(inProgressJSON(current)), nil
}

// ListSyncs answers a page of a connection's syncs, newest first.
func (h *strictAPI) ListSyncs(ctx context.Context, req api.ListSyncsRequestObject) (api.ListSyncsResponseObject, error) {
	svc, reader, p, err := h.syncCaller(ctx)
	if err != nil {
		return nil, err
	}
	limit := defaultPageSize
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	if limit < 1 || limit > maxPageSize {
		return nil, &Error{Code: CodeInvalid, Fields: []FieldError{{Field: "limit", Message: "must be between 1 and 100"}}}
	}
	var after *projections.SyncKey
	if req.Params.Cursor != nil {
		if after, err = decodeSyncCursor(*req.Params.Cursor); err != nil {
			return nil, err
		}
	}
	// The connection's stream says whether it is the caller's, even when
	// the read model has no row of it yet.
	if _, _, err := svc.InProgress(ctx, p, req.Id); err != nil {
		return nil, syncError(err)
	}
	page, err := reader.ListSyncs(ctx, p.UserID, req.Id, after, limit+1)
	if err != nil {
		return nil, err
	}
	list := api.SyncList{Items: make([]api.Sync, 0, min(len(page), limit))}
	for i, v := range page {
		if i == limit {
			last := page[i-1]
			next := encodeCursor(last.StartedAt.UTC().Format(time.RFC3339Nano) + "|" + last.ID.String())
			list.NextCursor = &next
			break
		}
		list.Items = append(list.Items, syncJSON(v))
	}
	return api.ListSyncs200JSONResponse(list), nil
}

// decodeSyncCursor reads a cursor ListSyncs issued.
func decodeSyncCursor(cursor string) (*projections.SyncKey, error) {
	raw, err := decodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	at, id, ok := strings.Cut(raw, "|")
	t, terr := time.Parse(time.RFC3339Nano, at)
	u, uerr := uuid.Parse(id)
	if !ok || terr != nil || uerr != nil {
		return nil, &Error{Code: CodeInvalid, Detail: "the cursor was not issued by this API",
			Fields: []FieldError{{Field: "cursor", Message: "malformed cursor"}}}
	}
	return &projections.SyncKey{StartedAt: t, ID: u}, nil
}

// syncJSON shows a sync of the read model as the API does.
func syncJSON(v projections.SyncView) api.Sync {
	out := api.Sync{
		Id: v.ID, ConnectionId: v.ConnectionID, Status: api.SyncStatus(v.Status), Trigger: api.SyncTrigger(v.Trigger),
		Force: v.Force, Window: syncWindowJSON(v.From, v.To), Accounts: v.Accounts,
		Counts:        api.SyncCounts{Created: v.Counts.Created, Updated: v.Counts.Updated, Unchanged: v.Counts.Unchanged, Removed: v.Counts.Removed},
		AccountErrors: make([]api.SyncAccountError, 0, len(v.AccountErrors)),
		StartedAt:     v.StartedAt.UTC(), PickedUpAt: syncTimePtr(v.PickedUpAt), FinishedAt: syncTimePtr(v.FinishedAt),
	}
	for _, e := range v.AccountErrors {
		out.AccountErrors = append(out.AccountErrors, api.SyncAccountError{AccountId: e.AccountID, Reason: string(e.Reason)})
	}
	if v.FailureReason != "" {
		reason := v.FailureReason
		out.FailureReason = &reason
	}
	return out
}

// inProgressJSON shows a sync in progress as the decision or the stream
// knows it: nothing counted yet.
func inProgressJSON(v syncs.View) api.Sync {
	return api.Sync{
		Id: v.ID, ConnectionId: v.ConnectionID, Status: api.SyncStatus(v.Status), Trigger: api.SyncTrigger(v.Trigger),
		Force: v.Force, Window: syncWindowJSON(v.From, v.To), AccountErrors: []api.SyncAccountError{},
		StartedAt: v.StartedAt.UTC(),
	}
}

// syncWindowJSON shows a window of dates; the stored dates are valid.
func syncWindowJSON(from, to string) api.SyncWindow {
	var w api.SyncWindow
	if t, err := time.Parse(time.DateOnly, from); err == nil {
		w.From = openapi_types.Date{Time: t}
	}
	if t, err := time.Parse(time.DateOnly, to); err == nil {
		w.To = openapi_types.Date{Time: t}
	}
	return w
}

// syncTimePtr returns *t in UTC, nil for nil.
func syncTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
