package user

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRotateTokensAndAccessDenied(t *testing.T) {
	t1 := t0.Add(time.Hour)
	denial := AccessDenial{SessionID: sid1, Method: "PUT", Route: "/api/v1/admin/users/{id}/roles", Permission: PermissionSecurityAdmin, IP: ip, At: t1}
	run(t, []scenario{
		{
			name:  "raises the minimum token version",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RotateTokens("  phone lost ", t1) },
			then:  []Event{UserTokensRotated{UserID: uid, TokenVersion: 2, Reason: "phone lost", At: t1}},
		},
		{
			name:  "each rotation raises it again",
			given: history(verified(), []Event{UserTokensRotated{UserID: uid, TokenVersion: 2, Reason: "phone lost", At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.RotateTokens("key leak", t1) },
			then:  []Event{UserTokensRotated{UserID: uid, TokenVersion: 3, Reason: "key leak", At: t1}},
		},
		{
			name:  "a rotation needs a reason",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RotateTokens(" \t", t1) },
			err:   ErrReasonRequired,
		},
		{
			name: "a rotation needs a registered user",
			when: func(u *User) ([]Event, error) { return u.RotateTokens("why", t1) },
			err:  ErrNotRegistered,
		},
		{
			name:  "records a denied request",
			given: history(verified(), loggedIn(sid1, t0)),
			when:  func(u *User) ([]Event, error) { return u.RecordAccessDenied(denial) },
			then: []Event{UserAccessDenied{
				UserID: uid, SessionID: sid1, Method: "PUT", Route: "/api/v1/admin/users/{id}/roles",
				Permission: PermissionSecurityAdmin, IP: ip, At: t1,
			}},
		},
		{
			name: "a denial needs a registered user",
			when: func(u *User) ([]Event, error) { return u.RecordAccessDenied(denial) },
			err:  ErrNotRegistered,
		},
	})
}

func TestAcceptsTokenVersion(t *testing.T) {
	rotatedAt := t0.Add(time.Hour)
	u := FromHistory(history(verified(),
		[]Event{UserTokensRotated{UserID: uid, TokenVersion: 2, Reason: "a", At: t0}},
		[]Event{UserTokensRotated{UserID: uid, TokenVersion: 3, Reason: "b", At: rotatedAt}},
	))
	if u.TokenVersion() != 3 || !u.TokensRotatedAt().Equal(rotatedAt) {
		t.Fatalf("TokenVersion = %d at %v", u.TokenVersion(), u.TokensRotatedAt())
	}
	grace := 5 * time.Minute
	for _, c := range []struct {
		v    int64
		at   time.Time
		want bool
	}{
		{v: 3, at: rotatedAt.Add(24 * time.Hour), want: true},
		{v: 4, at: rotatedAt, want: true},
		{v: 2, at: rotatedAt.Add(grace - time.Nanosecond), want: true},
		{v: 2, at: rotatedAt.Add(grace), want: false},
		{v: 1, at: rotatedAt, want: false},
	} {
		if got := u.AcceptsTokenVersion(c.v, c.at, grace); got != c.want {
			t.Errorf("AcceptsTokenVersion(%d, rotation+%v) = %v, want %v", c.v, c.at.Sub(rotatedAt), got, c.want)
		}
	}
	if fresh := FromHistory(verified()); fresh.TokenVersion() != 1 || !fresh.AcceptsTokenVersion(1, t0, 0) || fresh.AcceptsTokenVersion(0, t0, time.Hour) {
		t.Error("a new user must start at token version 1 and refuse version 0")
	}
}

func TestState(t *testing.T) {
	u := FromHistory(history(verified(),
		loggedIn(sid1, t0),
		loggedIn(sid2, t0.Add(time.Minute)),
		loggedIn(sid3, t0.Add(2*time.Minute)),
		[]Event{
			UserLoggedOut{UserID: uid, SessionID: sid1, At: t0.Add(time.Hour)},
			UserSessionRevoked{UserID: uid, SessionID: sid2, Reason: RevokedByUser, At: t0.Add(time.Hour)},
			// Apply never fails: an event about an unknown session is ignored.
			UserSessionRevoked{UserID: uid, SessionID: sid4, Reason: RevokedByUser, At: t0},
			UserTokenRefreshed{UserID: uid, SessionID: sid4, RefreshGeneration: 9, At: t0},
		},
	))
	if u.ID() != uid || !u.Registered() || u.Email() != email || !u.Verified() {
		t.Fatalf("identity = %v %v %q %v", u.ID(), u.Registered(), u.Email(), u.Verified())
	}
	var all [3]Session
	for i, id := range []uuid.UUID{sid1, sid2, sid3} {
		var ok bool
		if all[i], ok = u.Session(id); !ok {
			t.Fatalf("Session(%d) not found", i+1)
		}
	}
	if len(u.sessions) != 3 {
		t.Fatalf("%d sessions, want 3", len(u.sessions))
	}
	if all[0].Status != SessionLoggedOut || all[1].Status != SessionRevoked || all[1].RevokeReason != RevokedByUser || all[2].Status != SessionActive {
		t.Fatalf("statuses = %s %s(%s) %s", all[0].Status, all[1].Status, all[1].RevokeReason, all[2].Status)
	}
	if !all[1].EndedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("EndedAt = %v", all[1].EndedAt)
	}
	s, ok := u.Session(sid3)
	if !ok || s.Device != dev || s.IP != ip || s.UserAgent != ua || !s.CreatedAt.Equal(t0.Add(2*time.Minute)) || s.RefreshGeneration != 1 || s.TokenVersion != 1 {
		t.Fatalf("Session(sid3) = %+v, %v", s, ok)
	}
	if _, ok := u.Session(sid4); ok {
		t.Fatal("Session(unknown) found")
	}
	if got := s.StatusAt(s.ExpiresAt); got != SessionExpired {
		t.Fatalf("StatusAt(expiry) = %s", got)
	}
	if active := u.activeSessions(t0.Add(time.Hour)); len(active) != 1 || active[0].ID != sid3 {
		t.Fatalf("activeSessions = %+v", active)
	}
	if active := u.activeSessions(s.ExpiresAt); len(active) != 0 {
		t.Fatalf("activeSessions after expiry = %+v", active)
	}
	all[2].Status = SessionRevoked // a copy: must not change the state
	if s, _ := u.Session(sid3); s.Status != SessionActive {
		t.Fatal("Session returned the state itself")
	}

	var zero User
	if zero.Registered() || zero.TokenVersion() != 0 || len(zero.sessions) != 0 {
		t.Fatal("the zero User is not empty")
	}
}
