package mail_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/mail"
	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/commands"
)

// The credentials contain '@' and ':' so the URL must carry them
// percent-encoded, which also proves New decodes them.
const (
	testUser = "mailer@dashtam.test"
	testPass = "s3cret:p@ss-word"
)

func smtpURL(scheme, user, pass, addr, query string) string {
	u := url.URL{Scheme: scheme, User: url.UserPassword(user, pass), Host: addr, RawQuery: query}
	return u.String()
}

// MustNew builds a Mailer or fails the test.
func MustNew(tb testing.TB, rawURL string, opts ...mail.Option) commands.Mailer {
	tb.Helper()
	m, err := mail.New(rawURL, opts...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return m
}

// assertNoSecret fails when err's text reveals the password, raw or encoded.
func assertNoSecret(tb testing.TB, err error) {
	tb.Helper()
	for _, s := range []string{testPass, url.QueryEscape(testPass), url.PathEscape(testPass), "s3cret"} {
		if strings.Contains(err.Error(), s) {
			tb.Fatalf("error reveals the password (%q): %v", s, err)
		}
	}
}

func verificationMessage() commands.Message {
	return commands.Message{
		To:       "Alice Example <alice@example.com>",
		Subject:  "Vérifiez your Dashtam e-mail",
		TextBody: "Open https://dashtam.test/verify?token=abc123 to verify.\nThe link expires in 24 hours.",
		HTMLBody: `<p><a href="https://dashtam.test/verify?token=abc123">Verify</a></p>`,
		Headers:  map[string]string{"X-Dashtam-Trace-Id": "trace-42"},
	}
}

func TestSMTPSendAuthenticatesAndDelivers(t *testing.T) {
	srv := MustStartSMTPServer(t, testUser, testPass, serverConfig{})
	m := MustNew(t, smtpURL("smtp", testUser, testPass, srv.Addr, ""),
		mail.WithFrom("Dashtam <no-reply@dashtam.test>"))

	if err := m.Send(context.Background(), verificationMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}

	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.AuthUser != testUser || got.AuthPass != testPass {
		t.Errorf("authenticated as %q/%q, want the URL's decoded credentials %q/%q", got.AuthUser, got.AuthPass, testUser, testPass)
	}
	if got.From != "no-reply@dashtam.test" {
		t.Errorf("MAIL FROM = %q", got.From)
	}
	if len(got.To) != 1 || got.To[0] != "alice@example.com" {
		t.Errorf("RCPT TO = %q, want [alice@example.com]", got.To)
	}
	p := mailtest.Parse(t, got.Data)
	if s := p.Subject; s != "Vérifiez your Dashtam e-mail" {
		t.Errorf("Subject = %q", s)
	}
	if to, err := p.Header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "alice@example.com" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if from, err := p.Header.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "no-reply@dashtam.test" {
		t.Errorf("From = %v (%v)", from, err)
	}
	if v := p.Header.Get("X-Dashtam-Trace-Id"); v != "trace-42" {
		t.Errorf("X-Dashtam-Trace-Id = %q", v)
	}
	if p.Header.Get("Message-Id") == "" || p.Header.Get("Date") == "" {
		t.Errorf("missing Message-ID or Date: %v", p.Header)
	}
	if want := verificationMessage().TextBody; strings.TrimRight(p.Text, "\n") != want {
		t.Errorf("text body = %q, want %q", p.Text, want)
	}
	if !strings.Contains(p.HTML, `href="https://dashtam.test/verify?token=abc123"`) {
		t.Errorf("html body = %q", p.HTML)
	}
}

func TestSMTPWrongPasswordFailsWithoutRevealingIt(t *testing.T) {
	srv := MustStartSMTPServer(t, testUser, "the-right-one", serverConfig{})
	m := MustNew(t, smtpURL("smtp", testUser, testPass, srv.Addr, ""))

	err := m.Send(context.Background(), verificationMessage())
	if err == nil {
		t.Fatal("Send succeeded with a wrong password")
	}
	assertNoSecret(t, err)
	if !strings.Contains(err.Error(), srv.Addr) {
		t.Errorf("error does not name the server %s: %v", srv.Addr, err)
	}
	if srv.AuthFailures() != 1 {
		t.Errorf("server saw %d failed AUTH attempts, want 1", srv.AuthFailures())
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server accepted %d messages", n)
	}
}

func TestSMTPServerDownNamesHostPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there any more

	m := MustNew(t, smtpURL("smtp", testUser, testPass, addr, ""))
	err = m.Send(context.Background(), verificationMessage())
	if err == nil {
		t.Fatal("Send succeeded with no server")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name %s: %v", addr, err)
	}
	assertNoSecret(t, err)
}

