package mail

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/dashtam/dashtam/commands"
)

// SMTP delivers each message over its own SMTP session (one connection per
// Send), which keeps concurrent sends independent and needs no pool to
// notice a relay that dropped an idle connection.
type SMTP struct {
	s         smtpSettings
	o         options
	tlsConfig *tls.Config
	display   string
}

var _ commands.Mailer = (*SMTP)(nil)

// authMechanisms are tried in order among those the server offers; the SCRAM
// mechanisms never reveal the password, and go-mail refuses PLAIN and LOGIN
// over an unencrypted connection to anything but a loopback address.
var authMechanisms = []gomail.SMTPAuthType{
	gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin,
}

func newSMTP(u *url.URL, o options) (*SMTP, error) {
	s, err := parseSMTPURL(u)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.tlsConfig != nil {
		cfg = o.tlsConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	m := &SMTP{s: s, o: o, tlsConfig: cfg}
	m.display = fmt.Sprintf("%s://%s (tls=%s)", u.Scheme, m.addr(), tlsMode(s))
	if s.auth {
		m.display = fmt.Sprintf("%s://%s@%s (tls=%s)", u.Scheme, url.User(s.user).String(), m.addr(), tlsMode(s))
	}
	return m, nil
}

func tlsMode(s smtpSettings) string {
	switch {
	case s.implicitTLS:
		return "implicit"
	case s.policy == gomail.TLSMandatory:
		return "mandatory"
	case s.policy == gomail.NoTLS:
		return "none"
	default:
		return "starttls"
	}
}

func (m *SMTP) addr() string { return net.JoinHostPort(m.s.host, strconv.Itoa(m.s.port)) }

// String describes the transport without the password, for start-up logs.
func (m *SMTP) String() string { return m.display }

// Send delivers msg in one SMTP session bounded by ctx and the configured
// timeout; see commands.Mailer for the errors it returns. Errors name the
// server's host:port and never the password.
func (m *SMTP) Send(ctx context.Context, msg commands.Message) error {
	gm, err := buildMessage(m.o.from, msg)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send mail via %s: %w", m.addr(), err)
	}

	opts := []gomail.Option{
		gomail.WithPort(m.s.port),
		gomail.WithTimeout(m.o.timeout),
		gomail.WithTLSPolicy(m.s.policy),
		gomail.WithTLSConfig(m.tlsConfig),
		gomail.WithDialContextFunc(m.dialer(ctx)),
	}
	if m.s.implicitTLS {
		opts = append(opts, gomail.WithSSL())
	}
	if m.s.auth {
		opts = append(opts,
			gomail.WithUsername(m.s.user),
			gomail.WithPassword(m.s.pass),
			gomail.WithOpportunisticSMTPAuth(authMechanisms...),
		)
	}
	// A fresh client per Send: go-mail's Client keeps per-session state
	// (the negotiated auth type among it) that concurrent sends would race on.
	c, err := gomail.NewClient(m.s.host, opts...)
	if err != nil {
		return fmt.Errorf("send mail via %s: configure client: %w", m.addr(), err)
	}
	err = c.DialAndSendWithContext(ctx, gm)
	if err != nil && gm.IsDelivered() {
		// The server accepted DATA; only QUIT failed. Reporting that as a
		// failure would invite a retry that mails the user twice.
		return nil
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("send mail via %s: %w: %w", m.addr(), cerr, err)
		}
		return fmt.Errorf("send mail via %s: %w", m.addr(), err)
	}
	return nil
}

// dialer connects to the server with ctx watching the whole session, not
// only the dial: go-mail consults the context only while connecting, so the
// connection itself must give up when ctx ends. For smtps:// it also does
// the TLS handshake, since go-mail leaves that to a custom dialer.
func (m *SMTP) dialer(sessionCtx context.Context) gomail.DialContextFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		conn := watchContext(sessionCtx, raw)
		if !m.s.implicitTLS {
			return conn, nil
		}
		tc := tls.Client(conn, m.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", address, err)
		}
		return tc, nil
	}
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads and
// writes on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)
