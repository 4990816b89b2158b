package user

import (
	"strings"
	"testing"
)

func TestRecordAuditTrailView(t *testing.T) {
	view := AuditView{SessionID: sid1, Route: "GET /api/v1/audit-events", Filters: map[string]string{"actor": "user:x"}, At: t0}
	registered := UserRegistered{UserID: uid, Email: email, Role: RoleUser, At: t0}
	auditor := UserRoleGranted{UserID: uid, Role: RoleAuditor, At: t0}
	run(t, []scenario{
		{
			name:  "an auditor's view is recorded with its filters",
			given: []Event{registered, auditor},
			when:  func(u *User) ([]Event, error) { return u.RecordAuditTrailView(view) },
			then: []Event{UserAuditTrailViewed{UserID: uid, SessionID: sid1, Route: view.Route,
				Filters: map[string]string{"actor": "user:x"}, At: t0}},
		},
		{
			name:  "an admin may read it too",
			given: []Event{registered, UserRoleGranted{UserID: uid, Role: RoleAdmin, At: t0}},
			when: func(u *User) ([]Event, error) {
				return u.RecordAuditTrailView(AuditView{SessionID: sid1, Route: "GET /api/v1/audit-checkpoints/:id", Resource: "checkpoint:3", At: t0})
			},
			then: []Event{UserAuditTrailViewed{UserID: uid, SessionID: sid1, Route: "GET /api/v1/audit-checkpoints/:id", Resource: "checkpoint:3", At: t0}},
		},
		{
			name:  "a user whose roles no longer grant it is refused",
			given: []Event{registered, auditor, UserRoleRevoked{UserID: uid, Role: RoleAuditor, At: t0}},
			when:  func(u *User) ([]Event, error) { return u.RecordAuditTrailView(view) },
			err:   ErrNotPermitted,
		},
		{
			name: "nobody unregistered",
			when: func(u *User) ([]Event, error) { return u.RecordAuditTrailView(view) },
			err:  ErrNotRegistered,
		},
		{
			name:  "a view without a route is refused",
			given: []Event{registered, auditor},
			when:  func(u *User) ([]Event, error) { return u.RecordAuditTrailView(AuditView{At: t0}) },
			err:   ErrInvalidID,
		},
		{
			name:  "an oversized filter is refused",
			given: []Event{registered, auditor},
			when: func(u *User) ([]Event, error) {
				return u.RecordAuditTrailView(AuditView{Route: "GET /x", Filters: map[string]string{"a": strings.Repeat("x", 2000)}, At: t0})
			},
			err: ErrInvalidID,
		},
	})
}
