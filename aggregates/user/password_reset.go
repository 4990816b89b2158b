package user

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ResetRequest is a password reset request as the caller prepared it: the
// id names the hashed secret it stores and mails.
type ResetRequest struct {
	// RequestID names the reset link's stored secret.
	RequestID uuid.UUID
	// IP is the client address.
	IP string
	// UserAgent is the raw User-Agent header.
	UserAgent string
	// At is the time of the request.
	At time.Time
}

// RequestPasswordReset records a reset link valid for PasswordResetTTL.
// A refused request leaves no event: the endpoint is public and answers the
// same either way, so recording refusals would let anyone grow a victim's
// stream without bound, while the per-IP rate limit already logs the abuse.
// It returns ErrNotRegistered, ErrInvalidID or ErrTooManyResets when
// MaxResetRequests were made within the ResetRequestWindow before At.
func (u *User) RequestPasswordReset(r ResetRequest) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	if r.RequestID == uuid.Nil {
		return nil, fmt.Errorf("request password reset: %w", ErrInvalidID)
	}
	windowStart := r.At.Add(-ResetRequestWindow)
	recent := 0
	for _, q := range u.resets {
		if q.id == r.RequestID {
			return nil, fmt.Errorf("request password reset: request id already used: %w", ErrInvalidID)
		}
		if q.at.After(windowStart) {
			recent++
		}
	}
	if recent >= MaxResetRequests {
		return nil, ErrTooManyResets
	}
	return []Event{UserPasswordResetRequested{
		UserID:    u.id,
		RequestID: r.RequestID,
		IP:        r.IP,
		UserAgent: r.UserAgent,
		ExpiresAt: r.At.Add(PasswordResetTTL),
		At:        r.At,
	}}, nil
}

// CompletePasswordReset records that the caller replaced the password
// through reset requestID, and revokes every active session in the same
// decision, because whoever held the old password may hold a session too.
// The reset link was mailed to the address, so completing it also verifies
// an unverified one: a user whose verification mail was lost is not locked
// out for good. It returns ErrNotRegistered, ErrResetNotFound, ErrResetUsed or ErrResetExpired.
func (u *User) CompletePasswordReset(requestID uuid.UUID, at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	var req *resetRequest
	for i := range u.resets {
		if u.resets[i].id == requestID {
			req = &u.resets[i]
		}
	}
	switch {
	case req == nil:
		return nil, ErrResetNotFound
	case req.used:
		return nil, ErrResetUsed
	case !at.Before(req.expiresAt):
		return nil, ErrResetExpired
	}
	events := []Event{UserPasswordResetCompleted{UserID: u.id, RequestID: requestID, At: at}}
	if !u.verified {
		events = append(events, UserEmailVerified{UserID: u.id, RequestID: requestID, Method: VerifiedByPasswordReset, At: at})
	}
	return append(events, u.revokeAllActive(RevokedPasswordReset, at)...), nil
}
