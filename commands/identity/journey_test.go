package identity_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// TestJourney walks the identity journey (docs/identity.md) below the web layer: register, read
// the mail, verify, log in, authenticate, refresh, present the old refresh
// token again (the session is revoked and its access tokens stop at once),
// log in again, log out. Along the way it collects every secret handed out
// and finally proves that none reached an event or a log line, and that the
// events carry who asked and from where.
func TestJourney(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	const email = "Ann@Example.com"
	secrets := []string{goodPassword}

	view, err := e.h.Register(ctx, identity.RegisterInput{Email: email, Password: goodPassword, RequestContext: rc})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if view.Email != "ann@example.com" || view.Verified || !slices.Equal(view.Roles, []user.Role{user.RoleUser}) || view.CreatedAt.IsZero() {
		t.Fatalf("registered view = %+v", view)
	}

	// Before verification the password is right but the login refused.
	if _, err := e.h.Login(ctx, identity.LoginInput{Email: email, Password: goodPassword, RequestContext: rc}); !errors.Is(err, user.ErrEmailNotVerified) {
		t.Fatalf("login before verification: %v, want ErrEmailNotVerified", err)
	}

	verify := e.MustMailedToken("ann@example.com", identity.VerifyEmailPath)
	secrets = append(secrets, verify)
	if err := e.h.VerifyEmail(ctx, verify, rc); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := e.h.VerifyEmail(ctx, verify, rc); !errors.Is(err, identity.ErrTokenNotFound) {
		t.Fatalf("verify again: %v, want ErrTokenNotFound", err)
	}

	first := e.MustLogin(email)
	secrets = append(secrets, first.AccessToken, first.RefreshToken)
	if first.TokenType != "Bearer" || first.ExpiresIn <= 0 || len(first.RefreshToken) < 43 {
		t.Fatalf("tokens = %+v", first)
	}
	p := e.MustAuthenticate(first.AccessToken)
	if p.UserID != view.ID || p.SessionID != first.SessionID || !slices.Equal(p.Roles, []user.Role{user.RoleUser}) {
		t.Fatalf("principal = %+v", p)
	}
	me, err := e.h.Me(ctx, p)
	if err != nil || !me.Verified || me.ID != view.ID || !me.CreatedAt.Equal(view.CreatedAt) {
		t.Fatalf("me = %+v, %v", me, err)
	}
	sessions, err := e.h.Sessions(ctx, p)
	if err != nil || len(sessions) != 1 || !sessions[0].Current || sessions[0].Device != "Firefox on Linux" || sessions[0].IP != "192.0.2.10" {
		t.Fatalf("sessions = %+v, %v", sessions, err)
	}

	e.clock.Advance(10 * 60e9)
	second, err := e.h.Refresh(ctx, first.RefreshToken, rc, nil)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	secrets = append(secrets, second.AccessToken, second.RefreshToken)
	if second.SessionID != first.SessionID || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refreshed tokens = %+v", second)
	}
	e.MustAuthenticate(second.AccessToken)

	// The spent refresh token again: theft detection revokes the session,
	// and both its access tokens stop working at once.
	if _, err := e.h.Refresh(ctx, first.RefreshToken, rc, nil); !errors.Is(err, identity.ErrInvalidRefreshToken) {
		t.Fatalf("reuse: %v, want ErrInvalidRefreshToken", err)
	}
	for _, access := range []string{first.AccessToken, second.AccessToken} {
		if _, err := e.h.Authenticate(ctx, access); !errors.Is(err, identity.ErrSessionRevoked) {
			t.Fatalf("authenticate after reuse: %v, want ErrSessionRevoked", err)
		}
	}
	if _, err := e.h.Refresh(ctx, second.RefreshToken, rc, nil); !errors.Is(err, identity.ErrInvalidRefreshToken) {
		t.Fatalf("refresh of revoked session: %v, want ErrInvalidRefreshToken", err)
	}
	if s, err := e.h.Session(ctx, p, first.SessionID); err != nil || s.Status != "revoked" {
		t.Fatalf("revoked session = %+v, %v", s, err)
	}

	third := e.MustLogin(email)
	secrets = append(secrets, third.AccessToken, third.RefreshToken)
	p3 := e.MustAuthenticate(third.AccessToken)
	if err := e.h.RevokeSession(ctx, p3, p3.SessionID, rc); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if _, err := e.h.Authenticate(ctx, third.AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("authenticate after logout: %v, want ErrSessionRevoked", err)
	}
	if err := e.h.RevokeSession(ctx, p3, p3.SessionID, rc); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("logout twice: %v, want ErrNotFound", err)
	}

	evs := e.events(view.ID)
	want := []string{
		"UserRegistered", "UserVerificationRequested",
		"UserLoginAttempted", "UserLoginFailed",
		"UserEmailVerified",
		"UserLoginAttempted", "UserLoginSucceeded",
		"UserTokenRefreshed",
		"UserRefreshTokenReuseDetected", "UserSessionRevoked",
		"UserLoginAttempted", "UserLoginSucceeded",
		"UserLoggedOut",
	}
	if got := eventTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	for _, ev := range evs {
		md := ev.Metadata
		if md.OwnerID != view.ID || md.IP != "192.0.2.10" || md.UserAgent != rc.UserAgent || md.TraceID != rc.TraceID || md.Actor == "" || md.Command == "" {
			t.Errorf("%s metadata = %+v", ev.Type, md)
		}
	}
	if md := evs[len(evs)-1].Metadata; md.Actor != "user:"+view.ID.String() || md.Command != "logout" {
		t.Errorf("logout metadata = %+v", md)
	}

	var hash string
	if err := e.pool.QueryRow(ctx, `SELECT password_hash FROM user_credentials WHERE user_id = $1`, view.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, hash)
	assertNoSecrets(t, e, view.ID.String(), secrets)
}

