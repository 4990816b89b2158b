package user

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// RequestVerification records a new verification link, valid for
// VerificationTTL; requestID names the hashed secret the caller stores.
// It returns ErrNotRegistered, ErrAlreadyVerified or ErrInvalidID.
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
	return []Event{UserVerificationRequested{UserID: u.id, RequestID: requestID, ExpiresAt: at.Add(VerificationTTL), At: at}}, nil
}

// VerifyEmail completes verification request requestID. Verifying spends
// every outstanding request, which is what makes the links single-use.
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
