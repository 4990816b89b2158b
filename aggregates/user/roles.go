package user

import (
	"fmt"
	"slices"
	"time"
)

// SetRoles makes roles the user's exact set (PUT /admin/users/{id}/roles),
// as grants followed by revokes so the stream never shows a user without a
// role; duplicates are ignored and an unchanged set is no events. It
// returns ErrNotRegistered, ErrInvalidRole or ErrLastRole for an empty set.
func (u *User) SetRoles(roles []Role, at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	for _, r := range roles {
		if !r.Valid() {
			return nil, fmt.Errorf("set roles: %q: %w", r, ErrInvalidRole)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("set roles: %w", ErrLastRole)
	}
	want := slices.Clone(roles)
	slices.Sort(want)
	want = slices.Compact(want)
	var events []Event
	for _, r := range want {
		if !u.HasRole(r) {
			events = append(events, UserRoleGranted{UserID: u.id, Role: r, At: at})
		}
	}
	for _, r := range u.roles {
		if !slices.Contains(want, r) {
			events = append(events, UserRoleRevoked{UserID: u.id, Role: r, At: at})
		}
	}
	return events, nil
}
