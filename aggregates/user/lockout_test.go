package user

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestLockoutMatchesTheAggregate: over random sequences of wrong-password
// attempts spread over time, a Lockout kept beside the aggregate gives
// exactly the aggregate's refusals (kind and unlock time), so an unknown
// address and a registered one cannot be told apart by the answers.
func TestLockoutMatchesTheAggregate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for run := range 200 {
		u := FromHistory([]Event{
			UserRegistered{UserID: uuid.MustParse("00000000-0000-0000-0000-0000000000aa"), Email: "a@example.com", Role: RoleUser, At: t0},
			UserEmailVerified{UserID: uuid.MustParse("00000000-0000-0000-0000-0000000000aa"), Method: VerifiedByOperator, At: t0},
		})
		var l Lockout
		at := t0
		for step := range 30 {
			at = at.Add(time.Duration(rng.IntN(int(6 * time.Minute))))
			if rng.IntN(8) == 0 {
				at = at.Add(FailureWindow - time.Duration(rng.IntN(int(time.Minute)))) // around the window's edge
			}
			events, uerr := u.Login(LoginAttempt{
				SessionID: uuid.New(), PasswordMatches: false, At: at, ExpiresAt: at.Add(time.Hour),
			})
			u.Apply(events...)
			var lerr error
			l, lerr = l.Fail(at)
			if !sameRefusal(uerr, lerr) {
				t.Fatalf("run %d step %d at %s: aggregate %v, lockout %v", run, step, at, uerr, lerr)
			}
		}
	}
}

// sameRefusal reports whether a and b are the same refusal: both invalid
// credentials, or both locked until the same instant.
func sameRefusal(a, b error) bool {
	var la, lb *LockedError
	switch {
	case errors.As(a, &la) && errors.As(b, &lb):
		return la.Until.Equal(lb.Until)
	case errors.Is(a, ErrInvalidCredentials) && errors.Is(b, ErrInvalidCredentials):
		return !errors.Is(a, ErrLocked) && !errors.Is(b, ErrLocked)
	}
	return false
}
