// Package identity holds the use cases of users, sessions and security
// administration (docs/identity.md): registration, email verification, login,
// refresh-token rotation, logout and revocation, password reset, token
// rotation and roles. Every step is an event on the user's stream; the
// security tables that must answer at once (credentials, session status,
// token digests, email uniqueness) are written in the same transaction as the
// events, so that a revoked session stops working immediately.
package identity

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
)

// Service is the identity API the web layer consumes. Methods return the
// errors below (or those of aggregates/user and commands, wrapped) so that the
// web layer maps them to problem details in one place.
type Service interface {
	// Register creates an unverified user and mails a verification link.
	// Errors: ErrEmailTaken, commands.ErrPassword*, ErrInvalidEmail.
	Register(ctx context.Context, in RegisterInput) (UserView, error)
	// VerifyEmail consumes a verification token. Errors: ErrTokenNotFound (unknown, used or expired).
	VerifyEmail(ctx context.Context, token string, rc commands.RequestContext) error
	// RequestEmailVerification mails a new verification link if the email
	// belongs to an unverified user within the hourly allowance; it answers
	// the same (nil) for an unknown, verified or over-limit email.
	RequestEmailVerification(ctx context.Context, email string, rc commands.RequestContext) error
	// Login checks credentials and opens a session. Errors: ErrInvalidCredentials
	// (unknown email and wrong password alike), user.ErrEmailNotVerified,
	// *user.LockedError (errors.Is user.ErrLocked).
	Login(ctx context.Context, in LoginInput) (Tokens, error)
	// Refresh rotates a refresh token, asking admit (when not nil) about the
	// token's user before anything is written. Errors: ErrInvalidRefreshToken
	// (unknown, expired, reused — reuse also revokes the session), and
	// admit's error unchanged.
	Refresh(ctx context.Context, refreshToken string, rc commands.RequestContext, admit Admit) (Tokens, error)
	// Authenticate verifies an access token and that its session is still
	// active and its token version accepted. Errors: commands.ErrTokenExpired,
	// commands.ErrTokenInvalid, ErrSessionRevoked.
	Authenticate(ctx context.Context, accessToken string) (commands.Principal, error)
	// Me returns the principal's own user. Errors: ErrNotFound.
	Me(ctx context.Context, p commands.Principal) (UserView, error)
	// Sessions lists the principal's sessions, newest first.
	Sessions(ctx context.Context, p commands.Principal) ([]SessionView, error)
	// Session returns one of the principal's sessions. Errors: ErrNotFound (also for another user's session).
	Session(ctx context.Context, p commands.Principal, sessionID uuid.UUID) (SessionView, error)
	// RevokeSession ends one of the principal's sessions (the current one: logout). Errors: ErrNotFound.
	RevokeSession(ctx context.Context, p commands.Principal, sessionID uuid.UUID, rc commands.RequestContext) error
	// RevokeOtherSessions ends every session of the principal but the current one.
	RevokeOtherSessions(ctx context.Context, p commands.Principal, rc commands.RequestContext) error
	// RequestPasswordReset mails a reset link if the email belongs to a user;
	// it answers the same (nil) whether or not it does.
	RequestPasswordReset(ctx context.Context, email string, rc commands.RequestContext) error
	// ResetPassword sets a new password and revokes every session.
	// Errors: ErrTokenNotFound, commands.ErrPassword*.
	ResetPassword(ctx context.Context, token, newPassword string, rc commands.RequestContext) error
	// RotateAllTokens raises the global minimum token version.
	RotateAllTokens(ctx context.Context, p commands.Principal, reason string, rc commands.RequestContext) (SecurityConfig, error)
	// RotateUserTokens raises one user's minimum token version. Errors: ErrNotFound.
	RotateUserTokens(ctx context.Context, p commands.Principal, userID uuid.UUID, reason string, rc commands.RequestContext) error
	// SecurityConfig reports the token settings and versions.
	SecurityConfig(ctx context.Context) (SecurityConfig, error)
	// SetRoles replaces a user's roles. Errors: ErrNotFound, user.ErrLastRole, user.ErrInvalidRole.
	SetRoles(ctx context.Context, p commands.Principal, userID uuid.UUID, roles []user.Role, rc commands.RequestContext) (UserView, error)
	// RecordAccessDenied records a refused request on the principal's
	// stream: d names its method, route template and the permission it
	// lacked; its session, address and time are taken from p, rc and the
	// clock. Errors: ErrNotFound.
	RecordAccessDenied(ctx context.Context, p commands.Principal, d user.AccessDenial, rc commands.RequestContext) error
	// CreateUser bootstraps a user from the command line (e.g. the first admin).
	CreateUser(ctx context.Context, email, password string, role user.Role, verified bool) (UserView, error)
	// EraseSelf erases the principal (GDPR Art. 17) once their password
	// checks out: their personal data shredded, sessions ended, connections
	// disconnected. Errors: ErrInvalidCredentials, ErrErasureUnavailable.
	EraseSelf(ctx context.Context, p commands.Principal, password string, rc commands.RequestContext) error
	// EraseUser erases userID at an administrator's request; erasing an
	// erased user again is not an error. Errors: ErrNotFound, ErrErasureUnavailable.
	EraseUser(ctx context.Context, p commands.Principal, userID uuid.UUID, rc commands.RequestContext) error
}

