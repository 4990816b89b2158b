package user

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestEndingSessions(t *testing.T) {
	t1 := t0.Add(time.Hour)
	three := history(verified(), loggedIn(sid1, t0), loggedIn(sid2, t0.Add(time.Minute)), loggedIn(sid3, t0.Add(2*time.Minute)))
	run(t, []scenario{
		{
			name:  "logs out the current session",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.Logout(sid2, t1) },
			then:  []Event{UserLoggedOut{UserID: uid, SessionID: sid2, At: t1}},
		},
		{
			name:  "logout refuses an unknown session",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.Logout(sid4, t1) },
			err:   ErrSessionNotFound,
		},
		{
			name:  "logout refuses an ended session",
			given: history(three, []Event{UserLoggedOut{UserID: uid, SessionID: sid2, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.Logout(sid2, t1) },
			err:   ErrSessionNotActive,
		},
		{
			name: "logout refuses an unregistered user",
			when: func(u *User) ([]Event, error) { return u.Logout(sid1, t1) },
			err:  ErrNotRegistered,
		},
		{
			name:  "revokes one session",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RevokeSession(sid1, t1) },
			then:  []Event{UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedByUser, At: t1}},
		},
		{
			name:  "revoke refuses an unknown session",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RevokeSession(sid4, t1) },
			err:   ErrSessionNotFound,
		},
		{
			name:  "revoke refuses an evicted session",
			given: history(three, []Event{UserSessionEvicted{UserID: uid, SessionID: sid1, Limit: 2, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.RevokeSession(sid1, t1) },
			err:   ErrSessionNotActive,
		},
		{
			name:  "revokes every other active session",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RevokeOtherSessions(sid2, t1) },
			then: []Event{
				UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedOtherSessions, At: t1},
				UserSessionRevoked{UserID: uid, SessionID: sid3, Reason: RevokedOtherSessions, At: t1},
			},
		},
		{
			name:  "revoking others skips ended and expired sessions",
			given: history(verified(), loggedIn(sid1, t0.Add(-ttl)), loggedIn(sid2, t0), loggedIn(sid3, t0), []Event{UserSessionRevoked{UserID: uid, SessionID: sid3, Reason: RevokedByUser, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.RevokeOtherSessions(sid2, t1) },
			then:  nil,
		},
		{
			name:  "revoking others needs an active current session",
			given: history(three, []Event{UserSessionRevoked{UserID: uid, SessionID: sid2, Reason: RevokedByUser, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.RevokeOtherSessions(sid2, t1) },
			err:   ErrSessionNotActive,
		},
		{
			name:  "revoking others needs a known current session",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RevokeOtherSessions(sid4, t1) },
			err:   ErrSessionNotFound,
		},
	})
}

// refresh is a RefreshAttempt of generation gen of session sid at at.
func refresh(sid uuid.UUID, gen int64, at time.Time) RefreshAttempt {
	return RefreshAttempt{SessionID: sid, Generation: gen, IP: "198.51.100.9", UserAgent: ua, At: at, ExpiresAt: at.Add(ttl)}
}

func refreshed(gen, version int64, at time.Time) UserTokenRefreshed {
	return UserTokenRefreshed{UserID: uid, SessionID: sid1, RefreshGeneration: gen, TokenVersion: version, IP: "198.51.100.9", UserAgent: ua, ExpiresAt: at.Add(ttl), At: at}
}

