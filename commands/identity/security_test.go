package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/adapters/password"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// TestLockout: five wrong passwords lock the account for 15 minutes, during
// which even the right one is refused; after the window (on the injected
// clock) it is accepted again.
func TestLockout(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	v := e.MustRegister("fay@example.com")
	wrong := identity.LoginInput{Email: "fay@example.com", Password: "wrong password number", RequestContext: rc}
	for i := 1; i < user.MaxFailedLogins; i++ {
		if _, err := e.h.Login(ctx, wrong); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v, want ErrInvalidCredentials", i, err)
		}
	}
	_, err := e.h.Login(ctx, wrong)
	var locked *user.LockedError
	if !errors.As(err, &locked) || !errors.Is(err, user.ErrLocked) {
		t.Fatalf("fifth failure: %v, want *user.LockedError", err)
	}
	if want := e.clock.Now().Add(user.LockoutDuration); !locked.Until.Equal(want) {
		t.Fatalf("locked until %v, want %v", locked.Until, want)
	}
	e.clock.Advance(user.LockoutDuration - time.Second)
	if _, err := e.h.Login(ctx, identity.LoginInput{Email: "fay@example.com", Password: goodPassword, RequestContext: rc}); !errors.Is(err, user.ErrLocked) {
		t.Fatalf("right password while locked: %v, want ErrLocked", err)
	}
	e.clock.Advance(time.Second)
	e.MustAuthenticate(e.MustLogin("fay@example.com").AccessToken)

	types := eventTypes(e.events(v.ID))
	if n := countOf(types, "UserLockedOut"); n != 1 {
		t.Fatalf("%d UserLockedOut in %v", n, types)
	}
	if n := countOf(types, "UserLoginAttempted"); n != 7 {
		t.Fatalf("%d UserLoginAttempted, want 7 (every attempt recorded): %v", n, types)
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestPasswordReset: the request answers alike for unknown emails, the
// mailed token sets a new password once, every session is revoked, and at
// most three links per hour are sent.
func TestPasswordReset(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	v := e.MustRegister("gil@example.com")
	a := e.MustLogin("gil@example.com")
	b := e.MustLogin("gil@example.com")

	if err := e.h.RequestPasswordReset(ctx, "nobody@example.com", rc); err != nil {
		t.Fatalf("reset for unknown email: %v", err)
	}
	if err := e.h.RequestPasswordReset(ctx, "GIL@example.com", rc); err != nil {
		t.Fatalf("reset request: %v", err)
	}
	token := e.MustMailedToken("gil@example.com", identity.ResetPasswordPath)
	if err := e.h.ResetPassword(ctx, token, "short", rc); !errors.Is(err, password.ErrTooShort) {
		t.Fatalf("reset to a short password: %v, want ErrTooShort", err)
	}
	const newPassword = "a brand new passphrase 99"
	if err := e.h.ResetPassword(ctx, token, newPassword, rc); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if err := e.h.ResetPassword(ctx, token, "yet another passphrase 1", rc); !errors.Is(err, identity.ErrTokenNotFound) {
		t.Fatalf("reset twice: %v, want ErrTokenNotFound", err)
	}
	for _, tok := range []identity.Tokens{a, b} {
		if _, err := e.h.Authenticate(ctx, tok.AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
			t.Fatalf("authenticate after reset: %v, want ErrSessionRevoked", err)
		}
		if _, err := e.h.Refresh(ctx, tok.RefreshToken, rc, nil); !errors.Is(err, identity.ErrInvalidRefreshToken) {
			t.Fatalf("refresh after reset: %v, want ErrInvalidRefreshToken", err)
		}
	}
	if _, err := e.h.Login(ctx, identity.LoginInput{Email: "gil@example.com", Password: goodPassword, RequestContext: rc}); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("old password: %v, want ErrInvalidCredentials", err)
	}
	if _, err := e.h.Login(ctx, identity.LoginInput{Email: "gil@example.com", Password: newPassword, RequestContext: rc}); err != nil {
		t.Fatalf("new password: %v", err)
	}

	// Two more requests fit in the hour, the fourth is answered alike but sends nothing.
	for range 3 {
		if err := e.h.RequestPasswordReset(ctx, "gil@example.com", rc); err != nil {
			t.Fatalf("reset request: %v", err)
		}
	}
	var resets int
	for _, m := range e.mails("gil@example.com") {
		if _, ok := mailtest.FindLinkToken(m, identity.ResetPasswordPath); ok {
			resets++
		}
	}
	if resets != user.MaxResetRequests {
		t.Fatalf("%d reset mails, want %d", resets, user.MaxResetRequests)
	}
	// An expired link is dead.
	last := e.MustMailedToken("gil@example.com", identity.ResetPasswordPath)
	e.clock.Advance(user.PasswordResetTTL)
	if err := e.h.ResetPassword(ctx, last, "late passphrase number 3", rc); !errors.Is(err, identity.ErrTokenNotFound) {
		t.Fatalf("expired reset: %v, want ErrTokenNotFound", err)
	}
	types := eventTypes(e.events(v.ID))
	if countOf(types, "UserPasswordResetCompleted") != 1 || countOf(types, "UserSessionRevoked") != 2 {
		t.Fatalf("events %v", types)
	}
	assertNoSecrets(t, e, "reset", []string{token, last, newPassword, goodPassword})
}

