package identity_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands/identity"
)

// Refresh asks admit about the user its token names, before anything is
// written: a refused refresh returns admit's error unchanged, writes no
// event and leaves the token unspent, so presenting it again later is a
// plain refresh and not reuse.
func TestRefreshAsksAdmitAboutTheTokensUserBeforeRotating(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	view := e.MustRegister("ada@example.com")
	tok := e.MustLogin("ada@example.com")

	errLimited := errors.New("rate limited")
	var asked []uuid.UUID
	refuse := func(_ context.Context, userID uuid.UUID) error {
		asked = append(asked, userID)
		return errLimited
	}
	before := e.countEvents()
	if _, err := e.h.Refresh(ctx, tok.RefreshToken, rc, refuse); err != errLimited {
		t.Fatalf("refused refresh: %v, want admit's error unchanged", err)
	}
	if len(asked) != 1 || asked[0] != view.ID {
		t.Fatalf("admit asked about %v, want [%s]", asked, view.ID)
	}
	if n := e.countEvents(); n != before {
		t.Fatalf("a refused refresh wrote %d events", n-before)
	}

	admit := func(_ context.Context, userID uuid.UUID) error {
		asked = append(asked, userID)
		return nil
	}
	next, err := e.h.Refresh(ctx, tok.RefreshToken, rc, admit)
	if err != nil {
		t.Fatalf("refresh after the refusal: %v", err)
	}
	e.MustAuthenticate(next.AccessToken)
	if len(asked) != 2 {
		t.Fatalf("admit asked %d times, want 2", len(asked))
	}

	// An unknown token names no user, so there is nobody to ask about.
	if _, err := e.h.Refresh(ctx, "not-a-token", rc, refuse); !errors.Is(err, identity.ErrInvalidRefreshToken) {
		t.Fatalf("unknown token: %v, want ErrInvalidRefreshToken", err)
	}
	if len(asked) != 2 {
		t.Fatalf("admit asked about an unknown token")
	}
}

// A spent refresh token presented while the refresh is refused (rate
// limited) is still detected as reuse: the session is revoked and recorded
// at once, and the caller gets admit's error. A second presentation writes
// nothing more, so refusing never lets anyone flood the log.
func TestReuseIsDetectedEvenWhenRefused(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	view := e.MustRegister("bea@example.com")
	tok := e.MustLogin("bea@example.com")
	next, err := e.h.Refresh(ctx, tok.RefreshToken, rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.MustAuthenticate(next.AccessToken)

	errLimited := errors.New("rate limited")
	refuse := func(context.Context, uuid.UUID) error { return errLimited }
	if _, err := e.h.Refresh(ctx, tok.RefreshToken, rc, refuse); err != errLimited {
		t.Fatalf("reused token while limited: %v, want admit's error", err)
	}
	if _, err := e.h.Authenticate(ctx, next.AccessToken); !errors.Is(err, identity.ErrSessionRevoked) {
		t.Fatalf("the session after reuse: %v, want ErrSessionRevoked", err)
	}
	types := eventTypes(e.events(view.ID))
	if countOf(types, "UserRefreshTokenReuseDetected") != 1 || countOf(types, "UserSessionRevoked") != 1 {
		t.Fatalf("events %v", types)
	}

	before := e.countEvents()
	if _, err := e.h.Refresh(ctx, tok.RefreshToken, rc, refuse); err != errLimited {
		t.Fatalf("presented again: %v", err)
	}
	if _, err := e.h.Refresh(ctx, next.RefreshToken, rc, refuse); err != errLimited {
		t.Fatalf("the current token while limited: %v", err)
	}
	if n := e.countEvents(); n != before {
		t.Fatalf("%d more events", n-before)
	}
}
