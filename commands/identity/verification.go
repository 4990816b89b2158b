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
// are verified. Earlier links stay valid. As for a password reset, all the
// work happens after it returns (see Wait). See Service.
func (h *Handler) RequestEmailVerification(ctx context.Context, email string, rc commands.RequestContext) error {
	h.afterAnswer(ctx, rc, "request email verification", func(ctx context.Context) error {
		return h.requestEmailVerification(ctx, email, rc)
	})
	return nil
}

// requestEmailVerification is RequestEmailVerification's work, after the answer.
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
	var to string
	err = h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.RequestVerification(requestID, now)
		if err != nil {
			return decision{}, err
		}
		to = u.Email()
		if err := insertRequestToken(ctx, tx, digest, "verify", userID, requestID, now.Add(user.VerificationTTL)); err != nil {
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
	if err := h.sendLink(ctx, to, rc, verifyMail, token); err != nil {
		return fmt.Errorf("send verification mail to user %s: %w", userID, err)
	}
	return nil
}
