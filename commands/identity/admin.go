package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/user"
)

// RotateAllTokens raises the global minimum token version and records it
// on the acting administrator's stream, in one transaction. Permission is
// checked by web, where every route declares it. See Service.
func (h *Handler) RotateAllTokens(ctx context.Context, p Principal, reason string, rc RequestContext) (SecurityConfig, error) {
	now := h.clock()
	ctx = withMetadata(ctx, p.UserID, actorUser(p.UserID), "rotate all tokens", rc)
	var version int64
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error) {
		if err := tx.QueryRow(ctx, `UPDATE security_settings
			SET global_token_version = global_token_version + 1, rotated_at = $1, rotated_by = $2
			WHERE id = 1 RETURNING global_token_version`, now, p.UserID).Scan(&version); err != nil {
			return decision{}, fmt.Errorf("raise global token version: %w", err)
		}
		events, err := u.RecordGlobalRotation(version, reason, now)
		if err != nil {
			return decision{}, err
		}
		return decision{events: events}, applyEvents(ctx, tx, u, events)
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
func (h *Handler) RotateUserTokens(ctx context.Context, p Principal, userID uuid.UUID, reason string, rc RequestContext) error {
	now := h.clock()
	ctx = withMetadata(ctx, userID, actorUser(p.UserID), "rotate user tokens", rc)
	err := h.update(ctx, userID, func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error) {
		events, err := u.RotateTokens(reason, now)
		if err != nil {
			return decision{}, err
		}
		return decision{events: events}, applyEvents(ctx, tx, u, events)
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
	var (
		version   int64
		rotatedAt *time.Time
	)
	if err := h.pool.QueryRow(ctx, `SELECT global_token_version, rotated_at FROM security_settings WHERE id = 1`).
		Scan(&version, &rotatedAt); err != nil {
		return SecurityConfig{}, fmt.Errorf("read security settings: %w", err)
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
func (h *Handler) SetRoles(ctx context.Context, p Principal, userID uuid.UUID, roles []user.Role, rc RequestContext) (UserView, error) {
	now := h.clock()
	ctx = withMetadata(ctx, userID, actorUser(p.UserID), "set roles", rc)
	var view UserView
	err := h.update(ctx, userID, func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error) {
		events, err := u.SetRoles(roles, now)
		if err != nil {
			return decision{}, err
		}
		if err := applyEvents(ctx, tx, u, events); err != nil {
			return decision{}, err
		}
		view = userView(u)
		return decision{events: events}, nil
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
func (h *Handler) RecordAccessDenied(ctx context.Context, p Principal, d user.AccessDenial, rc RequestContext) error {
	d.SessionID, d.IP, d.At = p.SessionID, ipString(rc), h.clock()
	ctx = withMetadata(ctx, p.UserID, actorUser(p.UserID), "access denied", rc)
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error) {
		events, err := u.RecordAccessDenied(d)
		if err != nil {
			return decision{}, err
		}
		return decision{events: events}, nil
	})
	if errors.Is(err, user.ErrNotRegistered) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("record access denied: %w", err)
	}
	return nil
}
