package mail

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/dashtam/dashtam/commands"
)

// DefaultFrom is the sender used when WithFrom is not given; it is fine for a
// file outbox, while a real relay will usually want its own domain.
const DefaultFrom = "Dashtam <no-reply@localhost>"

// DefaultTimeout bounds one SMTP delivery (connect, TLS, AUTH and DATA)
// when the caller's context has no earlier deadline, so a stuck relay cannot
// hold a request forever.
const DefaultTimeout = 30 * time.Second

// Default SMTP ports: smtp:// is message submission (RFC 6409) and smtps://
// is submission over implicit TLS (RFC 8314).
const (
	defaultSubmissionPort = 587
	defaultSMTPSPort      = 465
)

// Option adjusts how New builds a Mailer.
type Option func(*options) error

type options struct {
	from      *netmail.Address
	timeout   time.Duration
	tlsConfig *tls.Config
}

// WithFrom sets the From address of every message, for example
// "Dashtam <no-reply@example.com>"; New fails if it does not parse.
func WithFrom(addr string) Option {
	return func(o *options) error {
		if strings.ContainsAny(addr, "\r\n") {
			return errors.New("from address contains a line break")
		}
		a, err := netmail.ParseAddress(addr)
		if err != nil {
			return fmt.Errorf("parse from address %q: %w", addr, err)
		}
		o.from = a
		return nil
	}
}

// WithTimeout bounds one SMTP delivery; the caller's context can end it
// sooner. The file outbox ignores it.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("timeout %s is not positive", d)
		}
		o.timeout = d
		return nil
	}
}

// WithTLSConfig sets the TLS configuration for smtps:// and STARTTLS, for
// example to trust a private CA; ServerName defaults to the URL's host.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return errors.New("nil TLS config")
		}
		o.tlsConfig = cfg.Clone()
		return nil
	}
}

// New returns the Mailer that rawURL (the value of DASHTAM_MAIL_URL) names:
//
//	smtp://user:pass@host:port[?tls=starttls|mandatory|none]  STARTTLS when offered by default; port 587
//	smtps://user:pass@host:port                             implicit TLS; port 465
//	file:///absolute/dir                                    one .eml file per message
//
// Credentials are percent-decoded, so a password containing '@' or ':' is
// written %40 or %3A. Errors name what is wrong but never echo the password.
func New(rawURL string, opts ...Option) (commands.Mailer, error) {
	o := options{timeout: DefaultTimeout}
	from, err := netmail.ParseAddress(DefaultFrom)
	if err != nil {
		return nil, fmt.Errorf("parse default from address: %w", err)
	}
	o.from = from
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configure mailer: %w", err)
		}
	}

	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "smtp", "smtps":
		return newSMTP(u, o)
	case "file":
		return newOutboxFromURL(u, o)
	case "":
		return nil, fmt.Errorf("mail URL %q has no scheme: want smtp://, smtps:// or file://", u.Redacted())
	default:
		return nil, fmt.Errorf("mail URL scheme %q is not supported: want smtp://, smtps:// or file://", u.Scheme)
	}
}

// parseURL parses rawURL without letting the password reach an error: the
// standard library quotes the whole input in its parse errors, so a failure
// is reported on a copy whose user info has been blanked out.
func parseURL(rawURL string) (*url.URL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, errors.New("mail URL is empty: want smtp://user:pass@host:port or file:///dir")
	}
	u, err := url.Parse(rawURL)
	if err == nil {
		return u, nil
	}
	redacted := redactUserinfo(rawURL)
	if redacted == rawURL {
		return nil, fmt.Errorf("parse mail URL: %w", err)
	}
	if _, err := url.Parse(redacted); err != nil {
		return nil, fmt.Errorf("parse mail URL: %w", err)
	}
	return nil, errors.New("parse mail URL: malformed user info (percent-encode reserved characters in the user name and password)")
}

// redactUserinfo replaces whatever sits between "://" and the last '@' of the
// authority with "xxxxx".
func redactUserinfo(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:i+3] + "xxxxx" + rest[at:]
}

// smtpSettings is a parsed smtp:// or smtps:// URL.
type smtpSettings struct {
	host        string
	port        int
	implicitTLS bool
	policy      gomail.TLSPolicy
	user, pass  string
	auth        bool
}

func parseSMTPURL(u *url.URL) (smtpSettings, error) {
	s := smtpSettings{implicitTLS: u.Scheme == "smtps", policy: gomail.TLSOpportunistic}
	s.host = u.Hostname()
	if s.host == "" {
		return s, fmt.Errorf("mail URL %q has no host: want %s://user:pass@host:port", u.Redacted(), u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return s, fmt.Errorf("mail URL %q has a path; an SMTP URL is %s://user:pass@host:port", u.Redacted(), u.Scheme)
	}
	s.port = defaultSubmissionPort
	if s.implicitTLS {
		s.port = defaultSMTPSPort
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("mail URL %q has an invalid port %q", u.Redacted(), p)
		}
		s.port = n
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		s.auth = s.user != ""
	}

	q := u.Query()
	for k := range q {
		if k != "tls" {
			return s, fmt.Errorf("mail URL %q has unknown parameter %q (known: tls)", u.Redacted(), k)
		}
	}
	mode := q.Get("tls")
	if s.implicitTLS {
		if mode != "" && mode != "mandatory" {
			return s, fmt.Errorf("mail URL %q: smtps:// always uses TLS, tls=%s contradicts it", u.Redacted(), mode)
		}
		s.policy = gomail.TLSMandatory
		return s, nil
	}
	switch mode {
	case "", "starttls", "opportunistic":
		s.policy = gomail.TLSOpportunistic
	case "mandatory":
		s.policy = gomail.TLSMandatory
	case "none":
		s.policy = gomail.NoTLS
		// A password sent in clear to another machine is readable by anyone
		// on the path; only a relay on this host may be reached that way.
		if s.auth && !isLoopback(s.host) {
			return s, fmt.Errorf("mail URL %q: refusing to send credentials to %s without TLS; use tls=starttls, tls=mandatory or smtps://", u.Redacted(), s.host)
		}
	default:
		return s, fmt.Errorf("mail URL %q: tls=%q is not one of none, starttls, mandatory", u.Redacted(), mode)
	}
	return s, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newOutboxFromURL(u *url.URL, o options) (*Outbox, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("mail URL %q: the directory must be absolute, as in file:///var/lib/dashtam/mail (%q was read as a host)", u.Redacted(), u.Host)
	}
	if u.Opaque != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("mail URL %q: the directory must be absolute, as in file:///var/lib/dashtam/mail", u.Redacted())
	}
	if u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("mail URL %q: file:// takes only a directory", u.Redacted())
	}
	return newOutbox(filepath.Clean(u.Path), o)
}
