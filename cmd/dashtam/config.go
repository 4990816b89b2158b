package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// serveConfig is the validated configuration of `dashtam serve` (ARCHITECTURE §5).
type serveConfig struct {
	HTTPAddr      string
	PublicURL     string
	EncryptionKey []byte
	JWTSecret     []byte
	MailURL       string
	Providers     []string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client; empty means the socket's peer is the client.
	TrustedProxies []netip.Prefix
}

// knownProviders are the provider slugs this binary can enable.
var knownProviders = map[string]string{
	"sandbox": "Dashtam Sandbox",
	"schwab":  "Charles Schwab",
}

// loadServeConfig reads and checks the environment. Every error is one line
// naming the variable at fault, because start-up failures are read by people
// in a hurry; secrets' values are never echoed back.
func loadServeConfig(getenv func(string) string, dataDir string) (serveConfig, error) {
	c := serveConfig{
		HTTPAddr:  orDefault(getenv("DASHTAM_HTTP_ADDR"), "127.0.0.1:8080"),
		PublicURL: orDefault(getenv("DASHTAM_PUBLIC_URL"), "http://127.0.0.1:8080"),
		MailURL:   orDefault(getenv("DASHTAM_MAIL_URL"), "file://"+strings.TrimSuffix(dataDir, "/")+"/mail"),
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return c, fmt.Errorf("DASHTAM_HTTP_ADDR %q is not host:port", c.HTTPAddr)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("DASHTAM_PUBLIC_URL %q is not an http(s) URL", c.PublicURL)
	}
	// Only the scheme is checked here; adapters/mail validates the rest when
	// the mailer is built. url.Parse's error would quote the URL, password
	// included, so it is not passed on.
	if u, err := url.Parse(c.MailURL); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps" && u.Scheme != "file") {
		return c, fmt.Errorf("DASHTAM_MAIL_URL must be smtp://user:pass@host:port, smtps://... or file:///DIR")
	}

	raw := getenv("DASHTAM_ENCRYPTION_KEY")
	if raw == "" {
		return c, fmt.Errorf("DASHTAM_ENCRYPTION_KEY is not set: it must be base64 of 32 random bytes (make run generates one)")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil || len(key) != 32 {
		return c, fmt.Errorf("DASHTAM_ENCRYPTION_KEY is malformed: it must be base64 of exactly 32 bytes")
	}
	c.EncryptionKey = key

	secret := strings.TrimSpace(getenv("DASHTAM_JWT_SECRET"))
	if secret == "" {
		return c, fmt.Errorf("DASHTAM_JWT_SECRET is not set: it must be at least 32 bytes (make run generates one)")
	}
	if len(secret) < 32 {
		return c, fmt.Errorf("DASHTAM_JWT_SECRET is too short: it must be at least 32 bytes")
	}
	c.JWTSecret = []byte(secret)

	providers := getenv("DASHTAM_PROVIDERS")
	if providers == "" {
		providers = "sandbox"
		if getenv("SCHWAB_CLIENT_ID") != "" {
			providers += ",schwab"
		}
	}
	for _, p := range strings.Split(providers, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, ok := knownProviders[p]; !ok {
			return c, fmt.Errorf("DASHTAM_PROVIDERS names unknown provider %q (known: sandbox, schwab)", p)
		}
		c.Providers = append(c.Providers, p)
	}

	for _, raw := range strings.Split(getenv("DASHTAM_TRUSTED_PROXIES"), ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(raw)
		if err != nil {
			return c, fmt.Errorf("DASHTAM_TRUSTED_PROXIES entry %q is not a CIDR prefix such as 10.0.0.0/8", raw)
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix)
	}
	return c, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// osGetenv is the real environment, a variable so tests can pass their own.
var osGetenv = os.Getenv
