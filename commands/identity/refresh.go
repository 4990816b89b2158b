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

// Refresh rotates a refresh token; see Service. A spent generation
// presented again revokes the session (the aggregate's theft detection),
// and so does a session whose tokens predate a user or global token
// rotation by more than the grace period. admit runs once the token's user is
// known and before anything else is written, so a refused refresh (rate
// limited) neither spends the token nor counts as reuse when it is presented
// again — except that a spent token is still detected as reuse when admit
// refuses: theft detection must not wait for a bucket to refill.
func (h *Handler) Refresh(ctx context.Context, refreshToken string, rc commands.RequestContext, admit Admit) (Tokens, error) {
	now := h.clock()
	digest := h.secrets.Digest(refreshToken)
	t, err := readRefreshToken(ctx, h.pool, digest)
	if errors.Is(err, ErrInvalidRefreshToken) {
		return Tokens{}, err
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	userID, sessionID, generation, expires, spent := t.userID, t.sessionID, t.generation, t.expires, t.spent
	live := now.Before(expires)
	ctx = commands.WithMetadata(ctx, userID, commands.ActorAnonymous, "refresh", rc)
	attempt := user.RefreshAttempt{
		SessionID:  sessionID,
		Generation: generation,
		IP:         rc.IPString(),
		UserAgent:  rc.UserAgent,
		At:         now,
		ExpiresAt:  now.Add(h.refreshTTL),
		Grace:      h.grace,
	}
	if admit != nil {
		// Before the expiry check: every presentation of one of the user's
		// tokens counts, expired or spent, as it costs the server the same.
		if err := admit(ctx, userID); err != nil {
			if spent && live {
				h.revokeOnReuse(ctx, userID, attempt, rc)
			}
			return Tokens{}, err
		}
	}
	if !live {
		return Tokens{}, ErrInvalidRefreshToken
	}
	next, nextDigest, err := h.secrets.New()
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh: new refresh token: %w", err)
	}
	var issue issued
	err = h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, refusal := u.Refresh(attempt)
		if refusal == nil {
			ok, err := globalVersionAccepted(ctx, tx, sessionID, now, h.grace)
			if err != nil {
				return decision{}, err
			}
			if !ok {
				events, refusal = u.RevokeForGlobalRotation(sessionID, now)
			}
		}
		if len(events) == 0 {
			return decision{}, refusal
		}
		version, err := applyEventsIssuing(ctx, tx, u, events)
		if err != nil {
			return decision{}, err
		}
		if refusal != nil {
			return decision{Events: events, Refusal: refusal}, nil
		}
		if err := spendToken(ctx, tx, digest, now); err != nil {
			return decision{}, err
		}
		s, _ := u.Session(sessionID)
		if err := insertRefreshToken(ctx, tx, nextDigest, userID, sessionID, s.RefreshGeneration, s.ExpiresAt); err != nil {
			return decision{}, err
		}
		issue = issued{userID: u.ID(), sessionID: sessionID, roles: u.Roles(), version: version}
		return decision{Events: events}, nil
	})
	if err != nil {
		// Every refusal is one answer to the client; the log keeps the reason.
		h.log.InfoContext(ctx, "refresh refused", "user_id", userID, "session_id", sessionID,
			"trace_id", rc.TraceID, "reason", err)
		if errors.Is(err, user.ErrRefreshRefused) {
			return Tokens{}, ErrInvalidRefreshToken
		}
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	return h.tokens(issue, next)
}

// revokeOnReuse records a spent refresh token presented again while the
// refresh itself was refused (rate limited): the aggregate's reuse
// detection revokes the session. Only that decision is applied — anything
// else the aggregate would decide waits until the refresh is admitted — and
// it writes at most once per session, since an ended session records
// nothing more, so skipping the limit here cannot flood the log. Failures
// are logged: the caller answers the refusal either way.
func (h *Handler) revokeOnReuse(ctx context.Context, userID uuid.UUID, attempt user.RefreshAttempt, rc commands.RequestContext) {
	err := h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, refusal := u.Refresh(attempt)
		if !errors.Is(refusal, user.ErrRefreshTokenReused) {
			return decision{}, nil
		}
		return decision{Events: events, Refusal: refusal}, applyEvents(ctx, tx, u, events)
	})
	if err != nil && !errors.Is(err, user.ErrRefreshTokenReused) {
		h.log.ErrorContext(ctx, "reuse of a refresh token while rate limited: revoking failed",
			"user_id", userID, "session_id", attempt.SessionID, "trace_id", rc.TraceID, "error", err)
		return
	}
	if err != nil {
		h.log.InfoContext(ctx, "refresh refused", "user_id", userID, "session_id", attempt.SessionID,
			"trace_id", rc.TraceID, "reason", err)
	}
}
