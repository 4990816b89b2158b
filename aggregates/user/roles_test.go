package user

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestRoles(t *testing.T) {
	t1 := t0.Add(time.Hour)
	twoRoles := history(verified(), []Event{UserRoleGranted{UserID: uid, Role: RoleAuditor, At: t0}})
	run(t, []scenario{
		{
			name:  "sets roles as grants, then revokes",
			given: twoRoles,
			when:  func(u *User) ([]Event, error) { return u.SetRoles([]Role{RoleReadonly, RoleAdmin, RoleAdmin}, t1) },
			then: []Event{
				UserRoleGranted{UserID: uid, Role: RoleAdmin, At: t1},
				UserRoleGranted{UserID: uid, Role: RoleReadonly, At: t1},
				UserRoleRevoked{UserID: uid, Role: RoleAuditor, At: t1},
				UserRoleRevoked{UserID: uid, Role: RoleUser, At: t1},
			},
		},
		{
			name:  "setting the same roles is no events",
			given: twoRoles,
			when:  func(u *User) ([]Event, error) { return u.SetRoles([]Role{RoleUser, RoleAuditor}, t1) },
			then:  nil,
		},
		{
			name:  "set refuses an empty set",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.SetRoles(nil, t1) },
			err:   ErrLastRole,
		},
		{
			name:  "set refuses an unknown role",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.SetRoles([]Role{RoleUser, "owner"}, t1) },
			err:   ErrInvalidRole,
		},
		{
			name: "set needs a registered user",
			when: func(u *User) ([]Event, error) { return u.SetRoles([]Role{RoleUser}, t1) },
			err:  ErrNotRegistered,
		},
	})
}

func TestRoleState(t *testing.T) {
	u := FromHistory(history(verified(),
		[]Event{UserRoleGranted{UserID: uid, Role: RoleAuditor, At: t0}},
		[]Event{UserRoleGranted{UserID: uid, Role: RoleAdmin, At: t0}},
		[]Event{UserRoleRevoked{UserID: uid, Role: RoleUser, At: t0}},
	))
	if got, want := u.Roles(), []Role{RoleAdmin, RoleAuditor}; !slices.Equal(got, want) {
		t.Fatalf("Roles = %v, want %v", got, want)
	}
	u.Roles()[0] = RoleReadonly // a copy: must not change the state
	if !u.HasRole(RoleAdmin) || u.HasRole(RoleUser) {
		t.Fatalf("HasRole after changing the returned slice: %v", u.Roles())
	}
}

// TestPermissionMatrix states the whole role matrix, so a change to it is a
// visible change to this table.
func TestPermissionMatrix(t *testing.T) {
	want := map[Role][]Permission{
		RoleReadonly: {PermissionSelf, PermissionDataRead},
		RoleUser:     {PermissionSelf, PermissionDataRead, PermissionDataWrite},
		RoleAdmin:    {PermissionSelf, PermissionDataRead, PermissionDataWrite, PermissionAuditRead, PermissionSecurityAdmin},
		RoleAuditor:  {PermissionSelf, PermissionAuditRead},
	}
	for _, r := range Roles {
		for _, p := range Permissions {
			if got, exp := r.Allows(p), slices.Contains(want[r], p); got != exp {
				t.Errorf("%s allows %s = %v, want %v", r, p, got, exp)
			}
		}
	}
	// The ladder readonly < user < admin: each rung has everything below it.
	ladder := []Role{RoleReadonly, RoleUser, RoleAdmin}
	for i := 1; i < len(ladder); i++ {
		for _, p := range Permissions {
			if ladder[i-1].Allows(p) && !ladder[i].Allows(p) {
				t.Errorf("%s allows %s but %s does not", ladder[i-1], p, ladder[i])
			}
		}
	}
	if Role("root").Allows(PermissionSelf) {
		t.Error("an invalid role grants a permission")
	}
	if HasPermission(nil, PermissionSelf) || !HasPermission([]Role{RoleReadonly, RoleAuditor}, PermissionAuditRead) {
		t.Error("HasPermission does not take the union of roles")
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", " user"} {
		if _, err := ParseRole(s); !errors.Is(err, ErrInvalidRole) {
			t.Errorf("ParseRole(%q) error = %v, want ErrInvalidRole", s, err)
		}
	}
}