// TestUserRotation: after an administrator rotates one user's tokens, the
// user's earlier access tokens work through the grace period and not after
// it, the earlier refresh token is refused (revoking its session), and a new
// login works.
func TestUserRotation(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	admin := e.mustAdmin("root@example.com")
	v := e.MustRegister("hal@example.com")
	old := e.MustLogin("hal@example.com")
	other := e.MustLogin("hal@example.com")

	if err := e.h.RotateUserTokens(ctx, admin.Principal, v.ID, " ", rc); !errors.Is(err, user.ErrReasonRequired) {
		t.Fatalf("rotation without reason: %v, want ErrReasonRequired", err)
	}
	if err := e.h.RotateUserTokens(ctx, admin.Principal, admin.SessionID, "no such user", rc); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("rotation of unknown user: %v, want ErrNotFound", err)
	}
	if err := e.h.RotateUserTokens(ctx, admin.Principal, v.ID, "laptop stolen", rc); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	e.MustAuthenticate(old.AccessToken) // within grace
	fresh := e.MustLogin("hal@example.com")
	// Refreshing within grace moves a session onto the new version.
	renewed, err := e.h.Refresh(ctx, other.RefreshToken, rc, nil)
	if err != nil {
		t.Fatalf("refresh within grace: %v", err)
	}

	e.clock.Advance(e.deps.RotationGrace)
	if _, err := e.h.Authenticate(ctx, old.AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("old token after grace: %v, want ErrSessionRevoked", err)
	}
	if _, err := e.h.Refresh(ctx, old.RefreshToken, rc, nil); !errors.Is(err, identity.ErrInvalidRefreshToken) {
		t.Fatalf("old refresh after grace: %v, want ErrInvalidRefreshToken", err)
	}
	if s, err := e.h.Session(ctx, e.MustAuthenticate(fresh.AccessToken), old.SessionID); err != nil || s.Status != "revoked" {
		t.Fatalf("old session = %+v, %v", s, err)
	}
	e.MustAuthenticate(renewed.AccessToken)

	evs := e.events(v.ID)
	for _, ev := range evs {
		if ev.Type == "UserTokensRotated" && ev.Metadata.Actor != "user:"+admin.UserID.String() {
			t.Fatalf("rotation actor = %q", ev.Metadata.Actor)
		}
	}
	if countOf(eventTypes(evs), "UserTokensRotated") != 1 {
		t.Fatalf("events %v", eventTypes(evs))
	}
}

