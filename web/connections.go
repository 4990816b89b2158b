package web

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web/api"
)

// ConnectionLister reads the connections read model;
// projections.ConnectionReader implements it.
type ConnectionLister interface {
	// ListConnections returns up to limit of userID's connections after
	// the key (nil: from the start), oldest first.
	ListConnections(ctx context.Context, userID uuid.UUID, after *projections.ConnectionKey, limit int) ([]projections.ConnectionView, error)
}

// connectionsPath is where a connection resource lives, for Location.
const connectionsPath = "/api/v1/connections/"

// errConnectionsOff answers the connection routes of a server built without
// a connections service (a test or an embedder that needs none).
var errConnectionsOff = &Error{Code: CodeUnavailable, Detail: "provider connections are not configured on this server"}

// connectionCaller returns the service and the verified caller.
func (h *strictAPI) connectionCaller(ctx context.Context) (connections.Service, commands.Principal, error) {
	if h.s.connections == nil {
		return nil, commands.Principal{}, errConnectionsOff
	}
	p, err := callerOf(ctx)
	return h.s.connections, p, err
}

// CreateConnection starts a connection and answers where to send the browser.
func (h *strictAPI) CreateConnection(ctx context.Context, req api.CreateConnectionRequestObject) (api.CreateConnectionResponseObject, error) {
	svc, p, err := h.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	a, err := svc.Connect(ctx, p, req.Body.ProviderSlug, req.Body.Alias, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	loc := connectionsPath + a.Connection.ID.String()
	body := authorizationJSON(a)
	body.Position = answeredPosition(ctx)
	return api.CreateConnection201JSONResponse{Body: body, Headers: api.CreateConnection201ResponseHeaders{Location: &loc}}, nil
}

// ReauthorizeConnection sends the user to the provider again for an existing connection.
func (h *strictAPI) ReauthorizeConnection(ctx context.Context, req api.ReauthorizeConnectionRequestObject) (api.ReauthorizeConnectionResponseObject, error) {
	svc, p, err := h.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	a, err := svc.Reauthorize(ctx, p, req.Id, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	body := authorizationJSON(a)
	body.Position = answeredPosition(ctx)
	return api.ReauthorizeConnection201JSONResponse(body), nil
}

// GetConnection answers one of the caller's connections from its stream,
// so it is always current; another user's is 404.
func (h *strictAPI) GetConnection(ctx context.Context, req api.GetConnectionRequestObject) (api.GetConnectionResponseObject, error) {
	svc, p, err := h.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	v, err := svc.Get(ctx, p, req.Id)
	if err != nil {
		return nil, err
	}
	return api.GetConnection200JSONResponse(connectionJSON(v)), nil
}

// RenameConnection sets a connection's alias.
func (h *strictAPI) RenameConnection(ctx context.Context, req api.RenameConnectionRequestObject) (api.RenameConnectionResponseObject, error) {
	svc, p, err := h.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	v, err := svc.Rename(ctx, p, req.Id, req.Body.Alias, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	body := connectionJSON(v)
	body.Position = answeredPosition(ctx)
	return api.RenameConnection200JSONResponse(body), nil
}

// DisconnectConnection ends a connection.
func (h *strictAPI) DisconnectConnection(ctx context.Context, req api.DisconnectConnectionRequestObject) (api.DisconnectConnectionResponseObject, error) {
	svc, p, err := h.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := svc.Disconnect(ctx, p, req.Id, requestContextOf(ctx)); err != nil {
		return nil, err
	}
	return api.DisconnectConnection204Response{}, nil
}

// RefreshConnectionTokens refreshes a connection's provider tokens now and
// answers the new expiries, never a token.
func (h *strictAPI) RefreshConnectionTokens(ctx context.Context, req api.RefreshConnectionTokensRequestObject) (api.RefreshConnectionTokensResponseObject, error) {
	svc, p, err := h.connectionCaller(ctx)
	if err != nil {
		return nil, err
	}
	e, err := svc.RefreshNow(ctx, p, req.Id, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	return api.RefreshConnectionTokens200JSONResponse(api.TokenRefresh{
		ConnectionId: req.Id, AccessExpiresAt: e.AccessExpiresAt.UTC(), ReauthorizeBy: utcPtr(e.ReauthorizeBy),
		Position: answeredPosition(ctx),
	}), nil
}

// ListConnections pages through the caller's connections, oldest first,
// from the read model: it may trail a change made a moment ago.
func (h *strictAPI) ListConnections(ctx context.Context, req api.ListConnectionsRequestObject) (api.ListConnectionsResponseObject, error) {
	if h.s.connectionList == nil {
		return nil, errConnectionsOff
	}
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	limit := defaultPageSize
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	if limit < 1 || limit > maxPageSize {
		// The validator rejects this first; kept so the handler is safe alone.
		return nil, &Error{Code: CodeInvalid, Fields: []FieldError{{Field: "limit", Message: "must be between 1 and 100"}}}
	}
	var after *projections.ConnectionKey
	if req.Params.Cursor != nil {
		k, err := decodeConnectionCursor(*req.Params.Cursor)
		if err != nil {
			return nil, err
		}
		after = &k
	}
	// One more than the page tells whether another page follows, so the
	// last page never links to an empty one.
	views, err := h.s.connectionList.ListConnections(ctx, p.UserID, after, limit+1)
	if err != nil {
		return nil, err
	}
	list := api.ConnectionList{Items: make([]api.Connection, 0, min(len(views), limit))}
	for _, v := range views[:min(len(views), limit)] {
		list.Items = append(list.Items, listedConnectionJSON(v))
	}
	if len(views) > limit {
		next := encodeConnectionCursor(views[limit-1].Key())
		list.NextCursor = &next
	}
	return api.ListConnections200JSONResponse(list), nil
}

// encodeConnectionCursor makes a list position opaque: the created_at
// (to the microsecond the read model keeps) and id of the last item.
func encodeConnectionCursor(k projections.ConnectionKey) string {
	return encodeCursor(k.CreatedAt.UTC().Format(time.RFC3339Nano) + " " + k.ID.String())
}

// decodeConnectionCursor reverses encodeConnectionCursor.
func decodeConnectionCursor(cursor string) (projections.ConnectionKey, error) {
	bad := &Error{Code: CodeInvalid, Detail: "the cursor was not issued by this API",
		Fields: []FieldError{{Field: "cursor", Message: "malformed cursor"}}}
	raw, err := decodeCursor(cursor)
	if err != nil {
		return projections.ConnectionKey{}, err
	}
	at, id, ok := strings.Cut(raw, " ")
	if !ok {
		return projections.ConnectionKey{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return projections.ConnectionKey{}, bad
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return projections.ConnectionKey{}, bad
	}
	return projections.ConnectionKey{CreatedAt: t, ID: u}, nil
}

// connectionJSON renders a connection as the service shows it.
func connectionJSON(v connections.View) api.Connection {
	return api.Connection{
		Id:              v.ID,
		ProviderSlug:    v.ProviderSlug,
		Alias:           v.Alias,
		Status:          api.ConnectionStatus(v.Status),
		CreatedAt:       v.CreatedAt.UTC(),
		ConnectedAt:     utcPtr(v.ConnectedAt),
		LastSyncAt:      nil, // no syncs yet
		ReauthorizeBy:   utcPtr(v.ReauthorizeBy),
		AccessExpiresAt: utcPtr(v.AccessExpires),
		DisconnectedAt:  utcPtr(v.DisconnectedAt),
	}
}

// listedConnectionJSON renders a connection of the read model.
func listedConnectionJSON(v projections.ConnectionView) api.Connection {
	return api.Connection{
		Id:              v.ID,
		ProviderSlug:    v.ProviderSlug,
		Alias:           v.Alias,
		Status:          api.ConnectionStatus(v.Status),
		CreatedAt:       v.CreatedAt.UTC(),
		ConnectedAt:     utcPtr(v.ConnectedAt),
		LastSyncAt:      utcPtr(v.LastSyncAt),
		ReauthorizeBy:   utcPtr(v.ReauthorizeBy),
		AccessExpiresAt: utcPtr(v.AccessExpiresAt),
		DisconnectedAt:  utcPtr(v.DisconnectedAt),
	}
}

// authorizationJSON renders a connection with where to authorise it.
func authorizationJSON(a connections.Authorization) api.ConnectionAuthorization {
	c := connectionJSON(a.Connection)
	return api.ConnectionAuthorization{
		Id: c.Id, ProviderSlug: c.ProviderSlug, Alias: c.Alias, Status: c.Status, CreatedAt: c.CreatedAt,
		ConnectedAt: c.ConnectedAt, LastSyncAt: c.LastSyncAt, ReauthorizeBy: c.ReauthorizeBy,
		AccessExpiresAt: c.AccessExpiresAt, DisconnectedAt: c.DisconnectedAt,
		AuthorizationUrl: a.URL, State: a.State, ExpiresIn: int(a.ExpiresIn / time.Second),
	}
}

// utcPtr returns t in UTC, nil for nil: every time the API answers is UTC.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
