package web

import (
	"context"

	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/web/api"
)

// RegisterUser creates an unverified user; the service mails the link.
func (h *strictAPI) RegisterUser(ctx context.Context, req api.RegisterUserRequestObject) (api.RegisterUserResponseObject, error) {
	v, err := h.s.identity.Register(ctx, identity.RegisterInput{
		Email: req.Body.Email, Password: req.Body.Password, RequestContext: requestContextOf(ctx),
	})
	if err != nil {
		return nil, err
	}
	return api.RegisterUser201JSONResponse(userJSON(v)), nil
}

// GetCurrentUser answers the caller's own user.
func (h *strictAPI) GetCurrentUser(ctx context.Context, _ api.GetCurrentUserRequestObject) (api.GetCurrentUserResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	v, err := h.s.identity.Me(ctx, p)
	if err != nil {
		return nil, err
	}
	return api.GetCurrentUser200JSONResponse(userJSON(v)), nil
}

// VerifyEmail consumes a verification token from the mail.
func (h *strictAPI) VerifyEmail(ctx context.Context, req api.VerifyEmailRequestObject) (api.VerifyEmailResponseObject, error) {
	if err := h.s.identity.VerifyEmail(ctx, req.Body.Token, requestContextOf(ctx)); err != nil {
		return nil, err
	}
	return api.VerifyEmail204Response{}, nil
}

// userJSON renders a user; UserView holds no secret, and only the fields
// named here ever reach a client.
func userJSON(v identity.UserView) api.User {
	roles := make([]api.Role, len(v.Roles))
	for i, r := range v.Roles {
		roles[i] = api.Role(r)
	}
	return api.User{
		Id:            v.ID,
		Email:         v.Email,
		EmailVerified: v.Verified,
		Roles:         roles,
		CreatedAt:     v.CreatedAt.UTC(),
	}
}
