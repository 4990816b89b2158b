package user

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func askReset(rid uuid.UUID, at time.Time) ResetRequest {
	return ResetRequest{RequestID: rid, IP: ip, UserAgent: ua, At: at}
}

func resetRequested(rid uuid.UUID, at time.Time) UserPasswordResetRequested {
	return UserPasswordResetRequested{UserID: uid, RequestID: rid, IP: ip, UserAgent: ua, ExpiresAt: at.Add(PasswordResetTTL), At: at}
}

func TestPasswordReset(t *testing.T) {
	// Three requests 20 minutes apart: the window is full until an hour
	// after the first one, and only then.
	three := history(verified(), []Event{
		resetRequested(rid1, t0),
		resetRequested(rid2, t0.Add(20*time.Minute)),
		resetRequested(rid3, t0.Add(40*time.Minute)),
	})
	pending := history(verified(), []Event{resetRequested(rid1, t0)})
	done := t0.Add(5 * time.Minute)
	run(t, []scenario{
		{
			name:  "requests a reset valid for 15 minutes",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(rid1, t0)) },
			then:  []Event{resetRequested(rid1, t0)},
		},
		{
			name:  "an unverified user may reset too",
			given: registered(),
			when:  func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(rid1, t0)) },
			then:  []Event{resetRequested(rid1, t0)},
		},
		{
			name:  "a fourth request within the rolling hour is refused without an event",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(rid4, t0.Add(59*time.Minute))) },
			err:   ErrTooManyResets,
		},
		{
			name:  "the window rolls: an hour after the first request one more is allowed",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(rid4, t0.Add(time.Hour))) },
			then:  []Event{resetRequested(rid4, t0.Add(time.Hour))},
		},
		{
			name:  "completed requests still count toward the limit",
			given: history(three, []Event{UserPasswordResetCompleted{UserID: uid, RequestID: rid3, At: t0.Add(41 * time.Minute)}}),
			when:  func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(rid4, t0.Add(50*time.Minute))) },
			err:   ErrTooManyResets,
		},
		{
			name:  "a request refuses the nil id",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(uuid.Nil, t0)) },
			err:   ErrInvalidID,
		},
		{
			name:  "a request refuses a reused id",
			given: pending,
			when:  func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(rid1, done)) },
			err:   ErrInvalidID,
		},
		{
			name: "a request needs a registered user",
			when: func(u *User) ([]Event, error) { return u.RequestPasswordReset(askReset(rid1, t0)) },
			err:  ErrNotRegistered,
		},
		{
			name:  "completing a reset revokes every active session",
			given: history(pending, loggedIn(sid1, t0), loggedIn(sid2, t0), loggedIn(sid3, t0), []Event{UserLoggedOut{UserID: uid, SessionID: sid2, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.CompletePasswordReset(rid1, done) },
			then: []Event{
				UserPasswordResetCompleted{UserID: uid, RequestID: rid1, At: done},
				UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedPasswordReset, At: done},
				UserSessionRevoked{UserID: uid, SessionID: sid3, Reason: RevokedPasswordReset, At: done},
			},
		},
		{
			name:  "completing a reset verifies an unverified address, which the link was mailed to",
			given: history(registered(), []Event{resetRequested(rid1, t0)}),
			when:  func(u *User) ([]Event, error) { return u.CompletePasswordReset(rid1, done) },
			then: []Event{
				UserPasswordResetCompleted{UserID: uid, RequestID: rid1, At: done},
				UserEmailVerified{UserID: uid, RequestID: rid1, Method: VerifiedByPasswordReset, At: done},
			},
		},
		{
			name:  "a reset is single use",
			given: history(pending, []Event{UserPasswordResetCompleted{UserID: uid, RequestID: rid1, At: done}}),
			when:  func(u *User) ([]Event, error) { return u.CompletePasswordReset(rid1, done.Add(time.Minute)) },
			err:   ErrResetUsed,
		},
		{
			name: "completing one reset spends the earlier ones",
			given: history(verified(), []Event{
				resetRequested(rid1, t0),
				resetRequested(rid2, t0.Add(time.Minute)),
				UserPasswordResetCompleted{UserID: uid, RequestID: rid2, At: t0.Add(2 * time.Minute)},
			}),
			when: func(u *User) ([]Event, error) { return u.CompletePasswordReset(rid1, t0.Add(3*time.Minute)) },
			err:  ErrResetUsed,
		},
		{
			name:  "a reset expires after 15 minutes",
			given: pending,
			when:  func(u *User) ([]Event, error) { return u.CompletePasswordReset(rid1, t0.Add(PasswordResetTTL)) },
			err:   ErrResetExpired,
		},
		{
			name:  "an unknown reset is refused",
			given: pending,
			when:  func(u *User) ([]Event, error) { return u.CompletePasswordReset(rid2, done) },
			err:   ErrResetNotFound,
		},
		{
			name: "completing needs a registered user",
			when: func(u *User) ([]Event, error) { return u.CompletePasswordReset(rid1, done) },
			err:  ErrNotRegistered,
		},
	})
}

func TestCompletedResetClearsLockout(t *testing.T) {
	u := FromHistory(history(verified(), lockedOut(t0), []Event{resetRequested(rid1, t0)}))
	if _, locked := u.Locked(t0.Add(time.Minute)); !locked {
		t.Fatal("not locked before the reset")
	}
	folds(t, u)(u.CompletePasswordReset(rid1, t0.Add(time.Minute)))
	if _, locked := u.Locked(t0.Add(time.Minute)); locked {
		t.Fatal("still locked after the reset")
	}
	folds(t, u)(u.Login(login(sid1, true, t0.Add(2*time.Minute))))
}
