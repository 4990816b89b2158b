package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// RotateAllTokens raises the global minimum token version and records it
// on the acting administrator's stream, in one transaction. Permission is
// checked by web, where every route declares it. See Service.
func (h *Handler) RotateAllTokens(ctx context.Context, p commands.Principal, reason string, rc commands.RequestContext) (SecurityConfig, error) {
	now := h.clock()
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "rotate all tokens", rc)
	var version int64
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		var err error
		if version, err = raiseGlobalTokenVersion(ctx, tx, p.UserID, now); err != nil {
			return decision{}, err
		}
		events, err := u.RecordGlobalRotation(version, reason, now)
		if err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	h.cache.flushKeep() // every user's minimum version may have changed, even if the commit failed
	if errors.Is(err, user.ErrNotRegistered) {
		return SecurityConfig{}, ErrNotFound
	}
	if err != nil {
		return SecurityConfig{}, fmt.Errorf("rotate all tokens: %w", err)
	}
	return h.securityConfig(version, &now), nil
}

// RotateUserTokens raises one user's minimum token version; the event is
// on that user's stream, with the administrator as actor. See Service.
func (h *Handler) RotateUserTokens(ctx context.Context, p commands.Principal, userID uuid.UUID, reason string, rc commands.RequestContext) error {
	now := h.clock()
	ctx = commands.WithMetadata(ctx, userID, commands.ActorUser(p.UserID), "rotate user tokens", rc)
	err := h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.RotateTokens(reason, now)
		if err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	if errors.Is(err, user.ErrNotRegistered) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("rotate user tokens: %w", err)
	}
	return nil
}

// SecurityConfig reports the token policy and the global version; see Service.
func (h *Handler) SecurityConfig(ctx context.Context) (SecurityConfig, error) {
	version, rotatedAt, err := readSecuritySettings(ctx, h.pool)
	if err != nil {
		return SecurityConfig{}, err
	}
	return h.securityConfig(version, rotatedAt), nil
}

// securityConfig is the token policy with the global version and the time
// of the last rotation (nil if there was none).
func (h *Handler) securityConfig(version int64, rotatedAt *time.Time) SecurityConfig {
	c := SecurityConfig{
		AccessTokenTTL:      h.accessTTL,
		RefreshTokenTTL:     h.refreshTTL,
		RotationGracePeriod: h.grace,
		SessionLimit:        h.sessionLimit,
		GlobalTokenVersion:  version,
	}
	if rotatedAt != nil {
		t := rotatedAt.UTC()
		c.LastRotatedAt = &t
	}
	return c
}

// SetRoles replaces a user's roles; tokens already issued carry the new
// roles at once, because Authenticate reads them from the database. See Service.
func (h *Handler) SetRoles(ctx context.Context, p commands.Principal, userID uuid.UUID, roles []user.Role, rc commands.RequestContext) (UserView, error) {
	now := h.clock()
	ctx = commands.WithMetadata(ctx, userID, commands.ActorUser(p.UserID), "set roles", rc)
	var view UserView
	err := h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.SetRoles(roles, now)
		if err != nil {
			return decision{}, err
		}
		if err := applyEvents(ctx, tx, u, events); err != nil {
			return decision{}, err
		}
		view = userView(u)
		return decision{Events: events}, nil
	})
	if errors.Is(err, user.ErrNotRegistered) {
		return UserView{}, ErrNotFound
	}
	if err != nil {
		return UserView{}, fmt.Errorf("set roles: %w", err)
	}
	return view, nil
}

// RecordAccessDenied records a refused request on the principal's stream.
// The caller names the method, route and permission of d; the session, the
// address and the time come from p, rc and the clock. See Service.
func (h *Handler) RecordAccessDenied(ctx context.Context, p commands.Principal, d user.AccessDenial, rc commands.RequestContext) error {
	d.SessionID, d.IP, d.At = p.SessionID, rc.IPString(), h.clock()
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "access denied", rc)
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.RecordAccessDenied(d)
		if err != nil {
			return decision{}, err
		}
		return decision{Events: events}, nil
	})
	if errors.Is(err, user.ErrNotRegistered) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("record access denied: %w", err)
	}
	return nil
}
