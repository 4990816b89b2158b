package web

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/web/api"
)

// Login opens a session; tokens appear in this response and the refresh
// response only.
func (h *strictAPI) Login(ctx context.Context, req api.LoginRequestObject) (api.LoginResponseObject, error) {
	t, err := h.s.identity.Login(ctx, identity.LoginInput{
		Email: req.Body.Email, Password: req.Body.Password, RequestContext: requestContextOf(ctx),
	})
	if err != nil {
		return nil, err
	}
	return api.Login201JSONResponse(tokensJSON(t)), nil
}

// RefreshTokens rotates a refresh token. The per-user refresh limit is
// charged by the service through the admission check the rate limits
// attached, once the token has named its user.
func (h *strictAPI) RefreshTokens(ctx context.Context, req api.RefreshTokensRequestObject) (api.RefreshTokensResponseObject, error) {
	t, err := h.s.identity.Refresh(ctx, req.Body.RefreshToken, requestContextOf(ctx), admitFrom(ctx))
	if err != nil {
		return nil, err
	}
	return api.RefreshTokens200JSONResponse(tokensJSON(t)), nil
}

// ListSessions pages through the caller's sessions, newest first. The
// service answers them all (a user holds few: the session limit is 10 plus
// recently ended ones), so paging is a keyset over that list by session id.
func (h *strictAPI) ListSessions(ctx context.Context, req api.ListSessionsRequestObject) (api.ListSessionsResponseObject, error) {
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
	sessions, err := h.s.identity.Sessions(ctx, p)
	if err != nil {
		return nil, err
	}
	start := 0
	if req.Params.Cursor != nil {
		after, err := decodeCursor(*req.Params.Cursor)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(sessions, func(s identity.SessionView) bool { return s.ID.String() == after })
		if i < 0 {
			// The session a cursor points at never leaves the list (ended
			// ones are kept), so an unknown one was not issued to this user.
			return nil, &Error{Code: CodeInvalid, Detail: "the cursor was not issued by this API",
				Fields: []FieldError{{Field: "cursor", Message: "unknown cursor"}}}
		}
		start = i + 1
	}
	end := min(start+limit, len(sessions))
	list := api.SessionList{Items: make([]api.Session, 0, end-start)}
	for _, s := range sessions[start:end] {
		list.Items = append(list.Items, sessionJSON(s, p))
	}
	if end < len(sessions) {
		next := encodeCursor(sessions[end-1].ID.String())
		list.NextCursor = &next
	}
	return api.ListSessions200JSONResponse(list), nil
}

// GetSession answers one of the caller's sessions; another user's is 404.
func (h *strictAPI) GetSession(ctx context.Context, req api.GetSessionRequestObject) (api.GetSessionResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	s, err := h.s.identity.Session(ctx, p, req.Id)
	if err != nil {
		return nil, err
	}
	return api.GetSession200JSONResponse(sessionJSON(s, p)), nil
}

// RevokeSession ends one of the caller's sessions; another user's is 404.
func (h *strictAPI) RevokeSession(ctx context.Context, req api.RevokeSessionRequestObject) (api.RevokeSessionResponseObject, error) {
	if err := h.revoke(ctx, func(p commands.Principal) uuid.UUID { return req.Id }); err != nil {
		return nil, err
	}
	return api.RevokeSession204Response{}, nil
}

// Logout ends the session of the token the request carries.
func (h *strictAPI) Logout(ctx context.Context, _ api.LogoutRequestObject) (api.LogoutResponseObject, error) {
	if err := h.revoke(ctx, func(p commands.Principal) uuid.UUID { return p.SessionID }); err != nil {
		return nil, err
	}
	return api.Logout204Response{}, nil
}

// RevokeOtherSessions ends every session of the caller but this one.
func (h *strictAPI) RevokeOtherSessions(ctx context.Context, _ api.RevokeOtherSessionsRequestObject) (api.RevokeOtherSessionsResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.s.identity.RevokeOtherSessions(ctx, p, requestContextOf(ctx)); err != nil {
		return nil, err
	}
	return api.RevokeOtherSessions204Response{}, nil
}

// revoke ends the caller's session that which picks.
func (h *strictAPI) revoke(ctx context.Context, which func(commands.Principal) uuid.UUID) error {
	p, err := callerOf(ctx)
	if err != nil {
		return err
	}
	return h.s.identity.RevokeSession(ctx, p, which(p), requestContextOf(ctx))
}

// tokensJSON renders what login and refresh answer.
func tokensJSON(t identity.Tokens) api.Tokens {
	return api.Tokens{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		TokenType:    api.TokensTokenTypeBearer,
		ExpiresIn:    int(t.ExpiresIn.Seconds()),
		SessionId:    t.SessionID,
	}
}

// sessionJSON renders a session; current is recomputed from the caller's
// token so it is right whichever session the service thinks is current.
func sessionJSON(s identity.SessionView, p commands.Principal) api.Session {
	return api.Session{
		Id:           s.ID,
		Device:       s.Device,
		Ip:           s.IP,
		UserAgent:    s.UserAgent,
		CreatedAt:    s.CreatedAt.UTC(),
		LastActiveAt: s.LastActive.UTC(),
		ExpiresAt:    s.ExpiresAt.UTC(),
		Current:      s.Current || s.ID == p.SessionID,
		Status:       s.Status,
	}
}
