package user

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// User is the security state of one user, folded from their stream. The zero
// value (or FromHistory(nil)) is an unregistered user that accepts only Register.
// Snapshot must carry every field: a field added here goes there too, under
// a new SnapshotSchema (TestSnapshotCarriesEveryField).
type User struct {
	id              uuid.UUID
	registered      bool
	registeredAt    time.Time
	email           string
	roles           []Role // kept sorted, without duplicates
	verified        bool
	verifications   map[uuid.UUID]time.Time // request id -> expiry
	failedAttempts  int
	lastFailureAt   time.Time // of the latest failure counted in failedAttempts
	lockedUntil     time.Time
	sessions        []*Session // in login order, so the first active one is the oldest; see forgetEndedSessions
	tokenVersion    int64
	tokensRotatedAt time.Time
	resets          []resetRequest // in request order
	erased          bool           // personal data erased (erase.go)
}

// resetRequest is one password reset request; used turns true when it, or
// any reset completed after it was requested, changed the password.
type resetRequest struct {
	id        uuid.UUID
	at        time.Time
	expiresAt time.Time
	used      bool
}

// FromHistory folds a stream's events, oldest first, into a User.
func FromHistory(history []Event) *User {
	u := &User{}
	u.Apply(history...)
	return u
}

// Apply folds events into the state, for loading and for seeing the effect
// of just-decided events; it never validates, because events are facts.
func (u *User) Apply(events ...Event) {
	for _, e := range events {
		u.apply(e)
	}
}

func (u *User) apply(e Event) {
	switch e := e.(type) {
	case UserRegistered:
		u.id = e.UserID
		u.registered = true
		u.registeredAt = e.At
		u.email = e.Email
		u.roles = []Role{e.Role}
		u.tokenVersion = 1
	case UserVerificationRequested:
		if u.verifications == nil {
			u.verifications = map[uuid.UUID]time.Time{}
		}
		u.verifications[e.RequestID] = e.ExpiresAt
	case UserEmailVerified:
		u.verified = true
	case UserLoginAttempted:
		// The outcome event carries the state change.
	case UserLoginSucceeded:
		u.failedAttempts = 0
		// Only a login adds a session, so forgetting old ones here bounds them.
		u.forgetEndedSessions(e.At)
		u.sessions = append(u.sessions, &Session{
			ID:                e.SessionID,
			Status:            SessionActive,
			Device:            e.Device,
			IP:                e.IP,
			UserAgent:         e.UserAgent,
			LastIP:            e.IP,
			CreatedAt:         e.At,
			LastActiveAt:      e.At,
			ExpiresAt:         e.ExpiresAt,
			RefreshGeneration: 1,
			TokenVersion:      e.TokenVersion,
		})
	case UserLoginFailed:
		u.failedAttempts = e.FailedAttempts
		if e.Reason == LoginFailedInvalidCredentials {
			u.lastFailureAt = e.At
		}
	case UserLockedOut:
		u.lockedUntil = e.Until
		// The lockout consumes the failures, so that after it the user gets
		// a fresh MaxFailedLogins attempts rather than being locked again by one.
		u.failedAttempts = 0
	case UserLoggedOut:
		if s := u.session(e.SessionID); s != nil {
			s.Status = SessionLoggedOut
			s.EndedAt = e.At
		}
	case UserSessionRevoked:
		if s := u.session(e.SessionID); s != nil {
			s.Status = SessionRevoked
			s.RevokeReason = e.Reason
			s.EndedAt = e.At
		}
	case UserSessionEvicted:
		if s := u.session(e.SessionID); s != nil {
			s.Status = SessionEvicted
			s.EndedAt = e.At
		}
	case UserTokenRefreshed:
		if s := u.session(e.SessionID); s != nil {
			s.RefreshGeneration = e.RefreshGeneration
			s.TokenVersion = e.TokenVersion
			s.LastActiveAt = e.At
			s.LastIP = e.IP
			s.ExpiresAt = e.ExpiresAt
		}
	case UserRefreshTokenReuseDetected:
		// The UserSessionRevoked decided with it ends the session.
	case UserPasswordResetRequested:
		u.resets = append(u.resets, resetRequest{id: e.RequestID, at: e.At, expiresAt: e.ExpiresAt})
	case UserPasswordResetCompleted:
		// A new password spends every outstanding reset link and clears a
		// lockout: whoever completed it controls the mailbox.
		for i := range u.resets {
			if !u.resets[i].at.After(e.At) {
				u.resets[i].used = true
			}
		}
		u.failedAttempts = 0
		u.lockedUntil = time.Time{}
	case UserPasswordRehashed:
		// The hash lives outside the log; the event is for the audit trail.
	case UserRoleGranted:
		if !slices.Contains(u.roles, e.Role) {
			u.roles = append(u.roles, e.Role)
			slices.Sort(u.roles)
		}
	case UserRoleRevoked:
		u.roles = slices.DeleteFunc(u.roles, func(r Role) bool { return r == e.Role })
	case UserTokensRotated:
		u.tokenVersion = e.TokenVersion
		u.tokensRotatedAt = e.At
	case UserAccessDenied:
		// Recorded for the audit trail; access decisions are not state.
	case UserAuditTrailViewed:
		// The audit of the auditors; reading changes no state.
	case UserErased:
		u.forget()
	}
}

