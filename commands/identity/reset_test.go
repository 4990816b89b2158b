package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// blockingMailer holds every Send until release is closed, after telling sending.
type blockingMailer struct {
	commands.Mailer
	subject string // only mails whose subject contains it block
	sending chan struct{}
	release chan struct{}
}

func (b *blockingMailer) Send(ctx context.Context, m commands.Message) error {
	if strings.Contains(m.Subject, b.subject) {
		b.sending <- struct{}{}
		<-b.release
	}
	return b.Mailer.Send(ctx, m)
}

// blockMails makes e's mailer hold every mail whose subject contains
// subject until release is closed, telling sending when one arrives.
func blockMails(subject string) (func(*identity.Deps), *blockingMailer) {
	b := &blockingMailer{subject: subject, sending: make(chan struct{}, 8), release: make(chan struct{})}
	return func(d *identity.Deps) { b.Mailer = d.Mailer; d.Mailer = b }, b
}

// TestResetRequestDoesNotWaitForTheMail: a reset request for a known email
// answers while its mail is still being sent, so its timing does not tell
// it from an unknown email; the request's cancellation does not drop the
// mail, which a job sends.
func TestResetRequestDoesNotWaitForTheMail(t *testing.T) {
	t.Parallel()
	block, mailer := blockMails("Reset")
	e := MustEnv(t, block)
	e.MustRegister("slow-mail@example.com")
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.h.RequestPasswordReset(ctx, "slow-mail@example.com", rc); err != nil {
		t.Fatalf("reset request: %v", err)
	}
	cancel()
	<-mailer.sending // the request has answered and the mail is still on its way
	close(mailer.release)
	e.MustMailedToken("slow-mail@example.com", identity.ResetPasswordPath)
}

// TestResetVerifiesAnUnverifiedUser: a user whose verification mail never
// arrived gets in through a password reset, whose link proves the mailbox
// just as well; the verification link dies with it.
func TestResetVerifiesAnUnverifiedUser(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	v, err := e.h.Register(ctx, identity.RegisterInput{Email: "lost-mail@example.com", Password: goodPassword, RequestContext: rc})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	verification := e.MustMailedToken("lost-mail@example.com", identity.VerifyEmailPath)
	if _, err := e.h.Login(ctx, identity.LoginInput{Email: "lost-mail@example.com", Password: goodPassword, RequestContext: rc}); !errors.Is(err, user.ErrEmailNotVerified) {
		t.Fatalf("login before verifying: %v, want ErrEmailNotVerified", err)
	}
	if err := e.h.RequestPasswordReset(ctx, "lost-mail@example.com", rc); err != nil {
		t.Fatalf("reset request: %v", err)
	}
	const newPassword = "found my way back in 2026"
	if err := e.h.ResetPassword(ctx, e.MustMailedToken("lost-mail@example.com", identity.ResetPasswordPath), newPassword, rc); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if _, err := e.h.Login(ctx, identity.LoginInput{Email: "lost-mail@example.com", Password: newPassword, RequestContext: rc}); err != nil {
		t.Fatalf("login after the reset: %v", err)
	}
	if err := e.h.VerifyEmail(ctx, verification, rc); !errors.Is(err, identity.ErrTokenNotFound) {
		t.Fatalf("verification link after the reset: %v, want ErrTokenNotFound", err)
	}
	var verified int
	for _, ev := range e.events(v.ID) {
		if ev.Type == "UserEmailVerified" && strings.Contains(ev.Payload, `"password_reset"`) {
			verified++
		}
	}
	if verified != 1 {
		t.Fatalf("events %v: want one UserEmailVerified by password reset", eventTypes(e.events(v.ID)))
	}
}
