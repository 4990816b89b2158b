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
// and the per-request session check. Its JSON form is part of Snapshot, so a
// change to its fields is a new SnapshotSchema.
type Session struct {
	// ID is the session id, the sid claim of its access tokens.
	ID uuid.UUID `json:"id"`
	// Status is the recorded status; use StatusAt to account for expiry.
	Status SessionStatus `json:"status"`
	// Device is the parsed user agent at login, for the session list.
	Device string `json:"device"`
	// IP is the client address at login.
	IP string `json:"ip"`
	// UserAgent is the raw user agent at login.
	UserAgent string `json:"user_agent"`
	// LastIP is the client address at the latest login or refresh.
	LastIP string `json:"last_ip"`
	// CreatedAt is when the login succeeded.
	CreatedAt time.Time `json:"created_at"`
	// LastActiveAt is when the session last logged in or refreshed.
	LastActiveAt time.Time `json:"last_active_at"`
	// ExpiresAt is when the current refresh token stops working.
	ExpiresAt time.Time `json:"expires_at"`
	// RefreshGeneration is the only refresh generation still accepted; every lower one is spent.
	RefreshGeneration int64 `json:"refresh_generation"`
	// TokenVersion is the user's token version the current tokens were issued at.
	TokenVersion int64 `json:"token_version"`
	// EndedAt is when the session was logged out, revoked or evicted; zero while active.
	EndedAt time.Time `json:"ended_at"`
	// RevokeReason says why a revoked session was revoked; empty otherwise.
	RevokeReason RevokeReason `json:"revoke_reason"`
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
