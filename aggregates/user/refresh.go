package user

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// RefreshAttempt is a presented refresh token as the caller resolved it: the
// token's digest led to a session and the generation it was issued as.
type RefreshAttempt struct {
	// SessionID is the session the presented refresh token belongs to.
	SessionID uuid.UUID
	// Generation is the refresh generation the presented token was issued as.
	Generation int64
	// IP is the client address.
	IP string
	// UserAgent is the raw User-Agent header.
	UserAgent string
	// At is the time of the refresh.
	At time.Time
	// ExpiresAt is when the next refresh token expires.
	ExpiresAt time.Time
	// Grace is how long after a token rotation a session issued at the
	// previous version may still refresh onto the new one.
	Grace time.Duration
}

// Refresh rotates a session's refresh token: on success the session moves
// to the next generation at the current token version (UserTokenRefreshed),
// and the presented generation is spent.
//
// Presenting a spent generation means two parties hold the token, and the
// aggregate cannot tell which is rightful, so it revokes the whole session:
// UserRefreshTokenReuseDetected and UserSessionRevoked with
// ErrRefreshTokenReused. A session whose tokens predate a token rotation by
// more than its grace is revoked likewise, with ErrTokenVersionRevoked.
// Append those events even though an error comes back (package comment).
//
// It returns, with no events, ErrNotRegistered, ErrInvalidSessionExpiry,
// ErrSessionNotFound, ErrSessionNotActive, ErrSessionExpired or
// ErrRefreshGenerationUnknown. Every error but ErrInvalidSessionExpiry, a
// mistake of the caller's, also matches ErrRefreshRefused.
func (u *User) Refresh(r RefreshAttempt) ([]Event, error) {
	if !u.registered {
		return nil, refused(ErrNotRegistered)
	}
	if !r.ExpiresAt.After(r.At) {
		return nil, ErrInvalidSessionExpiry
	}
	s := u.session(r.SessionID)
	if s == nil {
		return nil, refused(ErrSessionNotFound)
	}
	switch s.StatusAt(r.At) {
	case SessionActive:
	case SessionExpired:
		return nil, refused(ErrSessionExpired)
	default:
		return nil, refused(ErrSessionNotActive)
	}
	if r.Generation < 1 || r.Generation > s.RefreshGeneration {
		return nil, refused(ErrRefreshGenerationUnknown)
	}
	if r.Generation < s.RefreshGeneration {
		return []Event{
			UserRefreshTokenReuseDetected{
				UserID:              u.id,
				SessionID:           s.ID,
				PresentedGeneration: r.Generation,
				CurrentGeneration:   s.RefreshGeneration,
				IP:                  r.IP,
				UserAgent:           r.UserAgent,
				At:                  r.At,
			},
			UserSessionRevoked{UserID: u.id, SessionID: s.ID, Reason: RevokedRefreshTokenReuse, At: r.At},
		}, refused(ErrRefreshTokenReused)
	}
	if !u.AcceptsTokenVersion(s.TokenVersion, r.At, r.Grace) {
		return []Event{UserSessionRevoked{UserID: u.id, SessionID: s.ID, Reason: RevokedTokenRotation, At: r.At}}, refused(ErrTokenVersionRevoked)
	}
	return []Event{UserTokenRefreshed{
		UserID:            u.id,
		SessionID:         s.ID,
		RefreshGeneration: s.RefreshGeneration + 1,
		TokenVersion:      u.tokenVersion,
		IP:                r.IP,
		UserAgent:         r.UserAgent,
		ExpiresAt:         r.ExpiresAt,
		At:                r.At,
	}}, nil
}

// refused marks err as a refusal of a refresh: it matches both err and
// ErrRefreshRefused.
func refused(err error) error { return fmt.Errorf("%w: %w", ErrRefreshRefused, err) }