// TestGlobalRotation: a global rotation refuses every user's earlier tokens
// after the grace period, is reported by SecurityConfig and recorded on the
// acting administrator's stream.
func TestGlobalRotation(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	admin := e.mustAdmin("root@example.com")
	e.MustRegister("ida@example.com")
	old := e.MustLogin("ida@example.com")

	cfg, err := e.h.RotateAllTokens(ctx, admin.Principal, "signing key exposed", rc)
	if err != nil {
		t.Fatalf("rotate all: %v", err)
	}
	if cfg.GlobalTokenVersion != 1 || cfg.LastRotatedAt == nil || !cfg.LastRotatedAt.Equal(e.clock.Now()) ||
		cfg.RotationGracePeriod != time.Minute || cfg.SessionLimit != user.DefaultSessionLimit || cfg.RefreshTokenTTL != identity.DefaultRefreshTTL {
		t.Fatalf("config = %+v", cfg)
	}
	e.MustAuthenticate(old.AccessToken)
	fresh := e.MustLogin("ida@example.com")

	e.clock.Advance(time.Minute)
	if _, err := e.h.Authenticate(ctx, old.AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("old token after grace: %v, want ErrSessionRevoked", err)
	}
	if _, err := e.h.Refresh(ctx, old.RefreshToken, rc, nil); !errors.Is(err, identity.ErrInvalidRefreshToken) {
		t.Fatalf("old refresh after grace: %v, want ErrInvalidRefreshToken", err)
	}
	e.MustAuthenticate(fresh.AccessToken)
	if _, err := e.h.Refresh(ctx, fresh.RefreshToken, rc, nil); err != nil {
		t.Fatalf("fresh refresh: %v", err)
	}
	if _, err := e.h.Authenticate(ctx, admin.accessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("the admin's own old token: %v, want ErrSessionRevoked", err)
	}
	types := eventTypes(e.events(admin.UserID))
	if countOf(types, "SecurityTokensRotated") != 1 {
		t.Fatalf("admin events %v", types)
	}
	if got, _ := e.h.SecurityConfig(ctx); got.GlobalTokenVersion != 1 {
		t.Fatalf("config after = %+v", got)
	}
}

// adminPrincipal is an authenticated administrator and its access token.
type adminPrincipal struct {
	commands.Principal
	accessToken string
}

// mustAdmin bootstraps a verified admin as `dashtam users create` does and logs it in.
func (e *env) mustAdmin(email string) adminPrincipal {
	e.tb.Helper()
	v, err := e.h.CreateUser(context.Background(), email, goodPassword, user.RoleAdmin, true)
	if err != nil {
		e.tb.Fatalf("create admin: %v", err)
	}
	if !v.Verified || !slices.Equal(v.Roles, []user.Role{user.RoleAdmin}) {
		e.tb.Fatalf("admin view = %+v", v)
	}
	tok := e.MustLogin(email)
	return adminPrincipal{Principal: e.MustAuthenticate(tok.AccessToken), accessToken: tok.AccessToken}
}

// TestRolesApplyToIssuedTokens: Authenticate reports the current roles, so
// a role change takes effect without waiting for new tokens.
func TestRolesApplyToIssuedTokens(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	admin := e.mustAdmin("root@example.com")
	v := e.MustRegister("jo@example.com")
	tok := e.MustLogin("jo@example.com")
	got, err := e.h.SetRoles(ctx, admin.Principal, v.ID, []user.Role{user.RoleReadonly, user.RoleAuditor}, rc)
	if err != nil {
		t.Fatalf("set roles: %v", err)
	}
	want := []user.Role{user.RoleAuditor, user.RoleReadonly}
	if !slices.Equal(got.Roles, want) {
		t.Fatalf("roles = %v", got.Roles)
	}
	if p := e.MustAuthenticate(tok.AccessToken); !slices.Equal(p.Roles, want) {
		t.Fatalf("principal roles = %v, want %v", p.Roles, want)
	}
	if _, err := e.h.SetRoles(ctx, admin.Principal, v.ID, nil, rc); !errors.Is(err, user.ErrLastRole) {
		t.Fatalf("empty roles: %v, want ErrLastRole", err)
	}
	if _, err := e.h.SetRoles(ctx, admin.Principal, admin.SessionID, want, rc); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("unknown user: %v, want ErrNotFound", err)
	}
	p := e.MustAuthenticate(tok.AccessToken)
	denial := user.AccessDenial{Method: "POST", Route: "/api/v1/admin/security/rotations", Permission: user.PermissionSecurityAdmin}
	if err := e.h.RecordAccessDenied(ctx, p, denial, rc); err != nil {
		t.Fatalf("record access denied: %v", err)
	}
	evs := e.events(v.ID)
	types := eventTypes(evs)
	if countOf(types, "UserRoleGranted") != 2 || countOf(types, "UserRoleRevoked") != 1 || countOf(types, "UserAccessDenied") != 1 {
		t.Fatalf("events %v", types)
	}
	var recorded user.UserAccessDenied
	if last := evs[len(evs)-1]; last.Type != "UserAccessDenied" || json.Unmarshal([]byte(last.Payload), &recorded) != nil {
		t.Fatalf("last event %s %s", last.Type, last.Payload)
	}
	if recorded.Method != denial.Method || recorded.Route != denial.Route || recorded.Permission != denial.Permission || recorded.SessionID != p.SessionID {
		t.Fatalf("access denied event %+v, want %+v from session %s", recorded, denial, p.SessionID)
	}
}

