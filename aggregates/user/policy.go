package user

import "time"

// The limits of the identity contract (docs/identity.md). They are constants rather than configuration because
// they are part of the security contract the API documents; only the session
// limit is a parameter (LoginAttempt.SessionLimit), as the issue asks.
const (
	// MaxFailedLogins consecutive password failures lock the account.
	MaxFailedLogins = 5
	// LockoutDuration is how long a lockout lasts; later failures do not extend it.
	LockoutDuration = 15 * time.Minute
	// FailureWindow is how long a password failure keeps counting toward a
	// lockout: failures are consecutive only while each follows the
	// previous one within it, so old mistakes do not add up over months
	// and a name's lockout state can be forgotten once it has passed.
	FailureWindow = 24 * time.Hour
	// DefaultSessionLimit is the per-user session limit when a login names none.
	DefaultSessionLimit = 10
	// MaxResetRequests password resets may be requested per user within ResetRequestWindow.
	MaxResetRequests = 3
	// ResetRequestWindow is the rolling window MaxResetRequests counts over.
	ResetRequestWindow = time.Hour
	// PasswordResetTTL is how long a password reset request can be completed.
	PasswordResetTTL = 15 * time.Minute
	// VerificationTTL is how long an email verification request can be completed.
	VerificationTTL = 24 * time.Hour
	// MaxVerificationRequests verification links may be issued per user
	// within VerificationRequestWindow, the one mailed at registration included.
	MaxVerificationRequests = 3
	// VerificationRequestWindow is the rolling window MaxVerificationRequests counts over.
	VerificationRequestWindow = time.Hour
)