func (u *User) session(id uuid.UUID) *Session {
	for _, s := range u.sessions {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// activeSessions returns the sessions active at t, oldest first.
func (u *User) activeSessions(t time.Time) []*Session {
	var out []*Session
	for _, s := range u.sessions {
		if s.ActiveAt(t) {
			out = append(out, s)
		}
	}
	return out
}

// ID returns the user's id, which is also their stream id.
func (u *User) ID() uuid.UUID { return u.id }

// Registered reports whether the stream holds a user, so handlers can tell an empty stream from a user.
func (u *User) Registered() bool { return u.registered }

// RegisteredAt is when the user registered; zero before Register.
func (u *User) RegisteredAt() time.Time { return u.registeredAt }

// Email returns the normalised email address.
func (u *User) Email() string { return u.email }

// Verified reports whether the email address has been verified.
func (u *User) Verified() bool { return u.verified }

// Roles returns a sorted copy of the roles the user holds.
func (u *User) Roles() []Role { return slices.Clone(u.roles) }

// HasRole reports whether the user holds r.
func (u *User) HasRole(r Role) bool { return slices.Contains(u.roles, r) }

// FailedAttempts returns the consecutive password failures since the last
// success, lockout or password reset.
func (u *User) FailedAttempts() int { return u.failedAttempts }

// Locked reports whether the account is locked out at t and until when, so
// that web can send Retry-After.
func (u *User) Locked(t time.Time) (until time.Time, locked bool) {
	return u.lockout().Locked(t)
}

// lockout is the user's failed-login state, decided by the same rules as
// that of names that belong to nobody.
func (u *User) lockout() Lockout {
	return Lockout{FailedAttempts: u.failedAttempts, LockedUntil: u.lockedUntil, LastFailureAt: u.lastFailureAt}
}

// TokenVersion returns the minimum token version: tokens issued at an older
// version are refused once the rotation's grace period is over.
func (u *User) TokenVersion() int64 { return u.tokenVersion }

// TokensRotatedAt returns when TokenVersion was last raised; zero if never.
func (u *User) TokensRotatedAt() time.Time { return u.tokensRotatedAt }

// AcceptsTokenVersion reports whether a token issued at version v is still
// acceptable at t: a current one always, the one version just superseded
// only while t is within grace of the rotation. Older versions are refused
// even within grace, erring on the side of the rotation.
func (u *User) AcceptsTokenVersion(v int64, t time.Time, grace time.Duration) bool {
	if v >= u.tokenVersion {
		return true
	}
	return v == u.tokenVersion-1 && t.Before(u.tokensRotatedAt.Add(grace))
}

// Session returns a copy of the session with the given id and whether it exists.
func (u *User) Session(id uuid.UUID) (Session, bool) {
	if s := u.session(id); s != nil {
		return *s, true
	}
	return Session{}, false
}
