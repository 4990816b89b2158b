package mail_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/mail"
)

func TestNewRejectsBadURLs(t *testing.T) {
	tests := map[string]struct {
		url  string
		want string // a fragment the error must contain to be useful
	}{
		"empty":                  {"", "empty"},
		"http":                   {"http://x", `scheme "http" is not supported`},
		"no scheme":              {"/var/mail", "no scheme"},
		"smtp without host":      {"smtp://", "no host"},
		"smtp with empty host":   {"smtp://user:s3cret@:25", "no host"},
		"smtp with path":         {"smtp://mail.example.com/inbox", "path"},
		"smtp bad port":          {"smtp://mail.example.com:99999", "invalid port"},
		"smtp non-numeric port":  {"smtp://user:s3cret@mail.example.com:abc", "port"},
		"smtp unknown tls":       {"smtp://mail.example.com?tls=maybe", "tls="},
		"smtp unknown parameter": {"smtp://mail.example.com?tsl=none", `unknown parameter "tsl"`},
		"smtps with tls=none":    {"smtps://mail.example.com?tls=none", "smtps:// always uses TLS"},
		"password in clear":      {"smtp://user:s3cret@mail.example.com:25?tls=none", "without TLS"},
		"unescaped password":     {"smtp://user:s3cret%zz@mail.example.com", "user info"},
		"file relative":          {"file://relative/dir", "absolute"},
		"file dot relative":      {"file://./.dashtam/mail", "absolute"},
		"file opaque":            {"file:mail", "absolute"},
		"file empty":             {"file://", "absolute"},
		"file with query":        {"file:///tmp/x?y=1", "only a directory"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, err := mail.New(tc.url)
			if err == nil {
				t.Fatalf("New(%q) = %v, want an error", tc.url, m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%q) error %q does not mention %q", tc.url, err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestNewAcceptsDocumentedURLs(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"smtp default port":            "smtp://user:pass@mail.example.com",
		"smtp explicit port":           "smtp://user:pass@mail.example.com:2525",
		"smtp starttls":                "smtp://user:pass@mail.example.com?tls=starttls",
		"smtp mandatory":               "smtp://user:pass@mail.example.com?tls=mandatory",
		"smtp none without auth":       "smtp://mail.example.com:25?tls=none",
		"smtp none with auth loopback": "smtp://user:pass@127.0.0.1:1025?tls=none",
		"smtp ipv6":                    "smtp://user:pass@[::1]:1025",
		"smtps":                        "smtps://user:pass@mail.example.com",
		"file":                         "file://" + filepath.Join(dir, "a"),
		"file localhost":               "file://localhost" + filepath.Join(dir, "b"),
	}
	for name, u := range tests {
		t.Run(name, func(t *testing.T) {
			m, err := mail.New(u)
			if err != nil {
				t.Fatalf("New(%q): %v", u, err)
			}
			if s := fmt.Sprint(m); strings.Contains(s, "pass@") || strings.Contains(s, ":pass") {
				t.Errorf("String() reveals the password: %s", s)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := "file://" + t.TempDir()
	for name, opt := range map[string]mail.Option{
		"from not an address": mail.WithFrom("nobody"),
		"from with CRLF":      mail.WithFrom("a@example.com\r\nBcc: b@example.com"),
		"zero timeout":        mail.WithTimeout(0),
		"nil tls config":      mail.WithTLSConfig(nil),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := mail.New(dir, opt); err == nil {
				t.Fatal("New accepted a bad option")
			}
		})
	}
	if _, err := mail.New(dir, mail.WithTimeout(time.Second)); err != nil {
		t.Fatal(err)
	}
}