// Errors of the identity use cases, beyond those of aggregates/user and commands.
var (
	// ErrEmailTaken means another user registered the email (409).
	ErrEmailTaken = errors.New("email already registered")
	// ErrInvalidEmail means the email is not a single valid address.
	ErrInvalidEmail = errors.New("invalid email")
	// ErrInvalidCredentials means the email is unknown or the password wrong; the two are never told apart.
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrInvalidRefreshToken means the refresh token is unknown, expired, spent or its session revoked.
	ErrInvalidRefreshToken = errors.New("invalid refresh token")
	// ErrSessionRevoked means the access token's session has ended or its version was rotated out.
	ErrSessionRevoked = errors.New("session revoked")
	// ErrTokenNotFound means a verification or reset token is unknown, used or expired.
	ErrTokenNotFound = errors.New("token not found")
	// ErrNotFound means the resource does not exist or belongs to another user.
	ErrNotFound = errors.New("not found")
)

// Admit decides whether a request may go on once its user is known, which
// for a refresh is only after the token in the body has been looked up. It
// lets the web layer charge the per-user refresh rate limit (docs/identity.md, rate limits)
// against the user the service already resolved — no second lookup of the
// token, and no rate-limit policy, store or HTTP header in this package. A
// non-nil error refuses the request and is returned to the caller as is.
type Admit func(ctx context.Context, userID uuid.UUID) error

// RegisterInput is a registration request.
type RegisterInput struct {
	Email    string
	Password string
	commands.RequestContext
}

// LoginInput is a login request.
type LoginInput struct {
	Email    string
	Password string
	commands.RequestContext
}

// Tokens is what login and refresh answer.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	TokenType    string // always "Bearer"
	ExpiresIn    time.Duration
	SessionID    uuid.UUID
}

// UserView is a user as the API shows it.
type UserView struct {
	ID        uuid.UUID
	Email     string
	Verified  bool
	Roles     []user.Role
	CreatedAt time.Time
}

// SessionView is a session as the API shows it.
type SessionView struct {
	ID         uuid.UUID
	Device     string
	IP         string
	UserAgent  string
	CreatedAt  time.Time
	LastActive time.Time
	ExpiresAt  time.Time
	Current    bool
	Status     string
}

// SecurityConfig is the token policy and the current minimum versions.
type SecurityConfig struct {
	AccessTokenTTL      time.Duration
	RefreshTokenTTL     time.Duration
	GlobalTokenVersion  int64
	RotationGracePeriod time.Duration
	SessionLimit        int
	LastRotatedAt       *time.Time
}
