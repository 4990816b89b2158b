package web

import (
	"context"
	"errors"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/web/api"
)

// RequestPasswordReset answers 202 whether or not the email exists and
// whether or not its hourly allowance is spent: any other answer would let
// a caller test which emails are registered.
func (h *strictAPI) RequestPasswordReset(ctx context.Context, req api.RequestPasswordResetRequestObject) (api.RequestPasswordResetResponseObject, error) {
	err := h.s.identity.RequestPasswordReset(ctx, req.Body.Email, requestContextOf(ctx))
	if err != nil && !errors.Is(err, user.ErrTooManyResets) {
		return nil, err
	}
	return api.RequestPasswordReset202Response{}, nil
}

// ResetPassword sets a new password with a reset token.
func (h *strictAPI) ResetPassword(ctx context.Context, req api.ResetPasswordRequestObject) (api.ResetPasswordResponseObject, error) {
	if err := h.s.identity.ResetPassword(ctx, req.Body.Token, req.Body.Password, requestContextOf(ctx)); err != nil {
		return nil, err
	}
	return api.ResetPassword204Response{}, nil
}
