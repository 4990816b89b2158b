package user

import (
	"time"

	"github.com/google/uuid"
)

// Event is one fact on a user's stream. It satisfies eventstore.Event
// structurally; the unexported marker keeps other aggregates' events out, so
// eventstore.Update[user.Event] refuses a foreign event on a user stream.
//
// Payloads carry ids, times, reasons and request context, never a password,
// token, hash or link: the log is read by people replaying the audit trail
// and kept forever, so a secret written here could never be taken back.
// Fields tagged `personal:"true"` (an email, an IP address, a user agent)
// are personal data: the store seals them under the user's own key, which
// an erasure destroys (docs/audit.md).
type Event interface {
	// EventType returns the stable, registered name, which is also the Go type name.
	EventType() string
	isUserEvent()
}

// LoginFailureReason says why a login attempt failed, for the audit trail and lockout statistics.
type LoginFailureReason string

// The reasons a login fails.
const (
	// LoginFailedInvalidCredentials means the password did not match; only these failures count toward lockout.
	LoginFailedInvalidCredentials LoginFailureReason = "invalid_credentials"
	// LoginFailedEmailNotVerified means the password matched but the address is not verified.
	LoginFailedEmailNotVerified LoginFailureReason = "email_not_verified"
	// LoginFailedLocked means the account was locked out when the attempt arrived.
	LoginFailedLocked LoginFailureReason = "locked"
)

// RevokeReason says why a session was ended by something other than its own logout.
type RevokeReason string

// The reasons a session is revoked.
const (
	// RevokedByUser means the user ended this session from another one (DELETE /sessions/{id}).
	RevokedByUser RevokeReason = "user_request"
	// RevokedOtherSessions means the user signed out everywhere else (DELETE /sessions).
	RevokedOtherSessions RevokeReason = "other_sessions_revoked"
	// RevokedRefreshTokenReuse means an already-rotated refresh token was presented (theft detection).
	RevokedRefreshTokenReuse RevokeReason = "refresh_token_reuse"
	// RevokedPasswordReset means the password was reset, which ends every session.
	RevokedPasswordReset RevokeReason = "password_reset"
	// RevokedTokenRotation means the session's tokens predate a token rotation and its grace period passed.
	RevokedTokenRotation RevokeReason = "token_rotation"
)

// VerificationMethod says how an email address was shown to belong to the user.
type VerificationMethod string

// The ways an address gets verified.
const (
	// VerifiedByEmailLink means the user followed the link mailed for a verification request.
	VerifiedByEmailLink VerificationMethod = "email_link"
	// VerifiedByOperator means an operator vouched for the address (dashtam users create --verified).
	VerifiedByOperator VerificationMethod = "operator"
	// VerifiedByPasswordReset means the user completed a password reset
	// through the link mailed to the address, which proves it as well.
	VerifiedByPasswordReset VerificationMethod = "password_reset"
)

// UserRegistered starts a user's stream with the normalised email and the first role.
type UserRegistered struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// Email is the normalised address, the login identifier.
	Email string `json:"email" personal:"true"`
	// Role is the first role the user holds.
	Role Role `json:"role"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserVerificationRequested records that a verification link was issued; the
// link's secret lives, hashed, outside the log and names RequestID.
type UserVerificationRequested struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// RequestID names the verification link's stored secret.
	RequestID uuid.UUID `json:"request_id"`
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time `json:"expires_at"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserEmailVerified records that the address was shown to be the user's; RequestID is nil when an operator vouched.
type UserEmailVerified struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// RequestID is the verification request that was completed, or the
	// password reset request for VerifiedByPasswordReset; nil for an operator.
	RequestID uuid.UUID `json:"request_id"`
	// Method says how the address was verified.
	Method VerificationMethod `json:"method"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserLoginAttempted records every login attempt on a known user before its
// outcome, so that refused attempts are in the audit trail too.
type UserLoginAttempted struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// IP is the client address of the request.
	IP string `json:"ip" personal:"true"`
	// UserAgent is the raw User-Agent header of the request.
	UserAgent string `json:"user_agent" personal:"true"`
	// Device is the user agent as parsed for people, e.g. "Firefox on Linux".
	Device string `json:"device" personal:"true"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserLoginSucceeded starts a session whose first refresh generation is 1