func TestSMTPMandatoryTLSRefusesPlaintextServer(t *testing.T) {
	srv := MustStartSMTPServer(t, testUser, testPass, serverConfig{})
	m := MustNew(t, smtpURL("smtp", testUser, testPass, srv.Addr, "tls=mandatory"))

	err := m.Send(context.Background(), verificationMessage())
	if err == nil {
		t.Fatal("Send succeeded although the server offers no STARTTLS")
	}
	assertNoSecret(t, err)
	if srv.AuthFailures() != 0 || len(srv.Messages()) != 0 {
		t.Error("credentials or mail went to a server without TLS")
	}
}

func TestSMTPUpgradesWithSTARTTLSWhenOffered(t *testing.T) {
	serverTLS, clientTLS := MustSelfSignedTLS(t)
	srv := MustStartSMTPServer(t, testUser, testPass, serverConfig{tlsConfig: serverTLS})
	m := MustNew(t, smtpURL("smtp", testUser, testPass, srv.Addr, ""), mail.WithTLSConfig(clientTLS))

	if err := m.Send(context.Background(), verificationMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("want one message received over TLS, got %+v", msgs)
	}
}

func TestSMTPSImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := MustSelfSignedTLS(t)
	srv := MustStartSMTPServer(t, testUser, testPass, serverConfig{tlsConfig: serverTLS, implicitTLS: true})

	t.Run("trusted certificate", func(t *testing.T) {
		m := MustNew(t, smtpURL("smtps", testUser, testPass, srv.Addr, ""), mail.WithTLSConfig(clientTLS))
		if err := m.Send(context.Background(), verificationMessage()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthPass != testPass {
			t.Fatalf("want one authenticated message over TLS, got %+v", msgs)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		m := MustNew(t, smtpURL("smtps", testUser, testPass, srv.Addr, ""))
		err := m.Send(context.Background(), verificationMessage())
		if err == nil {
			t.Fatal("Send trusted a self-signed certificate")
		}
		assertNoSecret(t, err)
	})
}

func TestSMTPHonoursContext(t *testing.T) {
	t.Run("cancelled mid-session", func(t *testing.T) {
		addr, accepted := silentListener(t)
		// A long timeout, so only the context can end the session.
		m := MustNew(t, smtpURL("smtp", testUser, testPass, addr, ""), mail.WithTimeout(time.Hour))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-accepted // the client is now waiting for a greeting that never comes
			cancel()
		}()
		err := m.Send(ctx, verificationMessage())
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled", err)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error does not name %s: %v", addr, err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		srv := MustStartSMTPServer(t, testUser, testPass, serverConfig{})
		m := MustNew(t, smtpURL("smtp", testUser, testPass, srv.Addr, ""))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := m.Send(ctx, verificationMessage()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled", err)
		}
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("server received %d messages", n)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		addr, _ := silentListener(t)
		m := MustNew(t, smtpURL("smtp", testUser, testPass, addr, ""), mail.WithTimeout(50*time.Millisecond))
		err := m.Send(context.Background(), verificationMessage())
		if err == nil {
			t.Fatal("Send succeeded against a silent server")
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error does not name %s: %v", addr, err)
		}
	})
}

func TestSMTPRejectsInvalidMessageBeforeConnecting(t *testing.T) {
	srv := MustStartSMTPServer(t, testUser, testPass, serverConfig{})
	m := MustNew(t, smtpURL("smtp", testUser, testPass, srv.Addr, ""))
	msg := verificationMessage()
	msg.Subject = "hello\r\nBcc: victim@example.com"
	if err := m.Send(context.Background(), msg); !errors.Is(err, commands.ErrInvalidMessage) {
		t.Fatalf("Send = %v, want ErrInvalidMessage", err)
	}
	if srv.AuthFailures() != 0 || len(srv.Messages()) != 0 {
		t.Error("an invalid message reached the server")
	}
}

func TestSMTPConcurrentSends(t *testing.T) {
	srv := MustStartSMTPServer(t, testUser, testPass, serverConfig{})
	m := MustNew(t, smtpURL("smtp", testUser, testPass, srv.Addr, ""))
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			msg := verificationMessage()
			msg.To = "user" + string(rune('a'+i)) + "@example.com"
			errs <- m.Send(context.Background(), msg)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := len(srv.Messages()); got != n {
		t.Errorf("server received %d messages, want %d", got, n)
	}
}
