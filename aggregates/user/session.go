package user

import (
	"time"

	"github.com/google/uuid"
)

// SessionStatus is how a session stands; SessionExpired is derived from the
// time rather than recorded, because expiry needs no decision.
type SessionStatus string

// The states a session can be in.
const (
	// SessionActive means the session's tokens are accepted.
	SessionActive SessionStatus = "active"
	// SessionLoggedOut means the session's holder logged out.
	SessionLoggedOut SessionStatus = "logged_out"
	// SessionRevoked means the session was ended for a RevokeReason.
	SessionRevoked SessionStatus = "revoked"
	// SessionEvicted means a newer login pushed the session out at the session limit.
	SessionEvicted SessionStatus = "evicted"
	// SessionExpired means the session was never ended but its refresh lifetime is over.
	SessionExpired SessionStatus = "expired"
)

// Session is a read-only copy of one login's state, for the session endpoints
// and the per-request session check.
type Session struct {
	// ID is the session id, the sid claim of its access tokens.
	ID uuid.UUID
	// Status is the recorded status; use StatusAt to account for expiry.
	Status SessionStatus
	// Device is the parsed user agent at login, for the session list.
	Device string
	// IP is the client address at login.
	IP string
	// UserAgent is the raw user agent at login.
	UserAgent string
	// LastIP is the client address at the latest login or refresh.
	LastIP string
	// CreatedAt is when the login succeeded.
	CreatedAt time.Time
	// LastActiveAt is when the session last logged in or refreshed.
	LastActiveAt time.Time
	// ExpiresAt is when the current refresh token stops working.
	ExpiresAt time.Time
	// RefreshGeneration is the only refresh generation still accepted; every lower one is spent.
	RefreshGeneration int64
	// TokenVersion is the user's token version the current tokens were issued at.
	TokenVersion int64
	// EndedAt is when the session was logged out, revoked or evicted; zero while active.
	EndedAt time.Time
	// RevokeReason says why a revoked session was revoked; empty otherwise.
	RevokeReason RevokeReason
}

// StatusAt returns the status at t, reporting SessionExpired for an active
// session whose refresh lifetime is over.
func (s Session) StatusAt(t time.Time) SessionStatus {
	if s.Status == SessionActive && !t.Before(s.ExpiresAt) {
		return SessionExpired
	}
	return s.Status
}

// ActiveAt reports whether the session's tokens are acceptable at t, rotation aside.
func (s Session) ActiveAt(t time.Time) bool { return s.StatusAt(t) == SessionActive }
