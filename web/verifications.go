package web

import (
	"context"
	"errors"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/web/api"
)

// RequestEmailVerification answers 202 whether the email is unknown,
// unverified, already verified or over its hourly allowance: any other
// answer would let a caller test which emails are registered or verified.
func (h *strictAPI) RequestEmailVerification(ctx context.Context, req api.RequestEmailVerificationRequestObject) (api.RequestEmailVerificationResponseObject, error) {
	err := h.s.identity.RequestEmailVerification(ctx, req.Body.Email, requestContextOf(ctx))
	if err != nil && !errors.Is(err, user.ErrTooManyVerificationRequests) && !errors.Is(err, user.ErrAlreadyVerified) {
		return nil, err
	}
	return api.RequestEmailVerification202Response{}, nil
}
