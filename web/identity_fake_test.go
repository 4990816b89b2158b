package web_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/authtoken"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// Settings of the test JWT: the real adapter, so tampered tokens meet the
// verifier production uses.
const (
	testJWTSecret = "0123456789abcdef0123456789abcdef-test"
	testIssuer    = "http://dashtam.test"
)

// testEpoch is when fake clocks start: a fixed instant, so nothing in a
// test depends on the wall clock.
var testEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeIdentity is an in-memory identity.Service for web tests. Authenticate
// runs the real authtoken.JWT verifier, then the fake's own session and
// token-version checks; the use cases answer canned values, or the error a
// test put under the input's email (or token) in fail.
type fakeIdentity struct {
	JWT   *authtoken.JWT
	Clock *fakeClock

	mu         sync.Mutex
	fail       map[string]error // by email, token or refresh token
	revoked    map[uuid.UUID]bool
	minVersion int64
	denied     []user.AccessDenial
	deniedFrom []commands.RequestContext // the RequestContext of each denial
	passwords  []string                  // every password Register received
}

// newFakeIdentity builds a fake whose JWTs are issued and verified at clock.
func newFakeIdentity(tb testing.TB, clock *fakeClock) *fakeIdentity {
	tb.Helper()
	j, err := authtoken.NewJWT(authtoken.JWTConfig{Secret: []byte(testJWTSecret), Issuer: testIssuer, Now: clock.Now})
	require.NoError(tb, err)
	return &fakeIdentity{JWT: j, Clock: clock, fail: map[string]error{}, revoked: map[uuid.UUID]bool{}}
}

var _ identity.Service = (*fakeIdentity)(nil)

// Fail makes every use case given key (an email or a token) return err.
func (f *fakeIdentity) Fail(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[key] = err
}

// Revoke ends a session, as logout or reuse detection would.
func (f *fakeIdentity) Revoke(sessionID uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[sessionID] = true
}

// SetMinVersion rotates tokens below v out.
func (f *fakeIdentity) SetMinVersion(v int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.minVersion = v
}

// Denied lists the refusals RecordAccessDenied was called with.
func (f *fakeIdentity) Denied() []user.AccessDenial {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]user.AccessDenial(nil), f.denied...)
}

// DeniedFrom lists the request contexts RecordAccessDenied was called with.
func (f *fakeIdentity) DeniedFrom() []commands.RequestContext {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]commands.RequestContext(nil), f.deniedFrom...)
}

func (f *fakeIdentity) failure(key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[key]
}

// MustToken issues an access token for a fresh user and session holding roles.
func (f *fakeIdentity) MustToken(tb testing.TB, roles ...user.Role) (token string, p commands.Principal) {
	tb.Helper()
	p = commands.Principal{UserID: uuid.New(), SessionID: uuid.New(), Roles: roles}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	token, _, err := f.JWT.Issue(commands.AccessClaims{Subject: p.UserID, SessionID: p.SessionID, Roles: names})
	require.NoError(tb, err)
	return token, p
}

func (f *fakeIdentity) tokens(userID uuid.UUID) (identity.Tokens, error) {
	sid := uuid.New()
	tok, _, err := f.JWT.Issue(commands.AccessClaims{Subject: userID, SessionID: sid, Roles: []string{"user"}})
	if err != nil {
		return identity.Tokens{}, err
	}
	return identity.Tokens{AccessToken: tok, RefreshToken: "refresh-" + sid.String(), TokenType: "Bearer",
		ExpiresIn: authtoken.DefaultTTL, SessionID: sid}, nil
}

func (f *fakeIdentity) view(email string) identity.UserView {
	return identity.UserView{ID: uuid.New(), Email: email, Roles: []user.Role{user.RoleUser},
		CreatedAt: f.Clock.Now()}
}

// Register answers a new unverified user.
func (f *fakeIdentity) Register(_ context.Context, in identity.RegisterInput) (identity.UserView, error) {
	f.mu.Lock()
	f.passwords = append(f.passwords, in.Password)
	f.mu.Unlock()
	if err := f.failure(in.Email); err != nil {
		return identity.UserView{}, err
	}
	return f.view(in.Email), nil
}

// Passwords returns every password Register received, in order.
func (f *fakeIdentity) Passwords() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.passwords...)
}

// VerifyEmail accepts any token not set to fail.
func (f *fakeIdentity) VerifyEmail(_ context.Context, token string, _ commands.RequestContext) error {
	return f.failure(token)
}

// Login answers ErrInvalidCredentials for the password "wrong", else tokens.
func (f *fakeIdentity) Login(_ context.Context, in identity.LoginInput) (identity.Tokens, error) {
	if err := f.failure(in.Email); err != nil {
		return identity.Tokens{}, err
	}
	if in.Password == "wrong" {
		return identity.Tokens{}, identity.ErrInvalidCredentials
	}
	return f.tokens(uuid.New())
}

// Refresh answers new tokens for any refresh token not set to fail, after
// asking admit about the token's user, as the real service does once it has
// looked the token up.
func (f *fakeIdentity) Refresh(ctx context.Context, refreshToken string, _ commands.RequestContext, admit identity.Admit) (identity.Tokens, error) {
	if err := f.failure(refreshToken); err != nil {
		return identity.Tokens{}, err
	}
	if admit != nil {
		if err := admit(ctx, refreshTokenUser(refreshToken)); err != nil {
			return identity.Tokens{}, err
		}
	}
	return f.tokens(uuid.New())
}

// refreshTokenUser is the user the fake takes a refresh token to belong to:
// a fixed function of the token, so one token stands for one user however
// often it is presented (the fake never spends tokens).
func refreshTokenUser(refreshToken string) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("refresh:"+refreshToken))
}

