package commands

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// The errors below are declared here rather than in the adapters so that web
// can map them to problem details without importing an adapter; the adapters
// re-export the same values, so errors.Is holds whichever name a caller uses.
var (
	// ErrPasswordTooShort means a new password has fewer than 12 characters.
	ErrPasswordTooShort = errors.New("password is too short")
	// ErrPasswordTooLong means a new password has more than 128 characters.
	ErrPasswordTooLong = errors.New("password is too long")
	// ErrPasswordCommon means a new password is on the list of commonly used passwords.
	ErrPasswordCommon = errors.New("password is too common")
	// ErrPasswordHashMalformed means a stored password hash cannot be read, which points at corrupt storage, not at a wrong password.
	ErrPasswordHashMalformed = errors.New("password hash is malformed")

	// ErrTokenExpired means an access token was genuine but its lifetime is over, so the client should refresh rather than log in again.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenInvalid means an access token is malformed, forged, signed with another algorithm or key, or meant for another issuer or audience.
	ErrTokenInvalid = errors.New("token invalid")
)

// PasswordPolicy decides whether a password may be chosen at registration or
// reset (NIST SP 800-63B: length and a blocklist, no composition rules).
type PasswordPolicy interface {
	// Check returns nil when pw is acceptable, otherwise exactly one of
	// ErrPasswordTooShort, ErrPasswordTooLong or ErrPasswordCommon (possibly
	// wrapped), so web can report it as a field error.
	Check(pw string) error
}

// PasswordHasher turns passwords into self-describing hashes and checks them;
// the encoded form carries its own parameters so they can be raised later.
type PasswordHasher interface {
	// Hash returns the encoded hash of pw with the current parameters; it
	// fails only if the system's random source does.
	Hash(pw string) (string, error)

	// Verify reports whether pw matches encoded and, only when it does
	// (needsRehash implies ok), whether encoded was made with parameters other
	// than the current ones so the caller should store a fresh Hash. A wrong
	// password is ok == false with a nil error; err is
	// ErrPasswordHashMalformed (wrapped) only when encoded cannot be read.
	Verify(pw, encoded string) (ok bool, needsRehash bool, err error)

	// VerifyDummy spends the same work as Verify against a fixed hash and
	// discards the result, so a login for an unknown email takes as long as
	// one with a wrong password and timing does not reveal which emails exist.
	VerifyDummy(pw string)
}

// AccessClaims is what an access token asserts about its bearer.
type AccessClaims struct {
	// Subject is the user the token was issued to.
	Subject uuid.UUID
	// SessionID is the session the token belongs to, so revoking the session revokes the token.
	SessionID uuid.UUID
	// Roles are the user's roles at issue time; the session check is the authority when they change.
	Roles []string
	// TokenVersion is compared with the minimum version raised by token rotation.
	TokenVersion int64
	// ID is the token's unique id (jti), for logs and audit events.
	ID string
	// IssuedAt is when the token was minted (whole seconds).
	IssuedAt time.Time
	// ExpiresAt is when the token stops being accepted (whole seconds).
	ExpiresAt time.Time
}

// AccessTokens mints and checks the short-lived bearer tokens that
// authenticate API requests without a database round trip per signature.
type AccessTokens interface {
	// Issue signs a token for c. The issuer sets IssuedAt and ExpiresAt from
	// its own clock and fills ID when it is empty; expiresAt is the expiry
	// written into the token. It fails only if signing fails.
	Issue(c AccessClaims) (token string, expiresAt time.Time, err error)

	// Verify returns the claims of a genuine, current token. It returns
	// ErrTokenExpired for a genuine token past its lifetime and
	// ErrTokenInvalid (possibly wrapped) for anything else that is wrong.
	Verify(token string) (AccessClaims, error)
}

// SecretTokens makes the opaque, single-use secrets handed to clients (refresh,
// email-verification and password-reset tokens). Only the digest is stored,
// so a leak of the database does not leak usable tokens, and the digest is
// deterministic so the token can be found by an index lookup.
type SecretTokens interface {
	// New returns a fresh random token for the client and the digest to
	// store; it fails only if the system's random source does.
	New() (token string, digest []byte, err error)

	// Digest returns the stored form of token, for lookup; it never fails,
	// a malformed token simply matches nothing.
	Digest(token string) []byte
}
