package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"golang.org/x/oauth2"

	"github.com/dashtam/dashtam/commands"
)

// Slug identifies the sandbox in the catalog, in connections and in its
// callback path (/oauth/sandbox/callback).
const Slug = "sandbox"

// ProviderConfig configures the adapter.
type ProviderConfig struct {
	// BaseURL is where the institution is mounted as browsers reach it:
	// the server's public URL followed by Prefix, e.g.
	// http://127.0.0.1:8080/sandbox. The authorize page is under it.
	BaseURL string
	// APIBaseURL is where the adapter itself reaches the institution for
	// the token, revoke and data calls, when that differs from BaseURL
	// (a server behind a proxy calling itself on its listen address);
	// BaseURL when empty.
	APIBaseURL string
	// ClientID and ClientSecret authenticate to the token and revoke
	// endpoints; RedirectURI is the callback registered with the institution.
	ClientID     string
	ClientSecret string
	RedirectURI  string
	// HTTPClient makes every call; a client with a 30-second timeout when nil.
	HTTPClient *http.Client
	// Now is the clock that turns expires_in into an instant; time.Now when nil.
	Now func() time.Time
	// PageSize is how many transactions to ask for per call; 1000 when zero.
	PageSize int
}

// Provider is the commands.Provider adapter of the sandbox institution. It
// uses the institution only over HTTP, as a real provider's adapter does.
type Provider struct {
	oauth    oauth2.Config
	api      string
	revoke   string
	client   *http.Client
	now      func() time.Time
	pageSize int
}

var _ commands.Provider = (*Provider)(nil)

// maxBody bounds any answer the adapter reads: a page of a thousand
// transactions is well under a megabyte.
const maxBody = 16 << 20

// NewProvider returns the adapter cfg describes.
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	if cfg.APIBaseURL == "" {
		cfg.APIBaseURL = cfg.BaseURL
	}
	for _, u := range []string{cfg.BaseURL, cfg.APIBaseURL} {
		parsed, err := url.Parse(u)
		if err != nil || !parsed.IsAbs() || (parsed.Scheme != "http" && parsed.Scheme != "https") {
			return nil, fmt.Errorf("sandbox: base URL %q must be an absolute http(s) URL", u)
		}
	}
	switch {
	case cfg.ClientID == "" || cfg.ClientSecret == "":
		return nil, errors.New("sandbox: client id and secret are required")
	case cfg.RedirectURI == "":
		return nil, errors.New("sandbox: redirect URI is required")
	case cfg.PageSize < 0 || cfg.PageSize > maxPageSize:
		return nil, fmt.Errorf("sandbox: page size %d outside 1 to %d", cfg.PageSize, maxPageSize)
	}
	browser, server := strings.TrimSuffix(cfg.BaseURL, "/"), strings.TrimSuffix(cfg.APIBaseURL, "/")
	p := &Provider{
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURI,
			Endpoint: oauth2.Endpoint{AuthURL: browser + AuthorizePath, TokenURL: server + TokenPath, AuthStyle: oauth2.AuthStyleInHeader},
			Scopes:   []string{grantedScope},
		},
		api: server + APIPath, revoke: server + RevokePath, client: cfg.HTTPClient, now: cfg.Now, pageSize: cfg.PageSize,
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 30 * time.Second}
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.pageSize == 0 {
		p.pageSize = maxPageSize
	}
	return p, nil
}

// Info describes the sandbox for the catalog.
func (p *Provider) Info() commands.ProviderInfo {
	return commands.ProviderInfo{Slug: Slug, Name: "Sandbox Bank", AuthType: "oauth2", PKCE: true}
}

// AuthorizationURL returns the institution's authorize page for state and
// the S256 challenge.
func (p *Provider) AuthorizationURL(state, challenge string) string {
	return p.oauth.AuthCodeURL(state,
		oauth2.SetAuthURLParam("code_challenge", challenge), oauth2.SetAuthURLParam("code_challenge_method", "S256"))
}

// AuthorizationURLForAlias is AuthorizationURL with the connection's alias
// as login_hint: the authorize page then suggests the alias as the sandbox
// user and preselects the persona PersonaForAlias maps it to, so a client
// chooses a persona by naming its connection.
func (p *Provider) AuthorizationURLForAlias(state, challenge, alias string) string {
	return p.oauth.AuthCodeURL(state,
		oauth2.SetAuthURLParam("code_challenge", challenge), oauth2.SetAuthURLParam("code_challenge_method", "S256"),
		oauth2.SetAuthURLParam("login_hint", truncate(alias, maxUserLen)))
}

