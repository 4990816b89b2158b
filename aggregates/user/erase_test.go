package user

import (
	"testing"
	"time"
)

func TestErase(t *testing.T) {
	admin := id(0xAD)
	at := t0.Add(time.Hour)
	run(t, []scenario{
		{
			name:  "every active session ends, then the erasure is recorded",
			given: history(verified(), loggedIn(sid1, t0), loggedIn(sid2, t0)),
			when:  func(u *User) ([]Event, error) { return u.Erase(admin, at) },
			then: []Event{
				UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedErasure, At: at},
				UserSessionRevoked{UserID: uid, SessionID: sid2, Reason: RevokedErasure, At: at},
				UserErased{UserID: uid, By: admin, At: at},
			},
		},
		{
			name:  "once only",
			given: history(verified(), []Event{UserErased{UserID: uid, By: uid, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.Erase(uid, at) },
			err:   ErrAlreadyErased,
		},
		{
			name: "nobody unregistered",
			when: func(u *User) ([]Event, error) { return u.Erase(uid, at) },
			err:  ErrNotRegistered,
		},
	})
	u := FromHistory(history(verified(), loggedIn(sid1, t0), []Event{UserErased{UserID: uid, By: uid, At: at}}))
	if !u.Erased() || u.Email() != ErasedMarker {
		t.Errorf("erased state: erased=%v email=%q", u.Erased(), u.Email())
	}
	s, _ := u.Session(sid1)
	for name, v := range map[string]string{"ip": s.IP, "last_ip": s.LastIP, "user_agent": s.UserAgent, "device": s.Device} {
		if v != ErasedMarker {
			t.Errorf("session %s = %q after the erasure", name, v)
		}
	}
}
