package identity_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

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
