package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands/syncs"
)

// serveConfig is the validated configuration of `dashtam serve` (README,
// Configuration).
type serveConfig struct {
	HTTPAddr  string
	PublicURL string
	// Keyring seals provider credentials; its newest key seals, every key opens.
	Keyring   *vault.Keyring
	JWTSecret []byte
	MailURL   string
	Providers []string
	// Schwab configures the Schwab adapter when "schwab" is enabled.
	Schwab schwabConfig
	// IDKey keys the provider account ids derived from account numbers
	// (Schwab); it must never change, or every such account gets a new id.
	IDKey []byte
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client; empty means the socket's peer is the client.
	TrustedProxies []netip.Prefix
	// RotationGrace is how long tokens issued just before a user or global
	// token rotation stay accepted (identity.Deps.RotationGrace).
	RotationGrace time.Duration
	// Role says what this process runs: "api", "worker" or "all".
	Role string
	// SyncInterval is how often every active connection is synced.
	SyncInterval time.Duration
	// EventSink is where the relay publishes integration events:
	// "postgres", "none" or a nats:// URL (DASHTAM_EVENT_SINK).
	EventSink string
	// WebhookAllowPrivate lets webhook URLs use plain http and private,
	// loopback or link-local addresses (development and tests).
	WebhookAllowPrivate bool
}

// schwabConfig is the SCHWAB_* variables.
type schwabConfig struct {
	ClientID, ClientSecret                     string
	RedirectURI, AuthURL, TokenURL, APIBaseURL string
}

// The roles of `serve --role`: the API and projectors, the background
// workers, or both.
const (
	roleAPI    = "api"
	roleWorker = "worker"
	roleAll    = "all"
)

// Serves says whether the process answers HTTP and runs the projectors.
func (c serveConfig) Serves() bool { return c.Role != roleWorker }

// Works says whether the process runs background jobs.
func (c serveConfig) Works() bool { return c.Role != roleAPI }

