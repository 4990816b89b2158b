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

// Me returns the principal's own user; see Service.
func (h *Handler) Me(ctx context.Context, p Principal) (UserView, error) {
	l, err := h.load(ctx, p.UserID)
	if err != nil {
		return UserView{}, fmt.Errorf("me: %w", err)
	}
	if !l.user.Registered() {
		return UserView{}, ErrNotFound
	}
	return userView(l.user), nil
}

// sessionColumns is what scanSession reads.
const sessionColumns = `id, device, ip, user_agent, created_at, last_active_at, expires_at, status`

func scanSession(row pgx.Row, p Principal, now time.Time) (SessionView, error) {
	var v SessionView
	if err := row.Scan(&v.ID, &v.Device, &v.IP, &v.UserAgent, &v.CreatedAt, &v.LastActive, &v.ExpiresAt, &v.Status); err != nil {
		return SessionView{}, err
	}
	if v.Status == string(user.SessionActive) && !now.Before(v.ExpiresAt) {
		v.Status = string(user.SessionExpired)
	}
	v.Current = v.ID == p.SessionID
	return v, nil
}

// Sessions lists the principal's active sessions, newest first; ended ones
// are left out, as a list of devices signed in should be. See Service.
func (h *Handler) Sessions(ctx context.Context, p Principal) ([]SessionView, error) {
	now := h.clock()
	rows, err := h.pool.Query(ctx, `SELECT `+sessionColumns+` FROM auth_sessions
		WHERE user_id = $1 AND status = 'active' AND expires_at > $2 ORDER BY created_at DESC, id DESC`, p.UserID, now)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	out := []SessionView{}
	for rows.Next() {
		v, err := scanSession(rows, p, now)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// Session returns one of the principal's sessions, ended ones included;
// another user's session is ErrNotFound, exactly as a missing one. See Service.
func (h *Handler) Session(ctx context.Context, p Principal, sessionID uuid.UUID) (SessionView, error) {
	v, err := scanSession(h.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM auth_sessions
		WHERE id = $1 AND user_id = $2`, sessionID, p.UserID), p, h.clock())
	if errors.Is(err, pgx.ErrNoRows) {
		return SessionView{}, ErrNotFound
	}
	if err != nil {
		return SessionView{}, fmt.Errorf("get session: %w", err)
	}
	return v, nil
}

// RevokeSession ends one of the principal's sessions: the current one is a
// logout, another one a revocation. See Service.
func (h *Handler) RevokeSession(ctx context.Context, p Principal, sessionID uuid.UUID, rc RequestContext) error {
	now := h.clock()
	command := "revoke session"
	if sessionID == p.SessionID {
		command = "logout"
	}
	ctx = withMetadata(ctx, p.UserID, actorUser(p.UserID), command, rc)
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error) {
		decide := u.RevokeSession
		if sessionID == p.SessionID {
			decide = u.Logout
		}
		events, err := decide(sessionID, now)
		if err != nil {
			return decision{}, err
		}
		return decision{events: events}, applyEvents(ctx, tx, u, events)
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
func (h *Handler) RevokeOtherSessions(ctx context.Context, p Principal, rc RequestContext) error {
	now := h.clock()
	ctx = withMetadata(ctx, p.UserID, actorUser(p.UserID), "revoke other sessions", rc)
	err := h.update(ctx, p.UserID, func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error) {
		events, err := u.RevokeOtherSessions(p.SessionID, now)
		if err != nil {
			return decision{}, err
		}
		return decision{events: events}, applyEvents(ctx, tx, u, events)
	})
	if errors.Is(err, user.ErrSessionNotFound) || errors.Is(err, user.ErrSessionNotActive) || errors.Is(err, user.ErrNotRegistered) {
		return ErrSessionRevoked
	}
	if err != nil {
		return fmt.Errorf("revoke other sessions: %w", err)
	}
	return nil
}
