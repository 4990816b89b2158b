package user

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestLogin(t *testing.T) {
	t1 := t0.Add(time.Hour)
	lockedAt := t0.Add(10 * time.Minute)
	until := lockedAt.Add(LockoutDuration)
	run(t, []scenario{
		{
			name:  "a verified user with the right password gets a session",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, true, t1)) },
			then:  []Event{attempted(t1), succeeded(sid1, 1, t1)},
		},
		{
			name:  "the first wrong password is a failure, not a lockout",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, false, t1)) },
			then:  []Event{attempted(t1), UserLoginFailed{UserID: uid, Reason: LoginFailedInvalidCredentials, FailedAttempts: 1, At: t1}},
			err:   ErrInvalidCredentials,
		},
		{
			name:  "the fifth consecutive failure locks for 15 minutes",
			given: history(verified(), failedLogins(4, t0)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, false, lockedAt)) },
			then: []Event{
				attempted(lockedAt),
				UserLoginFailed{UserID: uid, Reason: LoginFailedInvalidCredentials, FailedAttempts: 5, At: lockedAt},
				UserLockedOut{UserID: uid, FailedAttempts: 5, Until: until, At: lockedAt},
			},
			err: ErrLocked,
		},
		{
			name:  "a right password during the lockout is refused and does not extend it",
			given: history(verified(), lockedOut(lockedAt)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, true, until.Add(-time.Second))) },
			then: []Event{
				attempted(until.Add(-time.Second)),
				UserLoginFailed{UserID: uid, Reason: LoginFailedLocked, FailedAttempts: 0, At: until.Add(-time.Second)},
			},
			err: ErrLocked,
		},
		{
			name:  "a wrong password during the lockout does not count toward the next one",
			given: history(verified(), lockedOut(lockedAt)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, false, lockedAt.Add(time.Minute))) },
			then: []Event{
				attempted(lockedAt.Add(time.Minute)),
				UserLoginFailed{UserID: uid, Reason: LoginFailedLocked, FailedAttempts: 0, At: lockedAt.Add(time.Minute)},
			},
			err: ErrLocked,
		},
		{
			name:  "the lockout ends when its window does",
			given: history(verified(), lockedOut(lockedAt)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, true, until)) },
			then:  []Event{attempted(until), succeeded(sid1, 1, until)},
		},
		{
			name:  "after a lockout the count starts again",
			given: history(verified(), lockedOut(lockedAt)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, false, until)) },
			then:  []Event{attempted(until), UserLoginFailed{UserID: uid, Reason: LoginFailedInvalidCredentials, FailedAttempts: 1, At: until}},
			err:   ErrInvalidCredentials,
		},
		{
			name:  "a success resets the consecutive count",
			given: history(verified(), failedLogins(4, t0), loggedIn(sid1, t0)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid2, false, t1)) },
			then:  []Event{attempted(t1), UserLoginFailed{UserID: uid, Reason: LoginFailedInvalidCredentials, FailedAttempts: 1, At: t1}},
			err:   ErrInvalidCredentials,
		},
		{
			name:  "an unverified user with the right password is refused, and the attempt recorded",
			given: registered(),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, true, t1)) },
			then:  []Event{attempted(t1), UserLoginFailed{UserID: uid, Reason: LoginFailedEmailNotVerified, FailedAttempts: 0, At: t1}},
			err:   ErrEmailNotVerified,
		},
		{
			name:  "an unverified user with a wrong password hears only invalid credentials",
			given: registered(),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, false, t1)) },
			then:  []Event{attempted(t1), UserLoginFailed{UserID: uid, Reason: LoginFailedInvalidCredentials, FailedAttempts: 1, At: t1}},
			err:   ErrInvalidCredentials,
		},
		{
			name:  "an unverified login does not reset the failure count",
			given: history(registered(), failedLogins(2, t0)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, true, t1)) },
			then:  []Event{attempted(t1), UserLoginFailed{UserID: uid, Reason: LoginFailedEmailNotVerified, FailedAttempts: 2, At: t1}},
			err:   ErrEmailNotVerified,
		},
		{
			name:  "the session limit evicts the oldest session",
			given: history(verified(), loggedIn(sid1, t0), loggedIn(sid2, t0.Add(time.Minute)), loggedIn(sid3, t0.Add(2*time.Minute))),
			when: func(u *User) ([]Event, error) {
				a := login(sid4, true, t1)
				a.SessionLimit = 3
				return u.Login(a)
			},
			then: []Event{attempted(t1), succeeded(sid4, 1, t1), UserSessionEvicted{UserID: uid, SessionID: sid1, Limit: 3, At: t1}},
		},
		{
			name: "ended and expired sessions do not count toward the limit",
			given: history(verified(),
				loggedIn(sid1, t0.Add(-ttl)), // expires exactly at t0
				loggedIn(sid2, t0),
				[]Event{UserLoggedOut{UserID: uid, SessionID: sid2, At: t0}},
				loggedIn(sid3, t0)),
			when: func(u *User) ([]Event, error) {
				a := login(sid4, true, t1)
				a.SessionLimit = 2
				return u.Login(a)
			},
			then: []Event{attempted(t1), succeeded(sid4, 1, t1)},
		},
		{
			name:  "a lowered limit evicts as many as needed",
			given: history(verified(), loggedIn(sid1, t0), loggedIn(sid2, t0.Add(time.Minute)), loggedIn(sid3, t0.Add(2*time.Minute))),
			when: func(u *User) ([]Event, error) {
				a := login(sid4, true, t1)
				a.SessionLimit = 1
				return u.Login(a)
			},
			then: []Event{
				attempted(t1), succeeded(sid4, 1, t1),
				UserSessionEvicted{UserID: uid, SessionID: sid1, Limit: 1, At: t1},
				UserSessionEvicted{UserID: uid, SessionID: sid2, Limit: 1, At: t1},
				UserSessionEvicted{UserID: uid, SessionID: sid3, Limit: 1, At: t1},
			},
		},
		{
			name:  "sessions carry the token version after a rotation",
			given: history(verified(), []Event{UserTokensRotated{UserID: uid, TokenVersion: 2, Reason: "laptop stolen", At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, true, t1)) },
			then:  []Event{attempted(t1), succeeded(sid1, 2, t1)},
		},
		{
			name: "refuses an unregistered user without events",
			when: func(u *User) ([]Event, error) { return u.Login(login(sid1, true, t1)) },
			err:  ErrNotRegistered,
		},
		{
			name:  "refuses the nil session id without events",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.Login(login(uuid.Nil, true, t1)) },
			err:   ErrInvalidID,
		},
		{
			name:  "refuses a session id already in use without events",
			given: history(verified(), loggedIn(sid1, t0)),
			when:  func(u *User) ([]Event, error) { return u.Login(login(sid1, true, t1)) },
			err:   ErrSessionExists,
		},
		{
			name:  "refuses an expiry not after the login without events",
			given: verified(),
			when: func(u *User) ([]Event, error) {
				a := login(sid1, true, t1)
				a.ExpiresAt = t1
				return u.Login(a)
			},
			err: ErrInvalidSessionExpiry,
		},
		{
			name:  "records a rehash",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RecordPasswordRehash(t1) },
			then:  []Event{UserPasswordRehashed{UserID: uid, At: t1}},
		},
		{
			name: "a rehash needs a registered user",
			when: func(u *User) ([]Event, error) { return u.RecordPasswordRehash(t1) },
			err:  ErrNotRegistered,
		},
	})
}

