package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/identity"
)

// verificationLinks returns the tokens of the verification links mailed to
// addr, oldest first.
func (e *env) verificationLinks(addr string) []string {
	e.tb.Helper()
	var out []string
	for _, m := range e.mails(addr) {
		if token, ok := mailtest.FindLinkToken(m, identity.VerifyEmailPath); ok {
			out = append(out, token)
		}
	}
	return out
}

// mustRegisterUnverified registers email and leaves the mailed link unused.
func (e *env) mustRegisterUnverified(email string) identity.UserView {
	e.tb.Helper()
	v, err := e.h.Register(context.Background(), identity.RegisterInput{Email: email, Password: goodPassword, RequestContext: rc})
	if err != nil {
		e.tb.Fatalf("register %s: %v", email, err)
	}
	return v
}

// mustRequestVerification asks for a new verification mail, which must answer nil.
func (e *env) mustRequestVerification(email string) {
	e.tb.Helper()
	if err := e.h.RequestEmailVerification(context.Background(), email, rc); err != nil {
		e.tb.Fatalf("request verification for %s: %v", email, err)
	}
}

// TestRequestEmailVerification: an unknown email and a verified user get
// nil and no mail; an unverified user gets a new link that verifies the
// address, the link mailed at registration still works as well, and at most
// three links are mailed per rolling hour, registration's included.
func TestRequestEmailVerification(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()

	t.Run("an unknown email gets nothing", func(t *testing.T) {
		before := e.countEvents()
		e.mustRequestVerification("nobody@example.com")
		e.mustRequestVerification("not an address")
		if n := len(e.mails("nobody@example.com")); n != 0 {
			t.Fatalf("%d mails to an unknown email", n)
		}
		if after := e.countEvents(); after != before {
			t.Fatalf("%d events appended for an unknown email", after-before)
		}
	})

	t.Run("a verified user gets nothing", func(t *testing.T) {
		v := e.MustRegister("done@example.com")
		events := len(e.events(v.ID))
		e.mustRequestVerification("done@example.com")
		if n := len(e.verificationLinks("done@example.com")); n != 1 {
			t.Fatalf("%d verification mails, want only the one of registration", n)
		}
		if got := e.events(v.ID); len(got) != events {
			t.Fatalf("events %v: a verified user's request appended", eventTypes(got))
		}
	})

	t.Run("the new link verifies", func(t *testing.T) {
		v := e.mustRegisterUnverified("newest@example.com")
		e.mustRequestVerification("NEWEST@example.com ")
		links := e.verificationLinks("newest@example.com")
		if len(links) != 2 || links[0] == links[1] {
			t.Fatalf("want two distinct links, got %d", len(links))
		}
		if err := e.h.VerifyEmail(ctx, links[1], rc); err != nil {
			t.Fatalf("verify with the new link: %v", err)
		}
		e.MustLogin("newest@example.com")
		if err := e.h.VerifyEmail(ctx, links[0], rc); !errors.Is(err, identity.ErrTokenNotFound) {
			t.Fatalf("the older link after verifying: %v, want ErrTokenNotFound", err)
		}
		types := eventTypes(e.events(v.ID))
		if countOf(types, "UserVerificationRequested") != 2 || countOf(types, "UserEmailVerified") != 1 {
			t.Fatalf("events %v", types)
		}
		assertNoSecrets(t, e, "resend", append(links, goodPassword))
	})

	t.Run("the older link still verifies", func(t *testing.T) {
		e.mustRegisterUnverified("older@example.com")
		e.mustRequestVerification("older@example.com")
		links := e.verificationLinks("older@example.com")
		if len(links) != 2 {
			t.Fatalf("want two links, got %d", len(links))
		}
		if err := e.h.VerifyEmail(ctx, links[0], rc); err != nil {
			t.Fatalf("verify with the link of registration: %v", err)
		}
		e.MustLogin("older@example.com")
		if err := e.h.VerifyEmail(ctx, links[1], rc); !errors.Is(err, identity.ErrTokenNotFound) {
			t.Fatalf("the newer link after verifying: %v, want ErrTokenNotFound", err)
		}
	})
}

// TestRequestEmailVerificationLimit: registration and two resends fill the
// hour; a fourth request answers nil but mails nothing and appends nothing,
// and an hour after registration one more link is mailed.
func TestRequestEmailVerificationLimit(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	const addr = "eager@example.com"
	v := e.mustRegisterUnverified(addr)
	for range user.MaxVerificationRequests - 1 {
		e.clock.Advance(10 * time.Minute)
		e.mustRequestVerification(addr)
	}
	if n := len(e.verificationLinks(addr)); n != user.MaxVerificationRequests {
		t.Fatalf("%d verification mails, want %d", n, user.MaxVerificationRequests)
	}
	events := len(e.events(v.ID))
	e.mustRequestVerification(addr)
	if n := len(e.verificationLinks(addr)); n != user.MaxVerificationRequests {
		t.Fatalf("%d verification mails over the limit, want %d", n, user.MaxVerificationRequests)
	}
	if got := e.events(v.ID); len(got) != events {
		t.Fatalf("events %v: a refused request appended", eventTypes(got))
	}
	if !strings.Contains(e.logs.String(), "email verification refused: too many requests") {
		t.Fatal("the refusal is not logged")
	}

	e.clock.Advance(user.VerificationRequestWindow - 2*10*time.Minute)
	e.mustRequestVerification(addr)
	links := e.verificationLinks(addr)
	if len(links) != user.MaxVerificationRequests+1 {
		t.Fatalf("%d verification mails after the hour, want %d", len(links), user.MaxVerificationRequests+1)
	}
	if got := e.tokenRows("verify"); got != len(links) {
		t.Fatalf("%d verify token rows, want one per mailed link (%d)", got, len(links))
	}
	// Every link is still good: the first one, mailed at registration, verifies.
	if err := e.h.VerifyEmail(context.Background(), links[0], rc); err != nil {
		t.Fatalf("verify with the first link: %v", err)
	}
	assertNoSecrets(t, e, "resend limit", append(links, goodPassword))
}

// TestVerificationRequestDoesNotWaitForTheMail: like a reset request, a
// request for a known, unverified email answers while its mail is still
// being sent, so its timing does not tell it from an unknown email.
func TestVerificationRequestDoesNotWaitForTheMail(t *testing.T) {
	t.Parallel()
	block, mailer := blockMails("Confirm")
	e := MustEnv(t, block)
	go func() { <-mailer.sending }() // registration's own mail
	e.mustRegisterUnverified("slow-verify@example.com")
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.h.RequestEmailVerification(ctx, "slow-verify@example.com", rc); err != nil {
		t.Fatalf("verification request: %v", err)
	}
	cancel()
	<-mailer.sending // the request has answered and the mail is still on its way
	close(mailer.release)
	token := e.MustMailedToken("slow-verify@example.com", identity.VerifyEmailPath)
	if err := e.h.VerifyEmail(context.Background(), token, rc); err != nil {
		t.Fatalf("verify with the resent link: %v", err)
	}
}