// maxRotationGrace bounds DASHTAM_TOKEN_ROTATION_GRACE: a rotation answers a
// suspected compromise, so the old tokens must not outlive it by more than a day.
const maxRotationGrace = 24 * time.Hour

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

	raw, from, err := secretSetting(getenv, "DASHTAM_ENCRYPTION_KEY", dataDir, "encryption.key")
	if err != nil {
		return c, err
	}
	if raw == "" {
		return c, fmt.Errorf("DASHTAM_ENCRYPTION_KEY is not set: it must be base64 of 32 random bytes, or a keyring id:base64,... newest first (make run generates one)")
	}
	if c.Keyring, err = vault.Parse(raw); err != nil {
		return c, fmt.Errorf("DASHTAM_ENCRYPTION_KEY%s is malformed: %v", from, err)
	}

	secret, from, err := secretSetting(getenv, "DASHTAM_JWT_SECRET", dataDir, "jwt.secret")
	if err != nil {
		return c, err
	}
	if secret == "" {
		return c, fmt.Errorf("DASHTAM_JWT_SECRET is not set: it must be at least 32 bytes (make run generates one)")
	}
	if len(secret) < 32 {
		return c, fmt.Errorf("DASHTAM_JWT_SECRET%s is too short: it must be at least 32 bytes", from)
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

	if c.enabled("schwab") {
		c.Schwab = schwabConfig{
			ClientID:     getenv("SCHWAB_CLIENT_ID"),
			ClientSecret: getenv("SCHWAB_CLIENT_SECRET"),
			RedirectURI:  orDefault(getenv("SCHWAB_REDIRECT_URI"), strings.TrimRight(c.PublicURL, "/")+"/oauth/schwab/callback"),
			AuthURL:      orDefault(getenv("SCHWAB_AUTH_URL"), "https://api.schwabapi.com/v1/oauth/authorize"),
			TokenURL:     orDefault(getenv("SCHWAB_TOKEN_URL"), "https://api.schwabapi.com/v1/oauth/token"),
			APIBaseURL:   orDefault(getenv("SCHWAB_API_BASE_URL"), "https://api.schwabapi.com/trader/v1"),
		}
		switch {
		case c.Schwab.ClientID == "":
			return c, fmt.Errorf("SCHWAB_CLIENT_ID is not set: the schwab provider is enabled (DASHTAM_PROVIDERS) and needs the app key")
		case c.Schwab.ClientSecret == "":
			return c, fmt.Errorf("SCHWAB_CLIENT_SECRET is not set: the schwab provider needs the app secret")
		}
		for name, v := range map[string]string{"SCHWAB_REDIRECT_URI": c.Schwab.RedirectURI, "SCHWAB_AUTH_URL": c.Schwab.AuthURL,
			"SCHWAB_TOKEN_URL": c.Schwab.TokenURL, "SCHWAB_API_BASE_URL": c.Schwab.APIBaseURL} {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return c, fmt.Errorf("%s %q is not an http(s) URL", name, v)
			}
		}
		raw, from, err := secretSetting(getenv, "DASHTAM_ID_KEY", dataDir, "id.key")
		if err != nil {
			return c, err
		}
		key, err := base64.StdEncoding.DecodeString(raw)
		if raw == "" || err != nil || len(key) < 32 {
			return c, fmt.Errorf("DASHTAM_ID_KEY%s must be base64 of at least 32 bytes, and never change: it keys the account ids derived from Schwab account numbers (make run generates one)", from)
		}
		c.IDKey = key
	}

	c.Role = orDefault(strings.TrimSpace(getenv("DASHTAM_ROLE")), roleAll)
	if c.Role != roleAPI && c.Role != roleWorker && c.Role != roleAll {
		return c, fmt.Errorf("DASHTAM_ROLE %q is not api, worker or all", c.Role)
	}

	c.SyncInterval = syncs.DefaultInterval
	if raw := strings.TrimSpace(getenv("DASHTAM_SYNC_INTERVAL")); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < connection.MinSyncInterval {
			return c, fmt.Errorf("DASHTAM_SYNC_INTERVAL %q is not a duration of at least 5m, such as 6h", raw)
		}
		c.SyncInterval = d
	}

	c.EventSink = orDefault(strings.TrimSpace(getenv("DASHTAM_EVENT_SINK")), sinkPostgres)
	if c.EventSink != sinkPostgres && c.EventSink != sinkNone && !strings.HasPrefix(c.EventSink, "nats://") {
		return c, fmt.Errorf("DASHTAM_EVENT_SINK %q is not postgres, none or a nats://host:port URL", c.EventSink)
	}
	switch raw := strings.TrimSpace(getenv("DASHTAM_WEBHOOK_ALLOW_PRIVATE")); raw {
	case "", "false":
	case "true":
		c.WebhookAllowPrivate = true
	default:
		return c, fmt.Errorf("DASHTAM_WEBHOOK_ALLOW_PRIVATE %q is not true or false", raw)
	}

	if raw := strings.TrimSpace(getenv("DASHTAM_TOKEN_ROTATION_GRACE")); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 || d > maxRotationGrace {
			return c, fmt.Errorf("DASHTAM_TOKEN_ROTATION_GRACE %q is not a duration from 0s to 24h, such as 5m", raw)
		}
		c.RotationGrace = d
	}
	return c, nil
}

// secretSetting returns the variable's value or, when it is unset, the
// development secret `make run` generated into the data dir (README, Configuration:
// that is the variable's default), so that every command run against the
// private cluster, not only serve under make run, finds the same secrets.
// from names the file for error messages; the value is never echoed.
func secretSetting(getenv func(string) string, name, dataDir, file string) (value, from string, err error) {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v, "", nil
	}
	path := filepath.Join(dataDir, file)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("%s is not set and %s cannot be read: %v", name, path, errors.Unwrap(err))
	}
	return strings.TrimSpace(string(b)), " (from " + path + ")", nil
}

// enabled reports whether the provider slug is enabled.
func (c serveConfig) enabled(slug string) bool {
	for _, p := range c.Providers {
		if p == slug {
			return true
		}
	}
	return false
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// osGetenv is the real environment, a variable so tests can pass their own.
var osGetenv = os.Getenv
