package user

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

// t0 is the fixed start of every scenario; tests add durations to it and
// never read the clock.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

var (
	uid  = id(0xA)
	sid1 = id(1)
	sid2 = id(2)
	sid3 = id(3)
	sid4 = id(4)
	rid1 = id(0x11)
	rid2 = id(0x12)
	rid3 = id(0x13)
	rid4 = id(0x14)
)

const (
	email = "ann@example.com"
	ip    = "192.0.2.7"
	ua    = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
	dev   = "Firefox on Linux"
	ttl   = 30 * 24 * time.Hour
)

// id makes a readable fixed UUID, so failures name sessions as 00…01.
func id(n int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("00000000-0000-0000-0000-%012x", n))
}

// scenario is one given-events / when-command / then-events case.
type scenario struct {
	name  string
	given []Event
	when  func(u *User) ([]Event, error)
	then  []Event
	err   error // matched with errors.Is; nil means success
}

// run folds each scenario's history, runs its command and compares the
// decided events and error exactly.
func run(t *testing.T, cases []scenario) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := FromHistory(c.given)
			got, err := c.when(u)
			switch {
			case c.err == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.err != nil && !errors.Is(err, c.err):
				t.Fatalf("error = %v, want %v", err, c.err)
			}
			if !reflect.DeepEqual(got, c.then) {
				t.Fatalf("events:\n got %#v\nwant %#v", got, c.then)
			}
			// Whatever was decided must fold without panicking.
			u.Apply(got...)
		})
	}
}

// history joins event lists, so a scenario's given reads as its story.
func history(parts ...[]Event) []Event {
	var out []Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func registered() []Event {
	return []Event{UserRegistered{UserID: uid, Email: email, Role: RoleUser, At: t0}}
}

func verified() []Event {
	return history(registered(), []Event{UserEmailVerified{UserID: uid, Method: VerifiedByOperator, At: t0}})
}

func loggedIn(sid uuid.UUID, at time.Time) []Event {
	return []Event{
		UserLoginAttempted{UserID: uid, IP: ip, UserAgent: ua, Device: dev, At: at},
		UserLoginSucceeded{UserID: uid, SessionID: sid, IP: ip, UserAgent: ua, Device: dev, TokenVersion: 1, ExpiresAt: at.Add(ttl), At: at},
	}
}

func failedLogins(n int, at time.Time) []Event {
	var out []Event
	for i := 1; i <= n; i++ {
		out = append(out,
			UserLoginAttempted{UserID: uid, IP: ip, UserAgent: ua, Device: dev, At: at},
			UserLoginFailed{UserID: uid, Reason: LoginFailedInvalidCredentials, FailedAttempts: i, At: at})
	}
	return out
}

func lockedOut(at time.Time) []Event {
	return history(failedLogins(MaxFailedLogins, at),
		[]Event{UserLockedOut{UserID: uid, FailedAttempts: MaxFailedLogins, Until: at.Add(LockoutDuration), At: at}})
}

// login is a LoginAttempt from the fixed client at at.
func login(sid uuid.UUID, matches bool, at time.Time) LoginAttempt {
	return LoginAttempt{SessionID: sid, PasswordMatches: matches, IP: ip, UserAgent: ua, Device: dev, At: at, ExpiresAt: at.Add(ttl)}
}

func attempted(at time.Time) UserLoginAttempted {
	return UserLoginAttempted{UserID: uid, IP: ip, UserAgent: ua, Device: dev, At: at}
}

func succeeded(sid uuid.UUID, version int64, at time.Time) UserLoginSucceeded {
	return UserLoginSucceeded{UserID: uid, SessionID: sid, IP: ip, UserAgent: ua, Device: dev, TokenVersion: version, ExpiresAt: at.Add(ttl), At: at}
}

// folds returns a function that takes a command's results, fails the test
// on an error and folds the events into u, so scenario tests can chain
// commands as folds(t, u)(u.Login(...)).
func folds(tb testing.TB, u *User) func([]Event, error) []Event {
	return func(events []Event, err error) []Event {
		tb.Helper()
		if err != nil {
			tb.Fatalf("unexpected error: %v", err)
		}
		u.Apply(events...)
		return events
	}
}