// TestSessionLimitAndRevokeOthers: a login beyond the limit evicts the
// oldest session, and signing out everywhere else keeps only the current one.
func TestSessionLimitAndRevokeOthers(t *testing.T) {
	t.Parallel()
	e := MustEnv(t, func(d *identity.Deps) { d.SessionLimit = 2 })
	ctx := context.Background()
	e.MustRegister("kim@example.com")
	s1 := e.MustLogin("kim@example.com")
	e.clock.Advance(time.Second)
	s2 := e.MustLogin("kim@example.com")
	e.clock.Advance(time.Second)
	s3 := e.MustLogin("kim@example.com")
	if _, err := e.h.Authenticate(ctx, s1.AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("evicted session: %v, want ErrSessionRevoked", err)
	}
	p3 := e.MustAuthenticate(s3.AccessToken)
	list, err := e.h.Sessions(ctx, p3)
	if err != nil || len(list) != 2 || list[0].ID != s3.SessionID || !list[0].Current || list[1].ID != s2.SessionID || list[1].Current {
		t.Fatalf("sessions = %+v, %v", list, err)
	}
	if err := e.h.RevokeOtherSessions(ctx, p3, rc); err != nil {
		t.Fatalf("revoke others: %v", err)
	}
	if _, err := e.h.Authenticate(ctx, s2.AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("other session: %v, want ErrSessionRevoked", err)
	}
	e.MustAuthenticate(s3.AccessToken)
}

