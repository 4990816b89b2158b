package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
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

// querier reads rows: the pool, or a unit of work's transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// insertUser stores a new user's email and credentials; a taken email is
// ErrEmailTaken, decided by the primary key inside the transaction that
// would append, so a concurrent duplicate leaves no event behind.
func insertUser(ctx context.Context, tx pgx.Tx, email string, userID uuid.UUID, hash string, u *user.User, now time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO user_emails (email, user_id) VALUES ($1, $2)`, email, userID); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "user_emails_pkey" {
			return ErrEmailTaken
		}
		return fmt.Errorf("insert email: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO user_credentials (user_id, password_hash, roles, token_version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5)`, userID, hash, rolesToStrings(u.Roles()), u.TokenVersion(), now); err != nil {
		return fmt.Errorf("insert credentials: %w", err)
	}
	return nil
}

// readCredentials finds the user and password hash of a normalised email;
// found is false for an unknown one.
func readCredentials(ctx context.Context, q querier, email string) (userID uuid.UUID, hash string, found bool, err error) {
	err = q.QueryRow(ctx, `SELECT c.user_id, c.password_hash FROM user_emails e
		JOIN user_credentials c ON c.user_id = e.user_id WHERE e.email = $1`, email).Scan(&userID, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, "", false, nil
	}
	if err != nil {
		return uuid.Nil, "", false, fmt.Errorf("find credentials: %w", err)
	}
	return userID, hash, true, nil
}

// lockPasswordHash returns the user's current password hash and locks the
// credentials row until tx ends. FOR NO KEY UPDATE rather than FOR SHARE:
// two logins that both rehash would otherwise deadlock upgrading their
// shared locks. A reset's UPDATE waits for the lock holder to end.
func lockPasswordHash(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (string, error) {
	var current string
	if err := tx.QueryRow(ctx, `SELECT password_hash FROM user_credentials WHERE user_id = $1 FOR NO KEY UPDATE`,
		userID).Scan(&current); err != nil {
		return "", fmt.Errorf("lock credentials: %w", err)
	}
	return current, nil
}

// replacePasswordHash stores newHash in place of oldHash and reports
// whether oldHash was still the stored one: a rehash must never replace any
// hash but the one it was verified against.
func replacePasswordHash(ctx context.Context, tx pgx.Tx, userID uuid.UUID, oldHash, newHash string, now time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE user_credentials SET password_hash = $2, updated_at = $3
		WHERE user_id = $1 AND password_hash = $4`, userID, newHash, now, oldHash)
	if err != nil {
		return false, fmt.Errorf("store rehashed password: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// storePasswordHash sets the user's password hash, whatever it was.
func storePasswordHash(ctx context.Context, tx pgx.Tx, userID uuid.UUID, hash string, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE user_credentials SET password_hash = $2, updated_at = $3 WHERE user_id = $1`,
		userID, hash, now); err != nil {
		return fmt.Errorf("store password: %w", err)
	}
	return nil
}

// refreshToken is a stored refresh token, found by digest.
type refreshToken struct {
	userID, sessionID uuid.UUID
	generation        int64
	expires           time.Time
	spent             bool
}

// readRefreshToken finds the refresh token with digest, spent or not, or
// ErrInvalidRefreshToken.
func readRefreshToken(ctx context.Context, q querier, digest []byte) (refreshToken, error) {
	var t refreshToken
	err := q.QueryRow(ctx, `SELECT user_id, session_id, generation, expires_at, used_at IS NOT NULL FROM secret_tokens
		WHERE digest = $1 AND kind = 'refresh'`, digest).Scan(&t.userID, &t.sessionID, &t.generation, &t.expires, &t.spent)
	if errors.Is(err, pgx.ErrNoRows) {
		return refreshToken{}, ErrInvalidRefreshToken
	}
	if err != nil {
		return refreshToken{}, fmt.Errorf("find refresh token: %w", err)
	}
	return t, nil
}