// Authenticate verifies the JWT for real, then checks revocation and version.
func (f *fakeIdentity) Authenticate(_ context.Context, accessToken string) (commands.Principal, error) {
	c, err := f.JWT.Verify(accessToken)
	if err != nil {
		return commands.Principal{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked[c.SessionID] || c.TokenVersion < f.minVersion {
		return commands.Principal{}, identity.ErrSessionRevoked
	}
	roles := make([]user.Role, len(c.Roles))
	for i, r := range c.Roles {
		roles[i] = user.Role(r)
	}
	return commands.Principal{UserID: c.Subject, SessionID: c.SessionID, Roles: roles}, nil
}

// Me answers the caller.
func (f *fakeIdentity) Me(_ context.Context, p commands.Principal) (identity.UserView, error) {
	v := f.view("me@example.com")
	v.ID, v.Roles, v.Verified = p.UserID, p.Roles, true
	return v, nil
}

func (f *fakeIdentity) session(p commands.Principal, id uuid.UUID) identity.SessionView {
	now := f.Clock.Now()
	return identity.SessionView{ID: id, Device: "Firefox on Linux", IP: "127.0.0.1", UserAgent: "test",
		CreatedAt: now, LastActive: now, ExpiresAt: now.Add(30 * 24 * time.Hour), Current: id == p.SessionID, Status: "active"}
}

// Sessions answers the caller's current session only.
func (f *fakeIdentity) Sessions(_ context.Context, p commands.Principal) ([]identity.SessionView, error) {
	return []identity.SessionView{f.session(p, p.SessionID)}, nil
}

// Session answers the caller's current session; any other id is another
// user's, or missing: ErrNotFound.
func (f *fakeIdentity) Session(_ context.Context, p commands.Principal, id uuid.UUID) (identity.SessionView, error) {
	if id != p.SessionID {
		return identity.SessionView{}, identity.ErrNotFound
	}
	return f.session(p, id), nil
}

// RevokeSession ends the caller's session id; any other is ErrNotFound.
func (f *fakeIdentity) RevokeSession(_ context.Context, p commands.Principal, id uuid.UUID, _ commands.RequestContext) error {
	if id != p.SessionID {
		return identity.ErrNotFound
	}
	f.Revoke(id)
	return nil
}

// RevokeOtherSessions does nothing: the fake keeps one session per user.
func (f *fakeIdentity) RevokeOtherSessions(context.Context, commands.Principal, commands.RequestContext) error {
	return nil
}

// RequestEmailVerification fails as set for the email.
func (f *fakeIdentity) RequestEmailVerification(_ context.Context, email string, _ commands.RequestContext) error {
	return f.failure(email)
}

// RequestPasswordReset fails as set for the email.
func (f *fakeIdentity) RequestPasswordReset(_ context.Context, email string, _ commands.RequestContext) error {
	return f.failure(email)
}

// ResetPassword fails as set for the token, else by the real length rule's errors.
func (f *fakeIdentity) ResetPassword(_ context.Context, token, newPassword string, _ commands.RequestContext) error {
	if err := f.failure(token); err != nil {
		return err
	}
	if len(newPassword) < 12 {
		return commands.ErrPasswordTooShort
	}
	return nil
}

func (f *fakeIdentity) config() identity.SecurityConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	return identity.SecurityConfig{AccessTokenTTL: authtoken.DefaultTTL, RefreshTokenTTL: 30 * 24 * time.Hour,
		GlobalTokenVersion: f.minVersion, RotationGracePeriod: time.Minute, SessionLimit: 10}
}

// RotateAllTokens answers the configuration; tests rotate with
// SetMinVersion, so a call in the role matrix does not spoil later ones.
func (f *fakeIdentity) RotateAllTokens(_ context.Context, _ commands.Principal, reason string, _ commands.RequestContext) (identity.SecurityConfig, error) {
	if err := f.failure(reason); err != nil {
		return identity.SecurityConfig{}, err
	}
	return f.config(), nil
}

// RotateUserTokens fails as set for the reason.
func (f *fakeIdentity) RotateUserTokens(_ context.Context, _ commands.Principal, _ uuid.UUID, reason string, _ commands.RequestContext) error {
	return f.failure(reason)
}

// SecurityConfig answers the fake's settings.
func (f *fakeIdentity) SecurityConfig(context.Context) (identity.SecurityConfig, error) {
	return f.config(), nil
}

// SetRoles answers the user with roles, or fails as set for the joined role names.
func (f *fakeIdentity) SetRoles(_ context.Context, _ commands.Principal, userID uuid.UUID, roles []user.Role, _ commands.RequestContext) (identity.UserView, error) {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	if err := f.failure(strings.Join(names, ",")); err != nil {
		return identity.UserView{}, err
	}
	v := f.view("someone@example.com")
	v.ID, v.Roles = userID, roles
	return v, nil
}

// RecordAccessDenied remembers the refused request.
func (f *fakeIdentity) RecordAccessDenied(_ context.Context, _ commands.Principal, d user.AccessDenial, rc commands.RequestContext) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied = append(f.denied, d)
	f.deniedFrom = append(f.deniedFrom, rc)
	return nil
}

// CreateUser answers a new user.
func (f *fakeIdentity) CreateUser(_ context.Context, email, _ string, role user.Role, verified bool) (identity.UserView, error) {
	v := f.view(email)
	v.Roles, v.Verified = []user.Role{role}, verified
	return v, nil
}

func (f *fakeIdentity) EraseSelf(_ context.Context, _ commands.Principal, password string, _ commands.RequestContext) error {
	if password == "wrong" {
		return identity.ErrInvalidCredentials
	}
	return nil
}

func (f *fakeIdentity) EraseUser(context.Context, commands.Principal, uuid.UUID, commands.RequestContext) error {
	return nil
}
