package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/adapters/providers/schwab"
	"github.com/dashtam/dashtam/adapters/ratelimit"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/web"
)

// providerRates are the calls a minute each provider allows one app,
// shared by every instance through the pacer: Schwab's is about 120.
var providerRates = map[string]int{"schwab": 120}

// sandboxClientID is the one client the built-in sandbox institution knows:
// this server.
const sandboxClientID = "dashtam"

// providerSet is the enabled providers and what serving them needs.
type providerSet struct {
	registry *commands.Providers
	// mounts are served by the HTTP server: the sandbox institution.
	mounts []web.Mount
}

// newProviders builds the registry of the enabled providers from cfg. The
// sandbox institution is served by this process under /sandbox; its
// adapter sends browsers to the public URL and calls the institution
// itself on the listen address, so a server behind a proxy reaches itself.
func newProviders(cfg serveConfig, listenAddr string, now func() time.Time) (providerSet, error) {
	var set providerSet
	var ps []commands.Provider
	public := strings.TrimRight(cfg.PublicURL, "/")
	for _, slug := range cfg.Providers {
		switch slug {
		case "sandbox":
			// Derived from the JWT secret, so a restart keeps sandbox
			// tokens valid and rotating that secret ends them.
			key := deriveKey(cfg.JWTSecret, "dashtam sandbox signing key v1")
			secret := fmt.Sprintf("%x", deriveKey(cfg.JWTSecret, "dashtam sandbox client secret v1"))
			redirect := public + "/oauth/sandbox/callback"
			inst, err := sandbox.NewInstitution(sandbox.Config{
				Key: key, ClientID: sandboxClientID, ClientSecret: secret, RedirectURIs: []string{redirect}, Now: now,
			})
			if err != nil {
				return providerSet{}, fmt.Errorf("sandbox institution: %w", err)
			}
			p, err := sandbox.NewProvider(sandbox.ProviderConfig{
				BaseURL: public + sandbox.Prefix, APIBaseURL: "http://" + listenAddr + sandbox.Prefix,
				ClientID: sandboxClientID, ClientSecret: secret, RedirectURI: redirect, Now: now,
			})
			if err != nil {
				return providerSet{}, fmt.Errorf("sandbox provider: %w", err)
			}
			ps = append(ps, p)
			set.mounts = append(set.mounts, web.Mount{Prefix: sandbox.Prefix, Handler: inst.Handler(), RateLimit: "public_reads"})
		case "schwab":
			p, err := schwab.New(schwab.Config{
				ClientID: cfg.Schwab.ClientID, ClientSecret: cfg.Schwab.ClientSecret, RedirectURI: cfg.Schwab.RedirectURI,
				AuthURL: cfg.Schwab.AuthURL, TokenURL: cfg.Schwab.TokenURL, APIBaseURL: cfg.Schwab.APIBaseURL,
				AccountIDKey: cfg.IDKey, HTTPClient: &http.Client{Timeout: 30 * time.Second}, Clock: now,
			})
			if err != nil {
				return providerSet{}, fmt.Errorf("schwab provider: %w", err)
			}
			ps = append(ps, p)
		}
	}
	reg, err := commands.NewProviders(ps...)
	if err != nil {
		return providerSet{}, err
	}
	set.registry = reg
	return set, nil
}

// identityJobs registers the identity use cases' jobs with workers: every
// mail, and the public requests decided after their answer.
func identityJobs(w *jobs.Workers, h *identity.Handler) {
	jobs.Handle(w, h.SendLinkMail)
	jobs.Handle(w, h.RunAddressRequest)
	jobs.Handle(w, h.SendUserMail)
}

// connectionJobs registers the connection use cases' jobs with workers.
func connectionJobs(w *jobs.Workers, h *connections.Handler) {
	jobs.Handle(w, h.RunRefresh)
	jobs.Handle(w, h.ExpireAuthorization)
	jobs.Handle(w, h.RemindReauthorization)
	jobs.Handle(w, h.FinishDisconnect)
}

// newConnections wires the connection use cases over their adapters.
func newConnections(cfg serveConfig, store *eventstore.Store, pool *pgxpool.Pool, providers *commands.Providers,
	j commands.Jobs, now func() time.Time, logger *slog.Logger) (*connections.Handler, error) {
	pacer, err := ratelimit.NewPacer(pool, providerRates)
	if err != nil {
		return nil, err
	}
	return connections.NewHandler(connections.Deps{
		Store: store, Pool: pool, Providers: providers, Vault: cfg.Keyring, Jobs: j, Pacer: pacer, Now: now, Logger: logger,
	})
}
