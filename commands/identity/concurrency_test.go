package identity_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// TestConcurrentRegistrationsOfOneEmail: of several simultaneous
// registrations of one address exactly one wins; the others are
// ErrEmailTaken and leave no event, because uniqueness is decided inside
// the transaction that would append.
func TestConcurrentRegistrationsOfOneEmail(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = e.h.Register(context.Background(), identity.RegisterInput{
				Email: "race@example.com", Password: fmt.Sprintf("racing password number %d", i), RequestContext: rc,
			})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, identity.ErrEmailTaken):
			t.Fatalf("register: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d registrations won, want 1", won)
	}
	if got := e.countEvents(); got != 2 {
		t.Fatalf("%d events, want the winner's 2", got)
	}
}

// TestConcurrentRefreshWithOneToken: two requests presenting the same
// refresh token at once are a reuse, whoever comes second: one gets new
// tokens, the other ErrInvalidRefreshToken, and the session ends, so the
// winner's new tokens die with it.
func TestConcurrentRefreshWithOneToken(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	e.MustRegister("twin@example.com")
	tok := e.MustLogin("twin@example.com")
	var (
		wg   sync.WaitGroup
		errs [2]error
		got  [2]identity.Tokens
	)
	for i := range 2 {
		wg.Go(func() { got[i], errs[i] = e.h.Refresh(context.Background(), tok.RefreshToken, rc, nil) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatal("both refreshes succeeded")
			}
			winner = i
		case !errors.Is(err, identity.ErrInvalidRefreshToken):
			t.Fatalf("refresh: %v", err)
		}
	}
	if winner < 0 {
		t.Fatal("no refresh succeeded")
	}
	if _, err := e.h.Authenticate(context.Background(), got[winner].AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("winner's token after reuse: %v, want ErrSessionRevoked", err)
	}
}

// pausingHasher blocks its first Verify that matches until release is
// closed, after telling entered, and reports that hash as needing a rehash:
// it holds a login between checking the password and deciding.
type pausingHasher struct {
	commands.PasswordHasher
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (p *pausingHasher) Verify(pw, encoded string) (bool, bool, error) {
	ok, needsRehash, err := p.PasswordHasher.Verify(pw, encoded)
	if ok && err == nil {
		paused := false
		p.once.Do(func() {
			paused = true
			close(p.entered)
			<-p.release
		})
		if paused {
			return true, true, nil
		}
	}
	return ok, needsRehash, err
}

// TestLoginRacingPasswordReset: a login that verified the old password just
// before a reset committed opens no session, and its rehash does not write
// the old password's hash over the new one.
func TestLoginRacingPasswordReset(t *testing.T) {
	t.Parallel()
	var hasher *pausingHasher
	e := MustEnv(t, func(d *identity.Deps) {
		hasher = &pausingHasher{PasswordHasher: d.Hasher, entered: make(chan struct{}), release: make(chan struct{})}
		d.Hasher = hasher
	})
	ctx := context.Background()
	v := e.MustRegister("race-reset@example.com")

	var loginErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, loginErr = e.h.Login(ctx, identity.LoginInput{Email: "race-reset@example.com", Password: goodPassword, RequestContext: rc})
	}()
	<-hasher.entered
	if err := e.h.RequestPasswordReset(ctx, "race-reset@example.com", rc); err != nil {
		t.Fatalf("reset request: %v", err)
	}
	const newPassword = "a passphrase chosen mid-login"
	if err := e.h.ResetPassword(ctx, e.MustMailedToken("race-reset@example.com", identity.ResetPasswordPath), newPassword, rc); err != nil {
		t.Fatalf("reset: %v", err)
	}
	close(hasher.release)
	<-done

	if !errors.Is(loginErr, identity.ErrInvalidCredentials) {
		t.Fatalf("login with the old password: %v, want ErrInvalidCredentials", loginErr)
	}
	var active int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM auth_sessions WHERE user_id = $1 AND status = 'active'`, v.ID).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active != 0 {
		t.Fatalf("%d active sessions after the reset, want 0", active)
	}
	var stored string
	if err := e.pool.QueryRow(ctx, `SELECT password_hash FROM user_credentials WHERE user_id = $1`, v.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := hasher.PasswordHasher.Verify(newPassword, stored); err != nil || !ok {
		t.Fatalf("stored hash does not verify the new password (%v, %v)", ok, err)
	}
	if _, err := e.h.Login(ctx, identity.LoginInput{Email: "race-reset@example.com", Password: newPassword, RequestContext: rc}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
}

// TestConcurrentFailedLoginsAreAllRecorded: 25 simultaneous wrong-password
// logins to one account from 5 addresses each end in a refusal (wrong
// password, or locked once five have failed), never in an error, and every
// one of them is recorded as an attempt on the user's stream, because
// decisions on one user queue in the database instead of conflicting.
func TestConcurrentFailedLoginsAreAllRecorded(t *testing.T) {
	t.Parallel()
	e := mustEnvWithConns(t, 30)
	v := e.MustRegister("crowd@example.com")
	const n = 25
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			from := rc
			from.IP = netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%5)})
			_, errs[i] = e.h.Login(context.Background(), identity.LoginInput{
				Email: "crowd@example.com", Password: "not the password at all", RequestContext: from,
			})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, identity.ErrInvalidCredentials) && !errors.Is(err, user.ErrLocked) {
			t.Errorf("login %d: %v, want a refusal", i, err)
		}
	}
	attempts := 0
	for _, ev := range e.events(v.ID) {
		if ev.Type == "UserLoginAttempted" {
			attempts++
		}
	}
	if attempts != n {
		t.Fatalf("%d login attempts recorded, want %d", attempts, n)
	}
}