// tokenContext makes oauth2 use the adapter's HTTP client.
func (p *Provider) tokenContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.client)
}

// Exchange trades the callback's code and the PKCE verifier for credentials.
func (p *Provider) Exchange(ctx context.Context, code, verifier string) (commands.Credentials, error) {
	tok, err := p.oauth.Exchange(p.tokenContext(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return commands.Credentials{}, tokenError(ctx, "exchange code", err)
	}
	return p.credentials(tok, commands.Credentials{})
}

// Refresh trades c's refresh token for new credentials; the refresh
// token's hard expiry never moves.
func (p *Provider) Refresh(ctx context.Context, c commands.Credentials) (commands.Credentials, error) {
	if c.RefreshToken == "" {
		return commands.Credentials{}, fmt.Errorf("sandbox: refresh: no refresh token: %w", commands.ErrProviderAuth)
	}
	// An expired token in the source makes oauth2 refresh at once; the
	// adapter never refreshes behind the caller's back elsewhere.
	src := p.oauth.TokenSource(p.tokenContext(ctx), &oauth2.Token{RefreshToken: c.RefreshToken, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		return commands.Credentials{}, tokenError(ctx, "refresh", err)
	}
	return p.credentials(tok, c)
}

// credentials maps a token response, keeping prev's refresh token and
// expiry when the answer has none.
func (p *Provider) credentials(tok *oauth2.Token, prev commands.Credentials) (commands.Credentials, error) {
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "Bearer") {
		return commands.Credentials{}, fmt.Errorf("sandbox: token type %q: %w", truncate(tok.TokenType, 20), commands.ErrProviderInvalidResponse)
	}
	if tok.ExpiresIn <= 0 {
		return commands.Credentials{}, fmt.Errorf("sandbox: token response without expires_in: %w", commands.ErrProviderInvalidResponse)
	}
	c := commands.Credentials{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: "Bearer",
		AccessExpiresAt:  p.now().Add(time.Duration(tok.ExpiresIn) * time.Second).UTC(),
		RefreshExpiresAt: prev.RefreshExpiresAt, Scope: prev.Scope,
	}
	if c.RefreshToken == "" {
		c.RefreshToken = prev.RefreshToken
	}
	if at, ok := tok.Extra("refresh_token_expires_at").(float64); ok && at > 0 {
		c.RefreshExpiresAt = time.Unix(int64(at), 0).UTC()
	}
	if s, ok := tok.Extra("scope").(string); ok {
		c.Scope = s
	}
	if c.RefreshToken == "" {
		return commands.Credentials{}, fmt.Errorf("sandbox: token response without refresh token: %w", commands.ErrProviderInvalidResponse)
	}
	return c, nil
}

// Revoke revokes c's grant at the institution (RFC 7009), so that neither
// its access nor its refresh token works any more. Disconnecting calls it
// before forgetting the credentials.
func (p *Provider) Revoke(ctx context.Context, c commands.Credentials) error {
	form := url.Values{"token": {c.RefreshToken}, "token_type_hint": {"refresh_token"}}
	if c.RefreshToken == "" {
		form = url.Values{"token": {c.AccessToken}, "token_type_hint": {"access_token"}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.revoke, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sandbox: revoke: build request: %w", commands.ErrProviderInvalidResponse)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(p.oauth.ClientID), url.QueryEscape(p.oauth.ClientSecret))
	resp, err := p.client.Do(req)
	if err != nil {
		return transportError(ctx, "revoke", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return statusError("revoke", resp, nil)
}

// Accounts lists the accounts the credentials reach.
func (p *Provider) Accounts(ctx context.Context, c commands.Credentials) ([]commands.ProviderAccount, error) {
	var list struct {
		Accounts []json.RawMessage `json:"accounts"`
	}
	if err := p.get(ctx, c, "list accounts", "/accounts", nil, &list); err != nil {
		return nil, err
	}
	out := make([]commands.ProviderAccount, 0, len(list.Accounts))
	for _, raw := range list.Accounts {
		a, err := mapAccount(raw)
		if err != nil {
			return nil, fmt.Errorf("sandbox: list accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// Transactions lists the account's transactions dated within [from, to),
// in windows of at most maxRangeDays and pages of p.pageSize.
func (p *Provider) Transactions(ctx context.Context, c commands.Credentials, accountID string, from, to time.Time) ([]commands.ProviderTransaction, error) {
	first, end := ceilDay(from), ceilDay(to) // booking dates d with first <= d < end
	var out []commands.ProviderTransaction
	seen := map[string]bool{}
	for start := first; start.Before(end); start = start.AddDate(0, 0, maxRangeDays) {
		last := start.AddDate(0, 0, maxRangeDays-1)
		if !last.Before(end) {
			last = end.AddDate(0, 0, -1)
		}
		q := url.Values{"start_date": {start.Format(time.DateOnly)}, "end_date": {last.Format(time.DateOnly)},
			"page_size": {strconv.Itoa(p.pageSize)}}
		for {
			var page struct {
				Transactions []json.RawMessage `json:"transactions"`
				NextCursor   string            `json:"next_cursor"`
			}
			if err := p.get(ctx, c, "list transactions", "/accounts/"+url.PathEscape(accountID)+"/transactions", q, &page); err != nil {
				return nil, err
			}
			for _, raw := range page.Transactions {
				t, err := mapTransaction(raw)
				if err != nil {
					return nil, fmt.Errorf("sandbox: list transactions: %w", err)
				}
				switch {
				case t.AccountID != accountID:
					return nil, fmt.Errorf("sandbox: list transactions: a transaction of another account: %w", commands.ErrProviderInvalidResponse)
				case t.Date.Before(start) || t.Date.After(last):
					return nil, fmt.Errorf("sandbox: list transactions: a transaction outside the asked dates: %w", commands.ErrProviderInvalidResponse)
				case seen[t.ID]:
					continue // a keyset page cannot repeat one, but never hand out duplicates
				}
				seen[t.ID] = true
				out = append(out, t)
			}
			if page.NextCursor == "" {
				break
			}
			if page.NextCursor == q.Get("cursor") {
				return nil, fmt.Errorf("sandbox: list transactions: cursor does not advance: %w", commands.ErrProviderInvalidResponse)
			}
			q.Set("cursor", page.NextCursor)
		}
	}
	return out, nil
}

// ceilDay returns the first midnight (UTC) at or after t.
func ceilDay(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	if d.Before(t) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// Holdings lists the account's positions.
func (p *Provider) Holdings(ctx context.Context, c commands.Credentials, accountID string) ([]commands.ProviderHolding, error) {
	var list struct {
		Positions []json.RawMessage `json:"positions"`
	}
	if err := p.get(ctx, c, "list positions", "/accounts/"+url.PathEscape(accountID)+"/positions", nil, &list); err != nil {
		return nil, err
	}
	out := make([]commands.ProviderHolding, 0, len(list.Positions))
	for _, raw := range list.Positions {
		h, err := mapPosition(raw)
		if err != nil {
			return nil, fmt.Errorf("sandbox: list positions: %w", err)
		}
		out = append(out, h)
	}
	return out, nil
}

// get calls a data endpoint with c's access token and decodes a 200 into v.
// It never refreshes: an expired token is the caller's ErrProviderAuth.
func (p *Provider) get(ctx context.Context, c commands.Credentials, op, path string, q url.Values, v any) error {
	u := p.api + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("sandbox: %s: build request: %w", op, commands.ErrProviderInvalidResponse)
	}
	req.Header.Set("Accept", "application/json")
	(&oauth2.Token{AccessToken: c.AccessToken, TokenType: "Bearer"}).SetAuthHeader(req)
	resp, err := p.client.Do(req)
	if err != nil {
		return transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return transportError(ctx, op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(op, resp, body)
	}
	if len(body) > maxBody {
		return fmt.Errorf("sandbox: %s: answer larger than %d bytes: %w", op, maxBody, commands.ErrProviderInvalidResponse)
	}
	if err := gojson.Unmarshal(body, v); err != nil {
		return fmt.Errorf("sandbox: %s: answer is not the sandbox dialect: %w", op, commands.ErrProviderInvalidResponse)
	}
	return nil
}
