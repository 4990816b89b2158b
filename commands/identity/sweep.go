package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/dashtam/dashtam/aggregates/user"
)

// Retention of the rows Sweep deletes.
const (
	// TokenRetention is how long a secret_tokens row outlives its expiry or
	// its spending. Nothing accepts such a token any more; the margin only
	// keeps the sweep clear of a request that read the row a moment before.
	TokenRetention = 24 * time.Hour
	// SessionRetention is how long an ended or expired session stays
	// readable through GET /sessions/{id}.
	SessionRetention = 30 * 24 * time.Hour
	// sweepBatch bounds the rows one DELETE removes, so a large backlog
	// never holds its locks for long.
	sweepBatch = 1000
)

// sweepTokens selects secret_tokens rows nothing will ever look up again:
//   - expired: every lookup refuses an expired token before anything else,
//     reuse detection included ($2 is now less TokenRetention);
//   - spent verification and reset tokens: lookups skip spent rows;
//   - spent refresh tokens once their session has ended or expired. While
//     the session is active and unexpired a spent token must stay, as
//     presenting it again is how reuse is detected and the session revoked;
//   - every token of a session Sweep is about to delete ($3 is now less
//     SessionRetention), since each row references its session.
//
// $4 is the batch size.
const sweepTokens = `DELETE FROM secret_tokens WHERE ctid IN (
	SELECT t.ctid FROM secret_tokens t LEFT JOIN auth_sessions s ON s.id = t.session_id
	WHERE t.expires_at < $2
	   OR (t.used_at < $2 AND (t.kind <> 'refresh' OR s.status <> 'active' OR s.expires_at <= $1))
	   OR s.ended_at < $3 OR s.expires_at < $3
	LIMIT $4)`

// sweepSessions selects sessions that ended or expired more than
// SessionRetention ago ($1) and no token references any more: GET /sessions
// lists only active ones, and GET /sessions/{id} answers 404 for them from
// then on. $2 is the batch size.
const sweepSessions = `DELETE FROM auth_sessions WHERE ctid IN (
	SELECT s.ctid FROM auth_sessions s
	WHERE (s.ended_at < $1 OR s.expires_at < $1)
	  AND NOT EXISTS (SELECT 1 FROM secret_tokens t WHERE t.session_id = s.id)
	LIMIT $2)`

// sweepThrottle selects lockout rows of unknown login names that can no
// longer change an answer: the lockout is over and the last failure is
// older than user.FailureWindow ($1 is now less the window; a lockout
// lasts less than the window), so it no longer counts. $2 is the batch size.
const sweepThrottle = `DELETE FROM login_throttle WHERE ctid IN (
	SELECT ctid FROM login_throttle
	WHERE last_failure_at IS NULL OR last_failure_at < $1
	LIMIT $2)`

// Sweep deletes the security rows that can never matter again as of now —
// dead secret_tokens rows after TokenRetention, ended or expired
// auth_sessions rows after SessionRetention — and returns how many it
// deleted. Nothing auditable is lost: these tables are derived state, and
// the event log, which Sweep never touches, remains the audit trail of every
// login, refresh, reuse and revocation. It deletes in batches of at most
// sweepBatch rows, each its own statement, until none is left; a server calls it
// periodically. It returns the database's error, with what was deleted
// before it.
func (h *Handler) Sweep(ctx context.Context, now time.Time) (deleted int64, err error) {
	now = now.UTC()
	tokensBefore, sessionsBefore := now.Add(-TokenRetention), now.Add(-SessionRetention)
	// Tokens first: a session can only go once no token references it.
	n, err := h.sweepBatches(ctx, sweepTokens, now, tokensBefore, sessionsBefore, sweepBatch)
	deleted += n
	if err != nil {
		return deleted, fmt.Errorf("sweep secret tokens: %w", err)
	}
	n, err = h.sweepBatches(ctx, sweepSessions, sessionsBefore, sweepBatch)
	deleted += n
	if err != nil {
		return deleted, fmt.Errorf("sweep sessions: %w", err)
	}
	n, err = h.sweepBatches(ctx, sweepThrottle, now.Add(-user.FailureWindow), sweepBatch)
	deleted += n
	if err != nil {
		return deleted, fmt.Errorf("sweep login throttle: %w", err)
	}
	return deleted, nil
}

// sweepBatches runs the bounded DELETE query until a batch comes up short.
func (h *Handler) sweepBatches(ctx context.Context, query string, args ...any) (int64, error) {
	var deleted int64
	for {
		tag, err := h.pool.Exec(ctx, query, args...)
		if err != nil {
			return deleted, err
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < sweepBatch {
			return deleted, nil
		}
	}
}
