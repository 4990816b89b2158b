package web

import (
	"context"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/web/api"
)

// RotateAllTokens raises the global minimum token version.
func (h *strictAPI) RotateAllTokens(ctx context.Context, req api.RotateAllTokensRequestObject) (api.RotateAllTokensResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := h.s.identity.RotateAllTokens(ctx, p, req.Body.Reason, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	return api.RotateAllTokens200JSONResponse(securityConfigJSON(cfg)), nil
}

// RotateUserTokens raises one user's minimum token version.
func (h *strictAPI) RotateUserTokens(ctx context.Context, req api.RotateUserTokensRequestObject) (api.RotateUserTokensResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.s.identity.RotateUserTokens(ctx, p, req.Id, req.Body.Reason, requestContextOf(ctx)); err != nil {
		return nil, err
	}
	return api.RotateUserTokens204Response{}, nil
}

// GetSecurityConfig answers the token policy and versions.
func (h *strictAPI) GetSecurityConfig(ctx context.Context, _ api.GetSecurityConfigRequestObject) (api.GetSecurityConfigResponseObject, error) {
	cfg, err := h.s.identity.SecurityConfig(ctx)
	if err != nil {
		return nil, err
	}
	return api.GetSecurityConfig200JSONResponse(securityConfigJSON(cfg)), nil
}

// SetUserRoles replaces a user's roles.
func (h *strictAPI) SetUserRoles(ctx context.Context, req api.SetUserRolesRequestObject) (api.SetUserRolesResponseObject, error) {
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	roles := make([]user.Role, 0, len(req.Body.Roles))
	for _, r := range req.Body.Roles {
		role, err := user.ParseRole(string(r))
		if err != nil {
			return nil, err // mapped to a field error on roles
		}
		roles = append(roles, role)
	}
	v, err := h.s.identity.SetRoles(ctx, p, req.Id, roles, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	return api.SetUserRoles200JSONResponse(userJSON(v)), nil
}

// securityConfigJSON renders durations as whole seconds, the unit of
// expires_in, so clients handle one unit throughout.
func securityConfigJSON(c identity.SecurityConfig) api.SecurityConfig {
	out := api.SecurityConfig{
		AccessTokenTtlSeconds:      int64(c.AccessTokenTTL.Seconds()),
		RefreshTokenTtlSeconds:     int64(c.RefreshTokenTTL.Seconds()),
		GlobalTokenVersion:         c.GlobalTokenVersion,
		RotationGracePeriodSeconds: int64(c.RotationGracePeriod.Seconds()),
		SessionLimit:               c.SessionLimit,
	}
	if c.LastRotatedAt != nil {
		t := c.LastRotatedAt.UTC()
		out.LastRotatedAt = &t
	}
	return out
}