func TestLockedErrorCarriesTheUnlockTime(t *testing.T) {
	u := FromHistory(history(verified(), failedLogins(4, t0)))
	_, err := u.Login(login(sid1, false, t0))
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("error = %v, want *LockedError", err)
	}
	if want := t0.Add(LockoutDuration); !le.Until.Equal(want) {
		t.Fatalf("Until = %v, want %v", le.Until, want)
	}
	if le.Error() != "account is locked until 2026-03-01T09:15:00Z" {
		t.Fatalf("Error() = %q", le.Error())
	}
}

// TestLockoutJourney drives the lockout through the commands themselves,
// folding each decision, with injected times only.
func TestLockoutJourney(t *testing.T) {
	u := FromHistory(verified())
	at := t0
	for i := 1; i < MaxFailedLogins; i++ {
		events, err := u.Login(login(sid1, false, at))
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: error = %v", i, err)
		}
		u.Apply(events...)
		if u.FailedAttempts() != i {
			t.Fatalf("failure %d: FailedAttempts = %d", i, u.FailedAttempts())
		}
		at = at.Add(time.Minute)
	}
	events, err := u.Login(login(sid1, false, at))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("fifth failure: error = %v, want ErrLocked", err)
	}
	u.Apply(events...)
	lockedAt := at
	if until, locked := u.Locked(lockedAt.Add(LockoutDuration - time.Nanosecond)); !locked || !until.Equal(lockedAt.Add(LockoutDuration)) {
		t.Fatalf("Locked just before the window ends = %v, %v", until, locked)
	}
	if _, locked := u.Locked(lockedAt.Add(LockoutDuration)); locked {
		t.Fatal("still locked when the window ends")
	}

	events, err = u.Login(login(sid1, true, lockedAt.Add(14*time.Minute)))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("right password during lockout: error = %v", err)
	}
	u.Apply(events...)

	folds(t, u)(u.Login(login(sid1, true, lockedAt.Add(LockoutDuration))))
	if s, ok := u.Session(sid1); !ok || s.Status != SessionActive {
		t.Fatalf("session after release = %+v, %v", s, ok)
	}
	if u.FailedAttempts() != 0 {
		t.Fatalf("FailedAttempts after success = %d", u.FailedAttempts())
	}
}
