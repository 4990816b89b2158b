package web

import (
	"context"

	"github.com/dashtam/dashtam/web/api"
)

// EraseCurrentUser erases the caller once their password checks out.
func (h *strictAPI) EraseCurrentUser(ctx context.Context, req api.EraseCurrentUserRequestObject) (api.EraseCurrentUserResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.s.identity.EraseSelf(ctx, p, req.Body.Password, requestContextOf(ctx)); err != nil {
		return nil, err
	}
	return api.EraseCurrentUser204Response{}, nil
}

// EraseUser erases a user at an administrator's request.
func (h *strictAPI) EraseUser(ctx context.Context, req api.EraseUserRequestObject) (api.EraseUserResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.s.identity.EraseUser(ctx, p, req.Id, requestContextOf(ctx)); err != nil {
		return nil, err
	}
	return api.EraseUser204Response{}, nil
}