// TestRehashOnLogin: a hash made with other parameters is replaced at the
// next successful login, recorded as an event that carries no hash.
func TestRehashOnLogin(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	v := e.MustRegister("lee@example.com")
	var oldHash string
	if err := e.pool.QueryRow(ctx, `SELECT password_hash FROM user_credentials WHERE user_id = $1`, v.ID).Scan(&oldHash); err != nil {
		t.Fatal(err)
	}
	stronger, err := password.New(password.Params{MemoryKiB: 128, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	e2 := *e
	d := e.deps
	d.Hasher = stronger
	if e2.h, err = identity.NewHandler(d); err != nil {
		t.Fatal(err)
	}
	e2.MustLogin("lee@example.com")
	var newHash string
	if err := e.pool.QueryRow(ctx, `SELECT password_hash FROM user_credentials WHERE user_id = $1`, v.ID).Scan(&newHash); err != nil {
		t.Fatal(err)
	}
	if newHash == oldHash {
		t.Fatal("hash not replaced")
	}
	if _, needs, _ := stronger.Verify(goodPassword, newHash); needs {
		t.Fatal("new hash still needs a rehash")
	}
	if countOf(eventTypes(e.events(v.ID)), "UserPasswordRehashed") != 1 {
		t.Fatalf("events %v", eventTypes(e.events(v.ID)))
	}
	e2.MustLogin("lee@example.com")
	if countOf(eventTypes(e.events(v.ID)), "UserPasswordRehashed") != 1 {
		t.Fatal("rehashed twice")
	}
	assertNoSecrets(t, e, "rehash", []string{oldHash, newHash, goodPassword})
}

// TestNewHandlerRefusesMissingDeps: wiring mistakes fail at construction.
func TestNewHandlerRefusesMissingDeps(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	for name, change := range map[string]func(*identity.Deps){
		"Store":     func(d *identity.Deps) { d.Store = nil },
		"Pool":      func(d *identity.Deps) { d.Pool = nil },
		"Hasher":    func(d *identity.Deps) { d.Hasher = nil },
		"Policy":    func(d *identity.Deps) { d.Policy = nil },
		"Access":    func(d *identity.Deps) { d.Access = nil },
		"Secrets":   func(d *identity.Deps) { d.Secrets = nil },
		"Mailer":    func(d *identity.Deps) { d.Mailer = nil },
		"Now":       func(d *identity.Deps) { d.Now = nil },
		"Logger":    func(d *identity.Deps) { d.Logger = nil },
		"PublicURL": func(d *identity.Deps) { d.PublicURL = "" },
		"negative":  func(d *identity.Deps) { d.RotationGrace = -1 },
		"NameKey":   func(d *identity.Deps) { d.NameKey = []byte("short") },
	} {
		d := e.deps
		change(&d)
		if _, err := identity.NewHandler(d); err == nil {
			t.Errorf("NewHandler without %s succeeded", name)
		}
	}
}

// TestDevice names common agents for the session list.
func TestDevice(t *testing.T) {
	for ua, want := range map[string]string{
		"": "Unknown device",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36":         "Chrome on Windows",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15":  "Safari on macOS",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iOS",
		"Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0":                               "Edge on Windows",
		"curl/8.5.0":    "curl",
		"dashtam-cli/1": "dashtam-cli",
	} {
		if got := identity.Device(ua); got != want {
			t.Errorf("Device(%q) = %q, want %q", ua, got, want)
		}
	}
}

// TestUnknownEmailIsLockedOutLikeAKnownOne: wrong-password logins to a
// registered address and to one that belongs to nobody get the same
// answers, attempt by attempt: ErrInvalidCredentials four times, then a
// *user.LockedError ending at the same instant, kept (not extended) while
// it lasts, and a fresh allowance once it is over.
func TestUnknownEmailIsLockedOutLikeAKnownOne(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	e.MustRegister("known@example.com")
	login := func(email string) error {
		_, err := e.h.Login(context.Background(), identity.LoginInput{Email: email, Password: "definitely not it", RequestContext: rc})
		return err
	}
	describe := func(err error) string {
		var le *user.LockedError
		switch {
		case errors.As(err, &le):
			return "locked until " + le.Until.Format(time.RFC3339Nano)
		case errors.Is(err, identity.ErrInvalidCredentials):
			return "invalid credentials"
		}
		return "unexpected: " + err.Error()
	}
	for step := range 2*user.MaxFailedLogins + 2 {
		if step == user.MaxFailedLogins+2 {
			e.clock.Advance(user.LockoutDuration) // the lockout ends
		}
		known, unknown := describe(login("known@example.com")), describe(login("Nobody@Example.com"))
		require.Equal(t, known, unknown, "attempt %d", step+1)
		require.NotContains(t, known, "unexpected")
		if step == user.MaxFailedLogins-1 {
			require.Contains(t, known, "locked", "the fifth failure locks")
		}
	}
	var rows int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM login_throttle`).Scan(&rows))
	require.Equal(t, 1, rows, "one throttle row, for the unknown name only")
	var leaked bool
	require.NoError(t, e.pool.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM login_throttle WHERE position('nobody' in encode(name_digest, 'escape')) > 0)`).Scan(&leaked))
	require.False(t, leaked, "the address is stored only as a digest")
}

// TestMeShowsTheRolesPermissionsUse: /users/me answers the roles the
// request was authorised with (the credentials row Authenticate reads),
// even if the stream said otherwise, so the two can never be seen to differ.
func TestMeShowsTheRolesPermissionsUse(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	e.MustRegister("roles@example.com")
	tok := e.MustLogin("roles@example.com")
	p := e.MustAuthenticate(tok.AccessToken)
	_, err := e.pool.Exec(context.Background(), `UPDATE user_credentials SET roles = '{readonly}' WHERE user_id = $1`, p.UserID)
	require.NoError(t, err)
	// The session cache hears the change by NOTIFY, a moment later.
	waitFor(t, "the role change to reach the session check", func() bool {
		p = e.MustAuthenticate(tok.AccessToken)
		return slices.Equal(p.Roles, []user.Role{user.RoleReadonly})
	})
	me, err := e.h.Me(context.Background(), p)
	require.NoError(t, err)
	require.Equal(t, p.Roles, me.Roles)
	require.Equal(t, []user.Role{user.RoleReadonly}, me.Roles)
}