// globalVersionAccepted reports whether the session's tokens were issued at
// a global token version still accepted at now: the current one, or the one
// just superseded while the rotation's grace lasts — the rule the aggregate
// applies to the user's own version.
func globalVersionAccepted(ctx context.Context, tx pgx.Tx, sessionID uuid.UUID, now time.Time, grace time.Duration) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT s.global_version >= g.global_token_version
			OR (s.global_version = g.global_token_version - 1 AND g.rotated_at > $2)
		FROM auth_sessions s CROSS JOIN security_settings g WHERE s.id = $1 AND g.id = 1`,
		sessionID, now.Add(-grace)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check global token version: %w", err)
	}
	return ok, nil
}

// raiseGlobalTokenVersion raises the deployment-wide token version and
// returns the new one.
func raiseGlobalTokenVersion(ctx context.Context, tx pgx.Tx, by uuid.UUID, now time.Time) (int64, error) {
	var version int64
	if err := tx.QueryRow(ctx, `UPDATE security_settings
		SET global_token_version = global_token_version + 1, rotated_at = $1, rotated_by = $2
		WHERE id = 1 RETURNING global_token_version`, now, by).Scan(&version); err != nil {
		return 0, fmt.Errorf("raise global token version: %w", err)
	}
	return version, nil
}

// readSecuritySettings returns the global token version and the time of the
// last global rotation (nil if there was none).
func readSecuritySettings(ctx context.Context, q querier) (int64, *time.Time, error) {
	var (
		version   int64
		rotatedAt *time.Time
	)
	if err := q.QueryRow(ctx, `SELECT global_token_version, rotated_at FROM security_settings WHERE id = 1`).
		Scan(&version, &rotatedAt); err != nil {
		return 0, nil, fmt.Errorf("read security settings: %w", err)
	}
	return version, rotatedAt, nil
}

// sessionColumns is what scanSession reads.
const sessionColumns = `id, device, ip, user_agent, created_at, last_active_at, expires_at, status`

// readActiveSessions lists the user's active, unexpired sessions, newest first.
func readActiveSessions(ctx context.Context, q querier, p commands.Principal, now time.Time) ([]SessionView, error) {
	rows, err := q.Query(ctx, `SELECT `+sessionColumns+` FROM auth_sessions
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

// readSession returns one of the user's sessions, ended ones included, or
// ErrNotFound (also for another user's session).
func readSession(ctx context.Context, q querier, p commands.Principal, sessionID uuid.UUID, now time.Time) (SessionView, error) {
	v, err := scanSession(q.QueryRow(ctx, `SELECT `+sessionColumns+` FROM auth_sessions
		WHERE id = $1 AND user_id = $2`, sessionID, p.UserID), p, now)
	if errors.Is(err, pgx.ErrNoRows) {
		return SessionView{}, ErrNotFound
	}
	if err != nil {
		return SessionView{}, fmt.Errorf("get session: %w", err)
	}
	return v, nil
}

