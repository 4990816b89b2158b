package user

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// EndedSessionRetention is how long after it was logged out, revoked,
// evicted or expired the aggregate keeps a session; the next login after
// that forgets it, so a user's state does not grow with every login they
// ever made. It matches how long auth_sessions keeps such a session
// readable (identity.SessionRetention), so the aggregate and the table
// forget the same sessions.
const EndedSessionRetention = 30 * 24 * time.Hour

// forgetEndedSessions drops the sessions that ended or expired more than
// EndedSessionRetention before at. No decision can tell them from sessions
// never seen, beyond the error's name: neither counts as active (eviction,
// revoking the others, a password reset), and every command naming one
// refuses with no events once it is forgotten (ErrSessionNotFound), which
// every handler answers as it answers an ended one (404 for a revocation,
// 401 for a refresh). The one change is revoking a session that expired
// without ending: it records a revocation while kept and is 404 once
// forgotten, as GET /sessions/{id} is once the sweep deleted its row.
// Login's check that a session id is new is the only other reader, and
// session ids are UUIDv7s: a fresh one cannot repeat one minted a month before.
func (u *User) forgetEndedSessions(at time.Time) {
	before := at.Add(-EndedSessionRetention)
	u.sessions = slices.DeleteFunc(u.sessions, func(s *Session) bool {
		return (s.Status != SessionActive && s.EndedAt.Before(before)) || s.ExpiresAt.Before(before)
	})
}

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
