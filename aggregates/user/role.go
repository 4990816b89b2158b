package user

import (
	"fmt"
	"slices"
)

// Role is a named bundle of permissions a user holds; a user may hold several.
type Role string

// The roles of the API (docs/identity.md): readonly < user < admin, and auditor beside
// them, reading the audit trail and nothing else of other users.
const (
	// RoleReadonly reads its own data and changes nothing but its own sessions.
	RoleReadonly Role = "readonly"
	// RoleUser reads and changes its own data; it is the role of a registration.
	RoleUser Role = "user"
	// RoleAdmin has every permission, including security administration and the audit trail.
	RoleAdmin Role = "admin"
	// RoleAuditor reads the audit trail and owns no financial data of its own.
	RoleAuditor Role = "auditor"
)

// Roles lists every valid role, for validation messages and the role matrix test.
var Roles = []Role{RoleReadonly, RoleUser, RoleAdmin, RoleAuditor}

// ParseRole turns an external name into a Role, refusing unknown names with ErrInvalidRole.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("parse role %q: %w", s, ErrInvalidRole)
	}
	return r, nil
}

// Valid reports whether r is one of Roles, so a typo never becomes a role
// without permissions; it does not consult the Roles variable, which a
// caller could change.
func (r Role) Valid() bool {
	switch r {
	case RoleReadonly, RoleUser, RoleAdmin, RoleAuditor:
		return true
	}
	return false
}

// Permission is what a route requires; routes declare one each, and roles
// grant sets of them, so the role matrix is decided here in one place.
type Permission string

// The permissions routes can require.
const (
	// PermissionSelf covers one's own profile and sessions; every role has it,
	// so anyone can see and end their own sessions.
	PermissionSelf Permission = "self"
	// PermissionDataRead covers reading one's own connections, accounts, holdings and transactions.
	PermissionDataRead Permission = "data:read"
	// PermissionDataWrite covers creating and changing one's own connections and starting syncs.
	PermissionDataWrite Permission = "data:write"
	// PermissionAuditRead covers reading the audit trail of every user.
	PermissionAuditRead Permission = "audit:read"
	// PermissionSecurityAdmin covers token rotation, role changes and the security configuration.
	PermissionSecurityAdmin Permission = "security:admin"
)

// Permissions lists every permission, for the role matrix test.
var Permissions = []Permission{PermissionSelf, PermissionDataRead, PermissionDataWrite, PermissionAuditRead, PermissionSecurityAdmin}

// rolePermissions spells out the matrix; the ladder readonly < user < admin
// shows as each row containing the one below it.
var rolePermissions = map[Role][]Permission{
	RoleReadonly: {PermissionSelf, PermissionDataRead},
	RoleUser:     {PermissionSelf, PermissionDataRead, PermissionDataWrite},
	RoleAdmin:    {PermissionSelf, PermissionDataRead, PermissionDataWrite, PermissionAuditRead, PermissionSecurityAdmin},
	RoleAuditor:  {PermissionSelf, PermissionAuditRead},
}

// Allows reports whether r grants p; an invalid role grants nothing.
func (r Role) Allows(p Permission) bool { return slices.Contains(rolePermissions[r], p) }

// HasPermission reports whether any of roles grants p, so that a token's
// roles claim and the aggregate's state are checked by the same rule.
func HasPermission(roles []Role, p Permission) bool {
	for _, r := range roles {
		if r.Allows(p) {
			return true
		}
	}
	return false
}