// scanSession reads one row of sessionColumns as p sees it at now.
func scanSession(row pgx.Row, p commands.Principal, now time.Time) (SessionView, error) {
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

// requestToken is a stored verification or reset token, found by digest.
type requestToken struct {
	userID, requestID uuid.UUID
}

// readRequestToken returns the unspent, unexpired token of kind with
// digest, or ErrTokenNotFound.
func readRequestToken(ctx context.Context, q querier, digest []byte, kind string, now time.Time) (requestToken, error) {
	var t requestToken
	err := q.QueryRow(ctx, `SELECT user_id, request_id FROM secret_tokens
		WHERE digest = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3`, digest, kind, now).Scan(&t.userID, &t.requestID)
	if errors.Is(err, pgx.ErrNoRows) {
		return requestToken{}, ErrTokenNotFound
	}
	if err != nil {
		return requestToken{}, fmt.Errorf("find %s token: %w", kind, err)
	}
	return t, nil
}

// insertRequestToken stores the digest of a verification or reset token.
func insertRequestToken(ctx context.Context, tx pgx.Tx, digest []byte, kind string, userID, requestID uuid.UUID, expires time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO secret_tokens (digest, kind, user_id, request_id, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		digest, kind, userID, requestID, expires)
	if err != nil {
		return fmt.Errorf("insert %s token: %w", kind, err)
	}
	return nil
}

// insertRefreshToken stores the digest of the refresh token of a session's
// generation.
func insertRefreshToken(ctx context.Context, tx pgx.Tx, digest []byte, userID, sessionID uuid.UUID, generation int64, expires time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO secret_tokens (digest, kind, user_id, session_id, generation, expires_at)
		VALUES ($1, 'refresh', $2, $3, $4, $5)`, digest, userID, sessionID, generation, expires)
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

// spendToken marks the token with digest as used, failing with
// errSpentConcurrently when it already was.
func spendToken(ctx context.Context, tx pgx.Tx, digest []byte, at time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE secret_tokens SET used_at = $2 WHERE digest = $1 AND used_at IS NULL`, digest, at)
	if err != nil {
		return fmt.Errorf("spend token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errSpentConcurrently
	}
	return nil
}

// spendTokenAndKind spends the token with digest, as spendToken does, and
// then every other unspent token of kind of the user: completing one
// verification or reset link ends them all (the aggregate's rule), and the
// rows follow.
func spendTokenAndKind(ctx context.Context, tx pgx.Tx, digest []byte, userID uuid.UUID, kind string, at time.Time) error {
	if err := spendToken(ctx, tx, digest, at); err != nil {
		return err
	}
	return spendKind(ctx, tx, userID, kind, at)
}

// spendKind spends every unspent token of kind of the user.
func spendKind(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind string, at time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE secret_tokens SET used_at = $3 WHERE user_id = $1 AND kind = $2 AND used_at IS NULL`,
		userID, kind, at); err != nil {
		return fmt.Errorf("spend %s tokens: %w", kind, err)
	}
	return nil
}

// sessionCheckSQL reads what deciding on a session's access tokens needs,
// over three primary-key lookups: the session's lifetime, the minimum token
// version (the user's token version plus the global one), the latest
// rotation and the roles. The roles come from here, not from the token, so
// a role change applies to tokens already issued. Only an active session is
// found; the rest is decided by sessionCheck.accepts, the same code whether
// the answer is fresh or cached.
const sessionCheckSQL = `SELECT s.expires_at, c.token_version + g.global_token_version,
		greatest(c.tokens_rotated_at, g.rotated_at), c.roles
	FROM auth_sessions s
	JOIN user_credentials c ON c.user_id = s.user_id
	CROSS JOIN security_settings g
	WHERE s.id = $1 AND s.user_id = $2 AND g.id = 1 AND s.status = 'active'`

// readSessionCheck reads what deciding on the session's access tokens
// needs, or ErrSessionRevoked when the session is not active.
func readSessionCheck(ctx context.Context, q querier, sessionID, userID uuid.UUID) (sessionCheck, error) {
	var (
		c         sessionCheck
		rotatedAt *time.Time
		roles     []string
	)
	err := q.QueryRow(ctx, sessionCheckSQL, sessionID, userID).Scan(&c.expiresAt, &c.minVersion, &rotatedAt, &roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return sessionCheck{}, ErrSessionRevoked
	}
	if err != nil {
		return sessionCheck{}, fmt.Errorf("check session: %w", err)
	}
	if rotatedAt != nil {
		c.rotatedAt = *rotatedAt
	}
	c.roles = stringsToRoles(roles)
	return c, nil
}

// failUnknownLogin records a failed login to a name that belongs to no user
// (by its digest) and returns the refusal, deciding with the same rule as
// the user aggregate (user.Lockout.Fail). The row is locked for the
// decision, so concurrent failures count one by one.
func failUnknownLogin(ctx context.Context, tx pgx.Tx, digest []byte, at time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO login_throttle (name_digest, failed_attempts) VALUES ($1, 0)
		ON CONFLICT (name_digest) DO NOTHING`, digest); err != nil {
		return fmt.Errorf("create login throttle row: %w", err)
	}
	var (
		l                 user.Lockout
		lockedUntil, last *time.Time
	)
	if err := tx.QueryRow(ctx, `SELECT failed_attempts, locked_until, last_failure_at FROM login_throttle
		WHERE name_digest = $1 FOR UPDATE`, digest).Scan(&l.FailedAttempts, &lockedUntil, &last); err != nil {
		return fmt.Errorf("lock login throttle row: %w", err)
	}
	if lockedUntil != nil {
		l.LockedUntil = *lockedUntil
	}
	if last != nil {
		l.LastFailureAt = *last
	}
	next, refusal := l.Fail(at)
	if next == l {
		return refusal // locked: nothing changes
	}
	if _, err := tx.Exec(ctx, `UPDATE login_throttle SET failed_attempts = $2, locked_until = $3, last_failure_at = $4
		WHERE name_digest = $1`, digest, next.FailedAttempts, nullTime(next.LockedUntil), nullTime(next.LastFailureAt)); err != nil {
		return fmt.Errorf("update login throttle row: %w", err)
	}
	return refusal
}

// nullTime is t, or SQL NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// readEmail returns the user's normalised address, or pgx.ErrNoRows.
func readEmail(ctx context.Context, q querier, userID uuid.UUID) (string, error) {
	var email string
	err := q.QueryRow(ctx, `SELECT email FROM user_emails WHERE user_id = $1`, userID).Scan(&email)
	return email, err
}
