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

// Me returns the principal's own user; see Service.
func (h *Handler) Me(ctx context.Context, p commands.Principal) (UserView, error) {
	l, err := h.users.Load(ctx, h.pool, p.UserID)
	if err != nil {
		return UserView{}, fmt.Errorf("me: %w", err)
	}
	if !l.State.Registered() {
		return UserView{}, ErrNotFound
	}
	v := userView(l.State)
	// The roles every permission check used for this request (read by
	// Authenticate from the credentials row), not the stream's: the two are
	// written in one transaction, but a reply must never show roles other
	// than those it was authorised with.
	v.Roles = slices.Clone(p.Roles)
	return v, nil
}

// Sessions lists the principal's active sessions, newest first; ended ones
// are left out, as a list of devices signed in should be. See Service.
func (h *Handler) Sessions(ctx context.Context, p commands.Principal) ([]SessionView, error) {
	return readActiveSessions(ctx, h.pool, p, h.clock())
}

// Session returns one of the principal's sessions, ended ones included;
// another user's session is ErrNotFound, exactly as a missing one. See Service.
func (h *Handler) Session(ctx context.Context, p commands.Principal, sessionID uuid.UUID) (SessionView, error) {
	return readSession(ctx, h.pool, p, sessionID, h.clock())
}

// RevokeSession ends one of the principal's sessions: the current one is a
// logout, another one a revocation. See Service.
func (h *Handler) RevokeSession(ctx context.Context, p commands.Principal, sessionID uuid.UUID, rc commands.RequestContext) error {
	now := h.clock()
	command := "revoke session"
	if sessionID == p.SessionID {
		command = "logout"
	}
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), command, rc)
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		decide := u.RevokeSession
		if sessionID == p.SessionID {
			decide = u.Logout
		}
		events, err := decide(sessionID, now)
		if err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	if errors.Is(err, user.ErrSessionNotFound) || errors.Is(err, user.ErrSessionNotActive) || errors.Is(err, user.ErrNotRegistered) {
		// Another user's session is not among this user's: 404 either way.
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	return nil
}

// RevokeOtherSessions ends every session of the principal but the current
// one; it returns ErrSessionRevoked when the current one has ended. See Service.
func (h *Handler) RevokeOtherSessions(ctx context.Context, p commands.Principal, rc commands.RequestContext) error {
	now := h.clock()
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "revoke other sessions", rc)
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.RevokeOtherSessions(p.SessionID, now)
		if err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	if errors.Is(err, user.ErrSessionNotFound) || errors.Is(err, user.ErrSessionNotActive) || errors.Is(err, user.ErrNotRegistered) {
		return ErrSessionRevoked
	}
	if err != nil {
		return fmt.Errorf("revoke other sessions: %w", err)
	}
	return nil
}
