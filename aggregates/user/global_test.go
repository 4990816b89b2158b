package user

import (
	"testing"
	"time"
)

func TestGlobalRotation(t *testing.T) {
	t1 := t0.Add(time.Hour)
	run(t, []scenario{
		{
			name:  "records the global version on the administrator's stream",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RecordGlobalRotation(3, " key leak ", t1) },
			then:  []Event{SecurityTokensRotated{UserID: uid, GlobalTokenVersion: 3, Reason: "key leak", At: t1}},
		},
		{
			name:  "a global rotation needs a reason",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RecordGlobalRotation(3, "", t1) },
			err:   ErrReasonRequired,
		},
		{
			name: "a global rotation needs a registered administrator",
			when: func(u *User) ([]Event, error) { return u.RecordGlobalRotation(3, "why", t1) },
			err:  ErrNotRegistered,
		},
		{
			name:  "revokes a session the global rotation left behind",
			given: history(verified(), loggedIn(sid1, t0)),
			when:  func(u *User) ([]Event, error) { return u.RevokeForGlobalRotation(sid1, t1) },
			then:  []Event{UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedTokenRotation, At: t1}},
			err:   ErrTokenVersionRevoked,
		},
		{
			name:  "an ended session is not revoked again",
			given: history(verified(), loggedIn(sid1, t0), []Event{UserLoggedOut{UserID: uid, SessionID: sid1, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.RevokeForGlobalRotation(sid1, t1) },
			err:   ErrSessionNotActive,
		},
		{
			name:  "an unknown session is not found",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RevokeForGlobalRotation(sid2, t1) },
			err:   ErrSessionNotFound,
		},
	})
}
