package user

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// RequestVerification records a new verification link, valid for
// VerificationTTL; requestID names the hashed secret the caller stores.
// Earlier links stay valid until they expire or the address is verified,
// so a resent mail cannot strand a user who opens the first one.
// A refused request leaves no event, for the reason RequestPasswordReset
// gives. It returns ErrNotRegistered, ErrAlreadyVerified, ErrInvalidID or
// ErrTooManyVerificationRequests when MaxVerificationRequests were made
// within the VerificationRequestWindow before at (registration's included).
func (u *User) RequestVerification(requestID uuid.UUID, at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	if u.verified {
		return nil, ErrAlreadyVerified
	}
	if requestID == uuid.Nil {
		return nil, fmt.Errorf("request verification: %w", ErrInvalidID)
	}
	if _, dup := u.verifications[requestID]; dup {
		return nil, fmt.Errorf("request verification: request id already used: %w", ErrInvalidID)
	}
	windowStart := at.Add(-VerificationRequestWindow)
	recent := 0
	for _, expires := range u.verifications {
		// Every request is issued for VerificationTTL, so its expiry
		// names when it was made; no second field has to be kept in step.
		if expires.Add(-VerificationTTL).After(windowStart) {
			recent++
		}
	}
	if recent >= MaxVerificationRequests {
		return nil, ErrTooManyVerificationRequests
	}
	return []Event{UserVerificationRequested{UserID: u.id, RequestID: requestID, ExpiresAt: at.Add(VerificationTTL), At: at}}, nil
}

// VerifyEmail completes verification request requestID, which may be any
// unexpired one, not only the newest. Verifying spends every outstanding
// request, which is what makes the links single-use.
// It returns ErrNotRegistered, ErrAlreadyVerified, ErrVerificationNotFound or ErrVerificationExpired.
func (u *User) VerifyEmail(requestID uuid.UUID, at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	if u.verified {
		return nil, ErrAlreadyVerified
	}
	expires, ok := u.verifications[requestID]
	if !ok {
		return nil, ErrVerificationNotFound
	}
	if !at.Before(expires) {
		return nil, ErrVerificationExpired
	}
	return []Event{UserEmailVerified{UserID: u.id, RequestID: requestID, Method: VerifiedByEmailLink, At: at}}, nil
}

// VerifyEmailByOperator marks the address verified on an operator's word,
// for bootstrapping the first admin (dashtam users create --verified).
// It returns ErrNotRegistered or ErrAlreadyVerified.
func (u *User) VerifyEmailByOperator(at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	if u.verified {
		return nil, ErrAlreadyVerified
	}
	return []Event{UserEmailVerified{UserID: u.id, Method: VerifiedByOperator, At: at}}, nil
}