func TestRefresh(t *testing.T) {
	t1 := t0.Add(10 * time.Minute)
	t2 := t0.Add(20 * time.Minute)
	session := history(verified(), loggedIn(sid1, t0))
	onceRefreshed := history(session, []Event{refreshed(2, 1, t1)})
	rotated := func(at time.Time) []Event {
		return []Event{UserTokensRotated{UserID: uid, TokenVersion: 2, Reason: "key compromise", At: at}}
	}
	cases := []scenario{
		{
			name:  "rotates to the next generation",
			given: session,
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 1, t1)) },
			then:  []Event{refreshed(2, 1, t1)},
		},
		{
			name:  "the current generation keeps working",
			given: onceRefreshed,
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 2, t2)) },
			then:  []Event{refreshed(3, 1, t2)},
		},
		{
			name:  "a spent generation revokes the whole session",
			given: onceRefreshed,
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 1, t2)) },
			then: []Event{
				UserRefreshTokenReuseDetected{UserID: uid, SessionID: sid1, PresentedGeneration: 1, CurrentGeneration: 2, IP: "198.51.100.9", UserAgent: ua, At: t2},
				UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedRefreshTokenReuse, At: t2},
			},
			err: ErrRefreshTokenReused,
		},
		{
			name:  "a generation never issued is refused",
			given: onceRefreshed,
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 3, t2)) },
			err:   ErrRefreshGenerationUnknown,
		},
		{
			name:  "generation zero is refused",
			given: session,
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 0, t2)) },
			err:   ErrRefreshGenerationUnknown,
		},
		{
			name:  "a revoked session cannot refresh",
			given: history(onceRefreshed, []Event{UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedRefreshTokenReuse, At: t1}}),
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 2, t2)) },
			err:   ErrSessionNotActive,
		},
		{
			name:  "an expired session cannot refresh",
			given: session,
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 1, t0.Add(ttl))) },
			err:   ErrSessionExpired,
		},
		{
			name:  "an unknown session cannot refresh",
			given: session,
			when:  func(u *User) ([]Event, error) { return u.Refresh(refresh(sid2, 1, t1)) },
			err:   ErrSessionNotFound,
		},
		{
			name:  "an expiry not after the refresh is refused",
			given: session,
			when: func(u *User) ([]Event, error) {
				r := refresh(sid1, 1, t1)
				r.ExpiresAt = t0
				return u.Refresh(r)
			},
			err: ErrInvalidSessionExpiry,
		},
		{
			name: "an unregistered user cannot refresh",
			when: func(u *User) ([]Event, error) { return u.Refresh(refresh(sid1, 1, t1)) },
			err:  ErrNotRegistered,
		},
		{
			name:  "within the rotation's grace the session moves to the new version",
			given: history(session, rotated(t1)),
			when: func(u *User) ([]Event, error) {
				r := refresh(sid1, 1, t2)
				r.Grace = 15 * time.Minute
				return u.Refresh(r)
			},
			then: []Event{refreshed(2, 2, t2)},
		},
		{
			name:  "after the rotation's grace the session is revoked",
			given: history(session, rotated(t1)),
			when: func(u *User) ([]Event, error) {
				r := refresh(sid1, 1, t2)
				r.Grace = 10 * time.Minute
				return u.Refresh(r)
			},
			then: []Event{UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedTokenRotation, At: t2}},
			err:  ErrTokenVersionRevoked,
		},
		{
			name: "two rotations behind is refused even within grace",
			given: history(session, rotated(t1),
				[]Event{UserTokensRotated{UserID: uid, TokenVersion: 3, Reason: "again", At: t1}}),
			when: func(u *User) ([]Event, error) {
				r := refresh(sid1, 1, t2)
				r.Grace = time.Hour
				return u.Refresh(r)
			},
			then: []Event{UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedTokenRotation, At: t2}},
			err:  ErrTokenVersionRevoked,
		},
	}
	run(t, cases)
	// Every refusal but the caller's own mistake is one kind, which the
	// command layer answers alike.
	for _, c := range cases {
		if c.err == nil || c.err == ErrInvalidSessionExpiry {
			continue
		}
		if _, err := c.when(FromHistory(c.given)); !errors.Is(err, ErrRefreshRefused) {
			t.Errorf("%s: %v does not match ErrRefreshRefused", c.name, err)
		}
	}
}

// TestRefreshReuseJourney plays the refresh-token theft story (docs/identity.md) through the
// commands: the rightful client refreshes, the thief replays the old token,
// and neither can refresh afterwards.
func TestRefreshReuseJourney(t *testing.T) {
	u := FromHistory(verified())
	folds(t, u)(u.Login(login(sid1, true, t0)))
	folds(t, u)(u.Refresh(refresh(sid1, 1, t0.Add(time.Minute))))
	s, _ := u.Session(sid1)
	if s.RefreshGeneration != 2 || !s.LastActiveAt.Equal(t0.Add(time.Minute)) || s.LastIP != "198.51.100.9" {
		t.Fatalf("session after refresh = %+v", s)
	}

	events, err := u.Refresh(refresh(sid1, 1, t0.Add(2*time.Minute)))
	if !errors.Is(err, ErrRefreshTokenReused) || len(events) != 2 {
		t.Fatalf("replay: %v, %d events", err, len(events))
	}
	u.Apply(events...)
	s, _ = u.Session(sid1)
	if s.Status != SessionRevoked || s.RevokeReason != RevokedRefreshTokenReuse {
		t.Fatalf("session after replay = %+v", s)
	}
	if _, err := u.Refresh(refresh(sid1, 2, t0.Add(3*time.Minute))); !errors.Is(err, ErrSessionNotActive) {
		t.Fatalf("rightful refresh after replay: %v", err)
	}
}
