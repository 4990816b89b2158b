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
