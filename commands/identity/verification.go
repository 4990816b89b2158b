package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// RequestEmailVerification mails a new verification link if the email
// belongs to an unverified user who has not asked too often; it answers nil
// either way, so the endpoint reveals nothing about which emails exist or
// are verified. Earlier links stay valid. As for a password reset, it only
// enqueues the request; a background job decides it. See Service.
func (h *Handler) RequestEmailVerification(ctx context.Context, email string, rc commands.RequestContext) error {
	if err := h.enqueueAddressRequest(ctx, "verify", email, rc); err != nil {
		return fmt.Errorf("request email verification: %w", err)
	}
	return nil
}

// requestEmailVerification decides a verification request, in its job.
func (h *Handler) requestEmailVerification(ctx context.Context, email string, rc commands.RequestContext) error {
	userID, _, found, err := h.credentials(ctx, email)
	if err != nil {
		return fmt.Errorf("request email verification: %w", err)
	}
	if !found {
		h.log.InfoContext(ctx, "email verification for unknown email", "trace_id", rc.TraceID)
		return nil
	}
	requestID, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("request email verification: new request id: %w", err)
	}
	token, digest, err := h.secrets.New()
	if err != nil {
		return fmt.Errorf("request email verification: new token: %w", err)
	}
	now := h.clock()
	ctx = commands.WithMetadata(ctx, userID, commands.ActorAnonymous, "request email verification", rc)
	err = h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.RequestVerification(requestID, now)
		if err != nil {
			return decision{}, err
		}
		if err := insertRequestToken(ctx, tx, digest, "verify", userID, requestID, now.Add(user.VerificationTTL)); err != nil {
			return decision{}, err
		}
		if err := h.enqueueLinkMail(ctx, tx, userID, verifyMail, token, rc); err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	switch {
	case errors.Is(err, user.ErrAlreadyVerified):
		h.log.InfoContext(ctx, "email verification refused: already verified", "user_id", userID, "trace_id", rc.TraceID)
		return nil
	case errors.Is(err, user.ErrTooManyVerificationRequests):
		h.log.InfoContext(ctx, "email verification refused: too many requests", "user_id", userID, "trace_id", rc.TraceID)
		return nil
	case err != nil:
		return fmt.Errorf("request email verification: %w", err)
	}
	return nil
}
