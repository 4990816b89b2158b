package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dashtam/dashtam/commands"
)

// Authenticate verifies an access token and its session; see Service. The
// session check is answered from the session cache when it accepts, and
// from the database otherwise (see sessionCache for why that is safe).
func (h *Handler) Authenticate(ctx context.Context, accessToken string) (commands.Principal, error) {
	claims, err := h.access.Verify(accessToken)
	if err != nil {
		return commands.Principal{}, err
	}
	now := h.clock()
	principal := func(c sessionCheck) commands.Principal {
		return commands.Principal{UserID: claims.Subject, SessionID: claims.SessionID, Roles: slices.Clone(c.roles)}
	}
	if c, ok := h.cache.get(claims.Subject, claims.SessionID, now); ok && c.accepts(claims.TokenVersion, now, h.grace) {
		return principal(c), nil
	}
	epoch := h.cache.begin()
	c, err := readSessionCheck(ctx, h.pool, claims.SessionID, claims.Subject)
	if errors.Is(err, ErrSessionRevoked) {
		return commands.Principal{}, err
	}
	if err != nil {
		return commands.Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	if !c.accepts(claims.TokenVersion, now, h.grace) {
		return commands.Principal{}, ErrSessionRevoked
	}
	h.cache.put(epoch, claims.Subject, claims.SessionID, c, now)
	return principal(c), nil
}
