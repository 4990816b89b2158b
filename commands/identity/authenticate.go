package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

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

// Authenticate verifies an access token and its session; see Service. The
// session check is answered from the session cache when it accepts, and
// from the database otherwise (see sessionCache for why that is safe).
func (h *Handler) Authenticate(ctx context.Context, accessToken string) (Principal, error) {
	claims, err := h.access.Verify(accessToken)
	if err != nil {
		return Principal{}, err
	}
	now := h.clock()
	principal := func(c sessionCheck) Principal {
		return Principal{UserID: claims.Subject, SessionID: claims.SessionID, Roles: slices.Clone(c.roles)}
	}
	if c, ok := h.cache.get(claims.Subject, claims.SessionID, now); ok && c.accepts(claims.TokenVersion, now, h.grace) {
		return principal(c), nil
	}
	epoch := h.cache.begin()
	var (
		c         sessionCheck
		rotatedAt *time.Time
		roles     []string
	)
	err = h.pool.QueryRow(ctx, sessionCheckSQL, claims.SessionID, claims.Subject).Scan(&c.expiresAt, &c.minVersion, &rotatedAt, &roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrSessionRevoked
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: check session: %w", err)
	}
	if rotatedAt != nil {
		c.rotatedAt = *rotatedAt
	}
	c.roles = stringsToRoles(roles)
	if !c.accepts(claims.TokenVersion, now, h.grace) {
		return Principal{}, ErrSessionRevoked
	}
	h.cache.put(epoch, claims.Subject, claims.SessionID, c, now)
	return principal(c), nil
}
