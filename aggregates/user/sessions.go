package user

import (
	"time"

	"github.com/google/uuid"
)

// endable returns the session if it exists and has not ended, the common
// precondition of logging out and revoking.
func (u *User) endable(id uuid.UUID) (*Session, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	s := u.session(id)
	if s == nil {
		return nil, ErrSessionNotFound
	}
	if s.Status != SessionActive {
		return nil, ErrSessionNotActive
	}
	return s, nil
}

// Logout ends the caller's own session (DELETE /sessions/current).
// It returns ErrNotRegistered, ErrSessionNotFound or ErrSessionNotActive.
func (u *User) Logout(sessionID uuid.UUID, at time.Time) ([]Event, error) {
	if _, err := u.endable(sessionID); err != nil {
		return nil, err
	}
	return []Event{UserLoggedOut{UserID: u.id, SessionID: sessionID, At: at}}, nil
}

// RevokeSession ends one of the user's sessions from another
// (DELETE /sessions/{id}). Ending an already ended session is refused rather
// than ignored, so that web answers 404 exactly as for a missing one.
// It returns ErrNotRegistered, ErrSessionNotFound or ErrSessionNotActive.
func (u *User) RevokeSession(sessionID uuid.UUID, at time.Time) ([]Event, error) {
	if _, err := u.endable(sessionID); err != nil {
		return nil, err
	}
	return []Event{UserSessionRevoked{UserID: u.id, SessionID: sessionID, Reason: RevokedByUser, At: at}}, nil
}

// RevokeOtherSessions ends every session active at at except current
// (DELETE /sessions), one UserSessionRevoked each; none to end is no events.
// It returns ErrNotRegistered, ErrSessionNotFound or ErrSessionNotActive for current.
func (u *User) RevokeOtherSessions(current uuid.UUID, at time.Time) ([]Event, error) {
	if _, err := u.endable(current); err != nil {
		return nil, err
	}
	var events []Event
	for _, s := range u.activeSessions(at) {
		if s.ID != current {
			events = append(events, UserSessionRevoked{UserID: u.id, SessionID: s.ID, Reason: RevokedOtherSessions, At: at})
		}
	}
	return events, nil
}

// revokeAllActive revokes every session active at at for reason.
func (u *User) revokeAllActive(reason RevokeReason, at time.Time) []Event {
	var events []Event
	for _, s := range u.activeSessions(at) {
		events = append(events, UserSessionRevoked{UserID: u.id, SessionID: s.ID, Reason: reason, At: at})
	}
	return events
}
