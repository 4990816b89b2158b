package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/user"
)

// applyEvents folds events into u and writes the security rows they
// change, in tx, so that the tables say what the log says the moment both
// commit. Rows that need a secret the events must not carry (a password
// hash, a token digest) are written by the use case itself.
func applyEvents(ctx context.Context, tx pgx.Tx, u *user.User, events []user.Event) error {
	_, err := applyEventsIssuing(ctx, tx, u, events)
	return err
}

// applyEventsIssuing is applyEvents that also returns the token version a
// session opened or refreshed by events has its new tokens carry (zero if
// none was): the user's token version plus the global one as written into
// its row, so that raising either leaves every earlier token one or more
// versions behind. It comes back from the write, not a second read.
func applyEventsIssuing(ctx context.Context, tx pgx.Tx, u *user.User, events []user.Event) (version int64, err error) {
	u.Apply(events...)
	userRow := false
	for _, e := range events {
		switch e := e.(type) {
		case user.UserLoginSucceeded:
			err = tx.QueryRow(ctx, `INSERT INTO auth_sessions (id, user_id, status, token_version, global_version,
				refresh_generation, created_at, last_active_at, expires_at, ip, last_ip, user_agent, device)
				SELECT $1, $2, 'active', $3, global_token_version, 1, $4, $4, $5, $6, $6, $7, $8
				  FROM security_settings WHERE id = 1
				RETURNING token_version + global_version`,
				e.SessionID, e.UserID, e.TokenVersion, e.At, e.ExpiresAt, e.IP, e.UserAgent, e.Device).Scan(&version)
		case user.UserTokenRefreshed:
			err = tx.QueryRow(ctx, `UPDATE auth_sessions SET refresh_generation = $2, token_version = $3,
				global_version = (SELECT global_token_version FROM security_settings WHERE id = 1),
				last_active_at = $4, expires_at = $5, last_ip = $6
				WHERE id = $1
				RETURNING token_version + global_version`,
				e.SessionID, e.RefreshGeneration, e.TokenVersion, e.At, e.ExpiresAt, e.IP).Scan(&version)
		case user.UserLoggedOut:
			err = endSession(ctx, tx, e.SessionID, "logged_out", e.At)
		case user.UserSessionRevoked:
			err = endSession(ctx, tx, e.SessionID, "revoked", e.At)
		case user.UserSessionEvicted:
			err = endSession(ctx, tx, e.SessionID, "evicted", e.At)
		case user.UserRoleGranted, user.UserRoleRevoked, user.UserTokensRotated:
			userRow = true
		}
		if err != nil {
			return 0, fmt.Errorf("apply %s: %w", e.EventType(), err)
		}
	}
	if userRow {
		var rotatedAt any
		if t := u.TokensRotatedAt(); !t.IsZero() {
			rotatedAt = t
		}
		if _, err := tx.Exec(ctx, `UPDATE user_credentials SET roles = $2, token_version = $3, tokens_rotated_at = $4
			WHERE user_id = $1`, u.ID(), rolesToStrings(u.Roles()), u.TokenVersion(), rotatedAt); err != nil {
			return 0, fmt.Errorf("update user security row: %w", err)
		}
	}
	return version, nil
}

// endSession records that a session ended; a session that already ended keeps its first end.
func endSession(ctx context.Context, tx pgx.Tx, id uuid.UUID, status string, at time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE auth_sessions SET status = $2, ended_at = $3 WHERE id = $1 AND status = 'active'`, id, status, at)
	return err
}