// assertNoSecrets fails if any secret appears in the events of the log or in the log lines.
func assertNoSecrets(t *testing.T, e *env, label string, secrets []string) {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT event_type, payload::text, metadata::text FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var typ, payload, md string
		if err := rows.Scan(&typ, &payload, &md); err != nil {
			t.Fatal(err)
		}
		n++
		for _, s := range secrets {
			if strings.Contains(payload, s) || strings.Contains(md, s) {
				t.Errorf("%s: event %s carries a secret", label, typ)
			}
		}
	}
	if n == 0 {
		t.Fatal("no events to scan")
	}
	logs := e.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("%s: the log carries a secret", label)
		}
	}
	if strings.Contains(logs, "token=") {
		t.Errorf("%s: the log carries a link", label)
	}
}

// TestRegisterRefusesTakenEmail: a second registration of an address (in
// any case) is ErrEmailTaken and appends nothing, not even to its own new stream.
func TestRegisterRefusesTakenEmail(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	e.MustRegister("bob@example.com")
	before := e.countEvents()
	mails := len(e.mails("bob@example.com"))
	_, err := e.h.Register(ctx, identity.RegisterInput{Email: " BOB@example.com", Password: "another long password 7", RequestContext: rc})
	if !errors.Is(err, identity.ErrEmailTaken) {
		t.Fatalf("register taken email: %v, want ErrEmailTaken", err)
	}
	if after := e.countEvents(); after != before {
		t.Fatalf("events: %d before, %d after a refused registration", before, after)
	}
	if n := len(e.mails("bob@example.com")); n != mails {
		t.Fatalf("a refused registration sent mail")
	}
}

// TestRegisterValidates maps bad input to the contract's errors before anything is stored.
func TestRegisterValidates(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	for _, tc := range []struct {
		email, password string
		want            error
	}{
		{"not an address", goodPassword, identity.ErrInvalidEmail},
		{"Ann <ann@example.com>", goodPassword, identity.ErrInvalidEmail},
		{"ann@example.com", "short", commands.ErrPasswordTooShort},
		{"ann@example.com", "password1234", commands.ErrPasswordCommon},
	} {
		_, err := e.h.Register(context.Background(), identity.RegisterInput{Email: tc.email, Password: tc.password, RequestContext: rc})
		if !errors.Is(err, tc.want) {
			t.Errorf("register(%q, %q) = %v, want %v", tc.email, tc.password, err, tc.want)
		}
	}
	if n := e.countEvents(); n != 0 {
		t.Fatalf("%d events after refused registrations", n)
	}
}

// TestUnknownEmailAndWrongPasswordAlike: the two failures are one error
// value with one message, so nothing downstream can tell them apart.
func TestUnknownEmailAndWrongPasswordAlike(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	e.MustRegister("cat@example.com")
	_, unknown := e.h.Login(ctx, identity.LoginInput{Email: "nobody@example.com", Password: goodPassword, RequestContext: rc})
	_, wrong := e.h.Login(ctx, identity.LoginInput{Email: "cat@example.com", Password: "not the password at all", RequestContext: rc})
	_, malformed := e.h.Login(ctx, identity.LoginInput{Email: "not an email", Password: goodPassword, RequestContext: rc})
	for _, err := range []error{unknown, wrong, malformed} {
		if err != identity.ErrInvalidCredentials {
			t.Fatalf("login error %v (%T), want exactly ErrInvalidCredentials", err, err)
		}
	}
	if strings.Contains(e.logs.String(), "nobody@example.com") {
		t.Fatal("the unknown email was logged")
	}
}

// TestAnotherUsersSessionIsNotFound: a session id of another user answers
// ErrNotFound, exactly as a missing one, and is left untouched.
func TestAnotherUsersSessionIsNotFound(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	e.MustRegister("dan@example.com")
	e.MustRegister("eve@example.com")
	dan := e.MustLogin("dan@example.com")
	eve := e.MustAuthenticate(e.MustLogin("eve@example.com").AccessToken)
	if _, err := e.h.Session(ctx, eve, dan.SessionID); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("get another's session: %v, want ErrNotFound", err)
	}
	if err := e.h.RevokeSession(ctx, eve, dan.SessionID, rc); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("revoke another's session: %v, want ErrNotFound", err)
	}
	e.MustAuthenticate(dan.AccessToken)
}