// and whose tokens carry TokenVersion.
type UserLoginSucceeded struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the new session.
	SessionID uuid.UUID `json:"session_id"`
	// IP is the client address of the request.
	IP string `json:"ip" personal:"true"`
	// UserAgent is the raw User-Agent header of the request.
	UserAgent string `json:"user_agent" personal:"true"`
	// Device is the user agent as parsed for people, e.g. "Firefox on Linux".
	Device string `json:"device" personal:"true"`
	// TokenVersion is the user's token version the session's first tokens carry.
	TokenVersion int64 `json:"token_version"`
	// ExpiresAt is when the first refresh token expires.
	ExpiresAt time.Time `json:"expires_at"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserLoginFailed records a refused login; FailedAttempts is the consecutive
// count after this attempt, which is what lockout decides on.
type UserLoginFailed struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// Reason says why the login was refused.
	Reason LoginFailureReason `json:"reason"`
	// FailedAttempts is the consecutive failure count after this attempt.
	FailedAttempts int `json:"failed_attempts"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserLockedOut records that consecutive failures locked the account until Until.
type UserLockedOut struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// FailedAttempts is the failure count that triggered the lockout.
	FailedAttempts int `json:"failed_attempts"`
	// Until is when logins are accepted again.
	Until time.Time `json:"until"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserLoggedOut records that a session was ended by its own holder (DELETE /sessions/current).
type UserLoggedOut struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the session that logged out.
	SessionID uuid.UUID `json:"session_id"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserSessionRevoked records that a session was ended for Reason; its access tokens stop working at once.
type UserSessionRevoked struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the revoked session.
	SessionID uuid.UUID `json:"session_id"`
	// Reason says why the session was revoked.
	Reason RevokeReason `json:"reason"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserSessionEvicted records that a new login pushed the oldest session out because the user reached Limit sessions.
type UserSessionEvicted struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the evicted session.
	SessionID uuid.UUID `json:"session_id"`
	// Limit is the session limit that applied.
	Limit int `json:"limit"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserTokenRefreshed records a refresh: the session moves to
// RefreshGeneration, every earlier generation is spent, and the new tokens
// carry TokenVersion.
type UserTokenRefreshed struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the refreshed session.
	SessionID uuid.UUID `json:"session_id"`
	// RefreshGeneration is the generation of the newly issued refresh token.
	RefreshGeneration int64 `json:"refresh_generation"`
	// TokenVersion is the token version the new tokens carry.
	TokenVersion int64 `json:"token_version"`
	// IP is the client address of the request.
	IP string `json:"ip" personal:"true"`
	// UserAgent is the raw User-Agent header of the request.
	UserAgent string `json:"user_agent" personal:"true"`
	// ExpiresAt is when the new refresh token expires.
	ExpiresAt time.Time `json:"expires_at"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserRefreshTokenReuseDetected records that a spent refresh generation was
// presented, which means the token was copied; the session is revoked with it.
type UserRefreshTokenReuseDetected struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the session whose spent token was presented.
	SessionID uuid.UUID `json:"session_id"`
	// PresentedGeneration is the spent generation that was presented.
	PresentedGeneration int64 `json:"presented_generation"`
	// CurrentGeneration was the only generation still valid.
	CurrentGeneration int64 `json:"current_generation"`
	// IP is the client address of the request.
	IP string `json:"ip" personal:"true"`
	// UserAgent is the raw User-Agent header of the request.
	UserAgent string `json:"user_agent" personal:"true"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserPasswordResetRequested records that a reset link was issued; the
// link's secret lives, hashed, outside the log and names RequestID.
type UserPasswordResetRequested struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// RequestID names the reset link's stored secret.
	RequestID uuid.UUID `json:"request_id"`
	// IP is the client address of the request.
	IP string `json:"ip" personal:"true"`
	// UserAgent is the raw User-Agent header of the request.
	UserAgent string `json:"user_agent" personal:"true"`
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time `json:"expires_at"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserPasswordResetCompleted records that the password was replaced through
// reset RequestID; every session is revoked in the same decision.
type UserPasswordResetCompleted struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// RequestID is the reset request that was completed.
	RequestID uuid.UUID `json:"request_id"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserPasswordRehashed records that the stored password was re-encoded with
// current parameters after a login, so operators can see old encodings fade.
type UserPasswordRehashed struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserRoleGranted records that the user now holds Role.
type UserRoleGranted struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// Role is the role granted.
	Role Role `json:"role"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserRoleRevoked records that the user no longer holds Role.
type UserRoleRevoked struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// Role is the role revoked.
	Role Role `json:"role"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserTokensRotated records that the user's minimum token version was raised
// to TokenVersion; tokens issued at an older version stop being accepted once
// the grace period is over.
type UserTokensRotated struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// TokenVersion is the new minimum token version.
	TokenVersion int64 `json:"token_version"`
	// Reason is the administrator's explanation, for the audit trail.
	Reason string `json:"reason"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// UserAccessDenied records that an authenticated request lacked the
// permission its route requires.
type UserAccessDenied struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the session whose token made the request.
	SessionID uuid.UUID `json:"session_id"`
	// Method is the HTTP method.
	Method string `json:"method"`
	// Route is the route template, so other users' ids stay out of this user's stream.
	Route string `json:"route"`
	// Permission is what the route requires and the user lacks.
	Permission Permission `json:"permission"`
	// IP is the client address of the request.
	IP string `json:"ip" personal:"true"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// EventType returns the registered name "UserRegistered".
