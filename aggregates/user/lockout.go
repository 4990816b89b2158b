package user

import "time"

// Lockout is the failed-login state of one login name: consecutive
// password failures and the end of the current lockout. The user aggregate
// keeps it for registered users (folded from their events); the identity
// handlers keep it, by a digest of the address, for addresses that belong
// to nobody, so that both answer exactly alike and a lockout cannot tell a
// registered address from an unknown one.
type Lockout struct {
	// FailedAttempts counts consecutive failures since the last success or lockout.
	FailedAttempts int
	// LockedUntil is the end of the latest lockout (zero: never locked).
	LockedUntil time.Time
	// LastFailureAt is when the latest counted failure happened.
	LastFailureAt time.Time
}

// Locked reports whether the name is locked at t, and until when.
func (l Lockout) Locked(t time.Time) (until time.Time, locked bool) {
	if t.Before(l.LockedUntil) {
		return l.LockedUntil, true
	}
	return time.Time{}, false
}

// Counting returns how many failures still count toward a lockout at t:
// none once the latest is FailureWindow old.
func (l Lockout) Counting(t time.Time) int {
	if l.FailedAttempts > 0 && !t.Before(l.LastFailureAt.Add(FailureWindow)) {
		return 0
	}
	return l.FailedAttempts
}

// Fail decides a failed password at t: while locked, the state is kept
// (a lockout is never extended) and the refusal is a *LockedError; the
// MaxFailedLogins-th consecutive failure locks for LockoutDuration,
// consuming the failures, and is a *LockedError too; any other failure
// counts and is ErrInvalidCredentials.
func (l Lockout) Fail(t time.Time) (Lockout, error) {
	if until, locked := l.Locked(t); locked {
		return l, &LockedError{Until: until}
	}
	n := l.Counting(t) + 1
	if n < MaxFailedLogins {
		return Lockout{FailedAttempts: n, LockedUntil: l.LockedUntil, LastFailureAt: t}, ErrInvalidCredentials
	}
	until := t.Add(LockoutDuration)
	return Lockout{LockedUntil: until, LastFailureAt: t}, &LockedError{Until: until}
}
