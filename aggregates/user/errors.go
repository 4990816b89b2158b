package user

import (
	"errors"
	"time"
)

// The errors below are the refusals of the user aggregate; web maps each to
// one problem type, so they are values that errors.Is can match.
var (
	// ErrNotRegistered means the command needs a registered user and the stream is empty.
	ErrNotRegistered = errors.New("user is not registered")
	// ErrAlreadyRegistered means Register ran on a stream that already holds a user.
	ErrAlreadyRegistered = errors.New("user is already registered")
	// ErrInvalidID means a caller-supplied id (user, session, request) is the nil UUID.
	ErrInvalidID = errors.New("id must not be the nil uuid")
	// ErrInvalidEmail means an email address is empty, too long, not a bare
	// address, holds invisible or control characters, or is at an IP
	// literal, numeric or dotless domain (commands.NormalizeEmail).
	ErrInvalidEmail = errors.New("email address is invalid")
	// ErrInvalidRole means a role name is not one of readonly, user, admin or auditor.
	ErrInvalidRole = errors.New("role is invalid")
	// ErrLastRole means a change would leave the user without any role, which
	// would lock them out silently; deactivate the user instead.
	ErrLastRole = errors.New("user must keep at least one role")

	// ErrAlreadyVerified means the email address is verified, so every outstanding verification is spent.
	ErrAlreadyVerified = errors.New("email is already verified")
	// ErrVerificationNotFound means no verification request with that id was made for this user.
	ErrVerificationNotFound = errors.New("verification request not found")
	// ErrVerificationExpired means the verification request is older than VerificationTTL.
	ErrVerificationExpired = errors.New("verification request expired")
	// ErrTooManyVerificationRequests means MaxVerificationRequests links were
	// already issued within VerificationRequestWindow.
	ErrTooManyVerificationRequests = errors.New("too many verification requests")

	// ErrInvalidCredentials means the password did not match; it says nothing
	// more so that a wrong password reads like an unknown email.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrEmailNotVerified means the password matched but the address is not verified yet.
	ErrEmailNotVerified = errors.New("email is not verified")
	// ErrLocked is matched by every *LockedError, for callers that need only the kind.
	ErrLocked = errors.New("account is locked")
	// ErrInvalidSessionExpiry means a new session or refresh would expire at or before its start.
	ErrInvalidSessionExpiry = errors.New("session expiry must be after its start")

	// ErrRefreshRefused is matched by every refusal of Refresh and
	// RevokeForGlobalRotation, beside the specific error, so that a caller
	// can answer all of them alike and a new refusal cannot turn into a
	// failure of the machinery.
	ErrRefreshRefused = errors.New("refresh refused")
	// ErrSessionExists means a login supplied the id of a session the user already has.
	ErrSessionExists = errors.New("session id already in use")
	// ErrSessionNotFound means the user has no session with that id.
	ErrSessionNotFound = errors.New("session not found")
	// ErrSessionNotActive means the session was logged out, revoked or evicted.
	ErrSessionNotActive = errors.New("session is not active")
	// ErrSessionExpired means the session's refresh lifetime is over.
	ErrSessionExpired = errors.New("session expired")
	// ErrRefreshTokenReused means an already-rotated refresh token was
	// presented; the session has been revoked because one of its holders is
	// not the rightful one.
	ErrRefreshTokenReused = errors.New("refresh token reused")
	// ErrRefreshGenerationUnknown means a refresh generation newer than any
	// issued was presented, which only corrupt storage or a bug can produce.
	ErrRefreshGenerationUnknown = errors.New("refresh generation was never issued")
	// ErrTokenVersionRevoked means the session's tokens predate a token
	// rotation and its grace period is over; the session has been revoked.
	ErrTokenVersionRevoked = errors.New("token version revoked by rotation")

	// ErrTooManyResets means MaxResetRequests resets were already requested within ResetRequestWindow.
	ErrTooManyResets = errors.New("too many password reset requests")
	// ErrResetNotFound means no password reset with that id was requested for this user.
	ErrResetNotFound = errors.New("password reset request not found")
	// ErrResetExpired means the password reset request is older than PasswordResetTTL.
	ErrResetExpired = errors.New("password reset request expired")
	// ErrResetUsed means the password reset was completed already, or another one was completed after it was requested.
	ErrResetUsed = errors.New("password reset request already used")

	// ErrReasonRequired means an administrative action was requested without saying why, which the audit trail needs.
	ErrReasonRequired = errors.New("reason is required")
)

// LockedError is returned while the account is locked out; it carries the
// unlock time so that web can answer with Retry-After.
type LockedError struct {
	// Until is the first instant at which a login may succeed again.
	Until time.Time
}

// Error says until when the account is locked.
func (e *LockedError) Error() string {
	return "account is locked until " + e.Until.UTC().Format(time.RFC3339)
}

// Unwrap makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Unwrap() error { return ErrLocked }