func (UserRegistered) EventType() string { return "UserRegistered" }

// EventType returns the registered name "UserVerificationRequested".
func (UserVerificationRequested) EventType() string { return "UserVerificationRequested" }

// EventType returns the registered name "UserEmailVerified".
func (UserEmailVerified) EventType() string { return "UserEmailVerified" }

// EventType returns the registered name "UserLoginAttempted".
func (UserLoginAttempted) EventType() string { return "UserLoginAttempted" }

// EventType returns the registered name "UserLoginSucceeded".
func (UserLoginSucceeded) EventType() string { return "UserLoginSucceeded" }

// EventType returns the registered name "UserLoginFailed".
func (UserLoginFailed) EventType() string { return "UserLoginFailed" }

// EventType returns the registered name "UserLockedOut".
func (UserLockedOut) EventType() string { return "UserLockedOut" }

// EventType returns the registered name "UserLoggedOut".
func (UserLoggedOut) EventType() string { return "UserLoggedOut" }

// EventType returns the registered name "UserSessionRevoked".
func (UserSessionRevoked) EventType() string { return "UserSessionRevoked" }

// EventType returns the registered name "UserSessionEvicted".
func (UserSessionEvicted) EventType() string { return "UserSessionEvicted" }

// EventType returns the registered name "UserTokenRefreshed".
func (UserTokenRefreshed) EventType() string { return "UserTokenRefreshed" }

// EventType returns the registered name "UserRefreshTokenReuseDetected".
func (UserRefreshTokenReuseDetected) EventType() string { return "UserRefreshTokenReuseDetected" }

// EventType returns the registered name "UserPasswordResetRequested".
func (UserPasswordResetRequested) EventType() string { return "UserPasswordResetRequested" }

// EventType returns the registered name "UserPasswordResetCompleted".
func (UserPasswordResetCompleted) EventType() string { return "UserPasswordResetCompleted" }

// EventType returns the registered name "UserPasswordRehashed".
func (UserPasswordRehashed) EventType() string { return "UserPasswordRehashed" }

// EventType returns the registered name "UserRoleGranted".
func (UserRoleGranted) EventType() string { return "UserRoleGranted" }

// EventType returns the registered name "UserRoleRevoked".
func (UserRoleRevoked) EventType() string { return "UserRoleRevoked" }

// EventType returns the registered name "UserTokensRotated".
func (UserTokensRotated) EventType() string { return "UserTokensRotated" }

// EventType returns the registered name "UserAccessDenied".
func (UserAccessDenied) EventType() string { return "UserAccessDenied" }

func (UserRegistered) isUserEvent()                {}
func (UserVerificationRequested) isUserEvent()     {}
func (UserEmailVerified) isUserEvent()             {}
func (UserLoginAttempted) isUserEvent()            {}
func (UserLoginSucceeded) isUserEvent()            {}
func (UserLoginFailed) isUserEvent()               {}
func (UserLockedOut) isUserEvent()                 {}
func (UserLoggedOut) isUserEvent()                 {}
func (UserSessionRevoked) isUserEvent()            {}
func (UserSessionEvicted) isUserEvent()            {}
func (UserTokenRefreshed) isUserEvent()            {}
func (UserRefreshTokenReuseDetected) isUserEvent() {}
func (UserPasswordResetRequested) isUserEvent()    {}
func (UserPasswordResetCompleted) isUserEvent()    {}
func (UserPasswordRehashed) isUserEvent()          {}
func (UserRoleGranted) isUserEvent()               {}
func (UserRoleRevoked) isUserEvent()               {}
func (UserTokensRotated) isUserEvent()             {}
func (UserAccessDenied) isUserEvent()              {}

// AllEvents returns a zero value of every user event type, so that
// registration and contract tests can prove none was forgotten; keep it in
// step with the list in commands.RegisterEvents.
func AllEvents() []Event {
	return []Event{
		UserRegistered{},
		UserVerificationRequested{},
		UserEmailVerified{},
		UserLoginAttempted{},
		UserLoginSucceeded{},
		UserLoginFailed{},
		UserLockedOut{},
		UserLoggedOut{},
		UserSessionRevoked{},
		UserSessionEvicted{},
		UserTokenRefreshed{},
		UserRefreshTokenReuseDetected{},
		UserPasswordResetRequested{},
		UserPasswordResetCompleted{},
		UserPasswordRehashed{},
		UserRoleGranted{},
		UserRoleRevoked{},
		UserTokensRotated{},
		UserAccessDenied{},
		UserAuditTrailViewed{},
		UserErased{},
	}
}
