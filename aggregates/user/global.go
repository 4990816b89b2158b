package user

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// SecurityTokensRotated records, on the acting administrator's stream, that
// they raised the global minimum token version: the rotation concerns every
// user, so it lands on the stream of the one person who caused it, and the
// audit trail of that administrator shows it.
type SecurityTokensRotated struct {
	// UserID is the administrator who rotated, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// GlobalTokenVersion is the new global minimum token version.
	GlobalTokenVersion int64 `json:"global_token_version"`
	// Reason is the administrator's explanation, for the audit trail.
	Reason string `json:"reason"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// EventType returns the registered name "SecurityTokensRotated".
func (SecurityTokensRotated) EventType() string { return "SecurityTokensRotated" }

func (SecurityTokensRotated) isUserEvent() {}

// GlobalEvents returns a zero value of every event that concerns all users
// but lives on one user's stream; they are kept out of AllEvents, whose list
// is the per-user contract, and registered beside them.
func GlobalEvents() []Event {
	return []Event{SecurityTokensRotated{}}
}

// RecordGlobalRotation records that this user, an administrator, raised the
// global minimum token version to version. The version itself is kept
// outside any one stream (it is shared by every user), so the caller passes
// the value it set. It returns ErrNotRegistered or ErrReasonRequired.
func (u *User) RecordGlobalRotation(version int64, reason string, at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, ErrReasonRequired
	}
	return []Event{SecurityTokensRotated{UserID: u.id, GlobalTokenVersion: version, Reason: reason, At: at}}, nil
}

// RevokeForGlobalRotation revokes a session whose tokens predate a global
// token rotation by more than its grace; only the caller knows the global
// version, so it decides that the session is too old and the aggregate
// records the revocation. Like Refresh for the user's own rotation, it
// returns the revocation together with ErrTokenVersionRevoked, to append and
// then report; or, with no events, ErrNotRegistered, ErrSessionNotFound or
// ErrSessionNotActive. Every error also matches ErrRefreshRefused.
func (u *User) RevokeForGlobalRotation(sessionID uuid.UUID, at time.Time) ([]Event, error) {
	if _, err := u.endable(sessionID); err != nil {
		return nil, refused(err)
	}
	return []Event{UserSessionRevoked{UserID: u.id, SessionID: sessionID, Reason: RevokedTokenRotation, At: at}}, refused(ErrTokenVersionRevoked)
}
