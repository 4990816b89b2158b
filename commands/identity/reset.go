package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// RequestPasswordReset mails a reset link if the email belongs to a user
// who has not asked too often; it answers nil either way, so the endpoint
// reveals nothing about which emails exist. It only enqueues the request
// (AddressRequest): the lookup, the decision and the mail happen in a
// background job, so the answer and its timing are the same for every
// address. See Service.
func (h *Handler) RequestPasswordReset(ctx context.Context, email string, rc commands.RequestContext) error {
	if err := h.enqueueAddressRequest(ctx, "reset", email, rc); err != nil {
		return fmt.Errorf("request password reset: %w", err)
	}
	return nil
}

// requestPasswordReset decides a reset request, in its job.
func (h *Handler) requestPasswordReset(ctx context.Context, email string, rc commands.RequestContext) error {
	userID, _, found, err := h.credentials(ctx, email)
	if err != nil {
		return fmt.Errorf("request password reset: %w", err)
	}
	if !found {
		h.log.InfoContext(ctx, "password reset for unknown email", "trace_id", rc.TraceID)
		return nil
	}
	requestID, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("request password reset: new request id: %w", err)
	}
	token, digest, err := h.secrets.New()
	if err != nil {
		return fmt.Errorf("request password reset: new token: %w", err)
	}
	now := h.clock()
	ctx = commands.WithMetadata(ctx, userID, commands.ActorAnonymous, "request password reset", rc)
	err = h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.RequestPasswordReset(user.ResetRequest{RequestID: requestID, IP: rc.IPString(), UserAgent: rc.UserAgent, At: now})
		if err != nil {
			return decision{}, err
		}
		if err := insertRequestToken(ctx, tx, digest, "reset", userID, requestID, now.Add(user.PasswordResetTTL)); err != nil {
			return decision{}, err
		}
		if err := h.enqueueLinkMail(ctx, tx, userID, resetMail, token, rc); err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	if errors.Is(err, user.ErrTooManyResets) {
		h.log.InfoContext(ctx, "password reset refused: too many requests", "user_id", userID, "trace_id", rc.TraceID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("request password reset: %w", err)
	}
	return nil
}

// ResetPassword sets a new password through a reset token and revokes
// every session, in one transaction with the events; see Service.
func (h *Handler) ResetPassword(ctx context.Context, token, newPassword string, rc commands.RequestContext) error {
	now := h.clock()
	t, digest, err := h.findRequestToken(ctx, "reset", token, now)
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	// The policy before the token is spent, so a rejected password leaves
	// the link usable for a better one.
	if err := h.policy.Check(newPassword); err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	hash, err := h.hasher.Hash(newPassword)
	if err != nil {
		return fmt.Errorf("reset password: hash: %w", err)
	}
	ctx = commands.WithMetadata(ctx, t.userID, commands.ActorAnonymous, "reset password", rc)
	err = h.update(ctx, t.userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.CompletePasswordReset(t.requestID, now)
		if err != nil {
			return decision{}, ErrTokenNotFound
		}
		if err := spendTokenAndKind(ctx, tx, digest, t.userID, "reset", now); err != nil {
			return decision{}, err
		}
		// A reset of an unverified user verifies the address too, which
		// spends the verification links like a verification would.
		if slices.ContainsFunc(events, func(e user.Event) bool { _, ok := e.(user.UserEmailVerified); return ok }) {
			if err := spendKind(ctx, tx, t.userID, "verify", now); err != nil {
				return decision{}, err
			}
		}
		if err := storePasswordHash(ctx, tx, t.userID, hash, now); err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	return nil
}
