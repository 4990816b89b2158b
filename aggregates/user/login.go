package user

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// LoginAttempt is everything a login decision needs that only the caller
// can know: the result of the password check, the request's context, the
// clock and the id and lifetime of the session a success would start.
type LoginAttempt struct {
	// SessionID is the id of the session a successful login starts.
	SessionID uuid.UUID
	// PasswordMatches is the outcome of verifying the password against the stored hash.
	PasswordMatches bool
	// IP is the client address.
	IP string
	// UserAgent is the raw User-Agent header.
	UserAgent string
	// Device is the parsed user agent, for the session list.
	Device string
	// At is the time of the attempt.
	At time.Time
	// ExpiresAt is when the new session's first refresh token expires.
	ExpiresAt time.Time
	// SessionLimit is the most sessions the user may hold; 0 or less means DefaultSessionLimit.
	SessionLimit int
}

// Login decides a login attempt. Every attempt on a registered user is
// recorded as UserLoginAttempted followed by its outcome, so refusals come
// back as events and an error together (see the package comment):
//
//   - locked: UserLoginFailed and a *LockedError; the password is not
//     considered, so a lockout reveals nothing about it and is not extended;
//   - wrong password: UserLoginFailed and ErrInvalidCredentials, or, on the
//     MaxFailedLogins-th consecutive failure, also UserLockedOut and a *LockedError;
//   - right password, unverified address: UserLoginFailed and
//     ErrEmailNotVerified, checked after the password so that the answer
//     does not tell a guesser that an unverified account exists;
//   - success: UserLoginSucceeded, then a UserSessionEvicted for each oldest
//     session beyond the session limit.
//
// Invalid input (nil session id, reused session id, expiry not after At)
// returns ErrInvalidID, ErrSessionExists or ErrInvalidSessionExpiry and no
// events, as does ErrNotRegistered.
func (u *User) Login(a LoginAttempt) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	if a.SessionID == uuid.Nil {
		return nil, fmt.Errorf("login: session %w", ErrInvalidID)
	}
	if u.session(a.SessionID) != nil {
		return nil, ErrSessionExists
	}
	if !a.ExpiresAt.After(a.At) {
		return nil, ErrInvalidSessionExpiry
	}

	events := []Event{UserLoginAttempted{UserID: u.id, IP: a.IP, UserAgent: a.UserAgent, Device: a.Device, At: a.At}}
	failed := func(reason LoginFailureReason, attempts int) UserLoginFailed {
		return UserLoginFailed{UserID: u.id, Reason: reason, FailedAttempts: attempts, At: a.At}
	}

	lockout := u.lockout()
	if until, locked := lockout.Locked(a.At); locked {
		return append(events, failed(LoginFailedLocked, u.failedAttempts)), &LockedError{Until: until}
	}
	if !a.PasswordMatches {
		// The same rule as for addresses that belong to nobody (Lockout.Fail),
		// so that answers cannot tell the two apart.
		n := lockout.Counting(a.At) + 1
		events = append(events, failed(LoginFailedInvalidCredentials, n))
		next, refusal := lockout.Fail(a.At)
		if next.LockedUntil != u.lockedUntil {
			events = append(events, UserLockedOut{UserID: u.id, FailedAttempts: n, Until: next.LockedUntil, At: a.At})
		}
		return events, refusal
	}
	if !u.verified {
		return append(events, failed(LoginFailedEmailNotVerified, u.failedAttempts)), ErrEmailNotVerified
	}

	events = append(events, UserLoginSucceeded{
		UserID:       u.id,
		SessionID:    a.SessionID,
		IP:           a.IP,
		UserAgent:    a.UserAgent,
		Device:       a.Device,
		TokenVersion: u.tokenVersion,
		ExpiresAt:    a.ExpiresAt,
		At:           a.At,
	})
	limit := a.SessionLimit
	if limit <= 0 {
		limit = DefaultSessionLimit
	}
	active := u.activeSessions(a.At)
	// The new session counts toward the limit, so evict until it fits.
	for i := 0; i < len(active)+1-limit; i++ {
		events = append(events, UserSessionEvicted{UserID: u.id, SessionID: active[i].ID, Limit: limit, At: a.At})
	}
	return events, nil
}

// RecordPasswordRehash records that the caller re-encoded the password with
// current parameters after a successful login; it returns ErrNotRegistered.
func (u *User) RecordPasswordRehash(at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	return []Event{UserPasswordRehashed{UserID: u.id, At: at}}, nil
}
