package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
)

// Login checks credentials and opens a session; see Service.
func (h *Handler) Login(ctx context.Context, in LoginInput) (Tokens, error) {
	userID, hash, found, err := h.credentials(ctx, in.Email)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	if !found {
		// Spend the work of a real check so that timing does not tell an
		// unknown email from a wrong password. There is no stream to record
		// the attempt on, and the address is not logged: it may be a
		// password typed into the wrong field.
		h.hasher.VerifyDummy(in.Password)
		h.log.InfoContext(ctx, "login refused: unknown email", "trace_id", in.TraceID)
		return Tokens{}, ErrInvalidCredentials
	}
	matches, needsRehash, err := h.hasher.Verify(in.Password, hash)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: verify password of user %s: %w", userID, err)
	}
	var newHash string
	if matches && needsRehash {
		if newHash, err = h.hasher.Hash(in.Password); err != nil {
			return Tokens{}, fmt.Errorf("login: rehash password: %w", err)
		}
	}
	sessionID, err := uuid.NewV7()
	if err != nil {
		return Tokens{}, fmt.Errorf("login: new session id: %w", err)
	}
	refresh, digest, err := h.secrets.New()
	if err != nil {
		return Tokens{}, fmt.Errorf("login: new refresh token: %w", err)
	}
	now := h.clock()
	ctx = withMetadata(ctx, userID, actorAnonymous, "login", in.RequestContext)
	var issue issued
	err = h.update(ctx, userID, func(ctx context.Context, tx pgx.Tx, u *user.User) (decision, error) {
		events, refusal := u.Login(user.LoginAttempt{
			SessionID:       sessionID,
			PasswordMatches: matches,
			IP:              ipString(in.RequestContext),
			UserAgent:       in.UserAgent,
			Device:          Device(in.UserAgent),
			At:              now,
			ExpiresAt:       now.Add(h.refreshTTL),
			SessionLimit:    h.sessionLimit,
		})
		if len(events) == 0 {
			return decision{}, refusal
		}
		if refusal == nil && newHash != "" {
			more, err := u.RecordPasswordRehash(now)
			if err != nil {
				return decision{}, err
			}
			events = append(events, more...)
			if _, err := tx.Exec(ctx, `UPDATE user_credentials SET password_hash = $2, updated_at = $3 WHERE user_id = $1`,
				userID, newHash, now); err != nil {
				return decision{}, fmt.Errorf("store rehashed password: %w", err)
			}
		}
		if err := applyEvents(ctx, tx, u, events); err != nil {
			return decision{}, err
		}
		if refusal != nil {
			return decision{events: events, refusal: refusal}, nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO secret_tokens (digest, kind, user_id, session_id, generation, expires_at)
			VALUES ($1, 'refresh', $2, $3, 1, $4)`, digest, userID, sessionID, now.Add(h.refreshTTL)); err != nil {
			return decision{}, fmt.Errorf("insert refresh token: %w", err)
		}
		var err error
		issue, err = sessionIssue(ctx, tx, u, sessionID)
		return decision{events: events}, err
	})
	if err != nil {
		if errors.Is(err, user.ErrInvalidCredentials) {
			h.log.InfoContext(ctx, "login refused: wrong password", "user_id", userID, "trace_id", in.TraceID)
			return Tokens{}, ErrInvalidCredentials
		}
		h.log.InfoContext(ctx, "login refused", "user_id", userID, "trace_id", in.TraceID, "reason", err)
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	return h.tokens(issue, refresh)
}

// credentials finds the user and password hash of an email; found is false
// for an email that is malformed or unknown, which Login treats alike.
func (h *Handler) credentials(ctx context.Context, email string) (userID uuid.UUID, hash string, found bool, err error) {
	n, err := user.NormalizeEmail(email)
	if err != nil {
		return uuid.Nil, "", false, nil
	}
	err = h.pool.QueryRow(ctx, `SELECT c.user_id, c.password_hash FROM user_emails e
		JOIN user_credentials c ON c.user_id = e.user_id WHERE e.email = $1`, n).Scan(&userID, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, "", false, nil
	}
	if err != nil {
		return uuid.Nil, "", false, fmt.Errorf("find credentials: %w", err)
	}
	return userID, hash, true, nil
}

// issued is what an access token for a session says, read in the
// transaction that opened or refreshed it.
type issued struct {
	userID, sessionID uuid.UUID
	roles             []user.Role
	version           int64
}

// sessionIssue reads the token version a session's new tokens carry: the
// user's token version plus the global one, so that raising either leaves
// every earlier token one or more versions behind.
func sessionIssue(ctx context.Context, tx pgx.Tx, u *user.User, sessionID uuid.UUID) (issued, error) {
	var v int64
	if err := tx.QueryRow(ctx, `SELECT token_version + global_version FROM auth_sessions WHERE id = $1`, sessionID).Scan(&v); err != nil {
		return issued{}, fmt.Errorf("read session token version: %w", err)
	}
	return issued{userID: u.ID(), sessionID: sessionID, roles: u.Roles(), version: v}, nil
}

// tokens mints the access token of i and pairs it with the refresh token.
func (h *Handler) tokens(i issued, refresh string) (Tokens, error) {
	access, expires, err := h.access.Issue(commands.AccessClaims{
		Subject:      i.userID,
		SessionID:    i.sessionID,
		Roles:        rolesToStrings(i.roles),
		TokenVersion: i.version,
	})
	if err != nil {
		return Tokens{}, fmt.Errorf("issue access token: %w", err)
	}
	return Tokens{
		AccessToken:  access,
		RefreshToken: refresh,
		TokenType:    "Bearer",
		ExpiresIn:    expires.Sub(h.now()),
		SessionID:    i.sessionID,
	}, nil
}
