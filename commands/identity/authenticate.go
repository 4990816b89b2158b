package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// authenticateSQL is the per-request session check: one statement over
// three primary-key lookups. The session must be active and within its
// lifetime, and the token's version at least the current minimum (the
// user's token version plus the global one), or one below it while the
// latest rotation's grace lasts. The roles come from here, not from the
// token, so a role change applies to tokens already issued.
const authenticateSQL = `SELECT c.roles
	FROM auth_sessions s
	JOIN user_credentials c ON c.user_id = s.user_id
	CROSS JOIN security_settings g
	WHERE s.id = $1 AND s.user_id = $2 AND g.id = 1
	  AND s.status = 'active' AND s.expires_at > $3
	  AND ($4::bigint >= c.token_version + g.global_token_version
	       OR ($4::bigint = c.token_version + g.global_token_version - 1
	           AND greatest(c.tokens_rotated_at, g.rotated_at) > $5))`

// Authenticate verifies an access token and its session; see Service.
func (h *Handler) Authenticate(ctx context.Context, accessToken string) (Principal, error) {
	claims, err := h.access.Verify(accessToken)
	if err != nil {
		return Principal{}, err
	}
	now := h.clock()
	var roles []string
	err = h.pool.QueryRow(ctx, authenticateSQL, claims.SessionID, claims.Subject, now, claims.TokenVersion, now.Add(-h.grace)).Scan(&roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrSessionRevoked
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: check session: %w", err)
	}
	return Principal{UserID: claims.Subject, SessionID: claims.SessionID, Roles: stringsToRoles(roles)}, nil
}
