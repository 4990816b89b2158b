package sandbox_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/commands"
)

func wantErr(tb testing.TB, err, kind error) {
	tb.Helper()
	if !errors.Is(err, kind) {
		tb.Fatalf("want %v, got %v", kind, err)
	}
}

func TestDenyRedirectsWithAccessDenied(t *testing.T) {
	e := newEnv(t, envOptions{})
	q := e.fake.decide(t, e.provider.AuthorizationURL("deny-state", testChallenge), "deny", nil)
	if q.Get("error") != "access_denied" || q.Get("state") != "deny-state" || q.Get("code") != "" {
		t.Fatalf("deny answered %v", q)
	}
}

// An unknown client or callback must never get a redirect: the page says
// what is wrong instead (RFC 6749 §4.1.2.1).
func TestAuthorizeRefusesUnknownClientOrCallback(t *testing.T) {
	e := newEnv(t, envOptions{})
	good, _ := url.Parse(e.provider.AuthorizationURL("s", testChallenge))
	for name, change := range map[string]func(url.Values){
		"unknown client":   func(q url.Values) { q.Set("client_id", "someone-else") },
		"unknown callback": func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") },
		"callback prefix":  func(q url.Values) { q.Set("redirect_uri", testRedirect+"/more") },
	} {
		t.Run(name, func(t *testing.T) {
			u := *good
			q := u.Query()
			change(q)
			u.RawQuery = q.Encode()
			resp, err := noRedirects(e.srv.Client()).Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d, Location %q: want 400 without redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

// The sandbox requires PKCE with S256, as OAuth 2.1 does: a client that
// forgets it learns at once, on the callback.
func TestAuthorizeRequiresPKCE(t *testing.T) {
	e := newEnv(t, envOptions{})
	good, _ := url.Parse(e.provider.AuthorizationURL("pkce-state", testChallenge))
	for name, change := range map[string]func(url.Values){
		"no challenge":    func(q url.Values) { q.Del("code_challenge") },
		"plain method":    func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"short challenge": func(q url.Values) { q.Set("code_challenge", "abc") },
		"token flow":      func(q url.Values) { q.Set("response_type", "token") },
		"unknown scope":   func(q url.Values) { q.Set("scope", "read write") },
	} {
		t.Run(name, func(t *testing.T) {
			u := *good
			q := u.Query()
			change(q)
			u.RawQuery = q.Encode()
			resp, err := noRedirects(e.srv.Client()).Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") == "" || loc.Query().Get("state") != "pkce-state" {
				t.Fatalf("status %d, Location %q: want an error redirect with the state", resp.StatusCode, loc)
			}
		})
	}
}

func TestAuthorizePageIsSafeInABrowser(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := e.srv.Client().Get(e.provider.AuthorizationURL("s", testChallenge))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "form-action 'self' https://dashtam.example", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", h)
	}
	page := string(body)
	for _, want := range []string{"Approve", "Deny", `value="expiring"`, `value="flaky"`, `value="large"`, "dashtam.example"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, asset := range []string{"<script", " src=", "<link", "url("} {
		if strings.Contains(strings.ToLower(page), asset) {
			t.Errorf("page has %q: it must need no script and load nothing", asset)
		}
	}
}

func TestTamperedAuthorizeFormIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp := submitAuthorize(t, e.srv.Client(), e.provider.AuthorizationURL("s", testChallenge), "approve",
		url.Values{"request": {"sbxf_eyJjIjoiZGFzaHRhbS10ZXN0In0.AAAA"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = submitAuthorize(t, e.srv.Client(), e.provider.AuthorizationURL("s", testChallenge), "approve",
		url.Values{"persona": {"superuser"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown persona: status %d", resp.StatusCode)
	}
}

func TestExchangeChecksVerifierClientAndCallback(t *testing.T) {
	const other = "https://other.example/oauth/sandbox/callback"
	e := newEnv(t, envOptions{redirects: []string{testRedirect, other}})
	ctx := context.Background()
	approve := func() string {
		return e.fake.Approve(t, e.provider.AuthorizationURL("s", testChallenge)).Get("code")
	}
	_, err := e.provider.Exchange(ctx, approve(), "wrong-verifier-wrong-verifier-wrong-verifier-0")
	wantErr(t, err, commands.ErrProviderAuth)

	elsewhere := e.newProvider(t, e.srv.URL, other, 0)
	_, err = elsewhere.Exchange(ctx, approve(), testVerifier)
	wantErr(t, err, commands.ErrProviderAuth)

	thief, err := sandbox.NewProvider(sandbox.ProviderConfig{BaseURL: e.srv.URL + sandbox.Prefix, ClientID: testClientID,
		ClientSecret: "guessed-secret", RedirectURI: testRedirect, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = thief.Exchange(ctx, approve(), testVerifier)
	wantErr(t, err, commands.ErrProviderAuth)
	if strings.Contains(err.Error(), "guessed-secret") {
		t.Fatal("error shows the client secret")
	}
}

// A code works once; presenting it again revokes what it gave (RFC 6749
// §4.1.2), so a stolen code replayed after the real exchange kills the
// connection instead of copying it.
func TestCodeIsSingleUseAndReplayRevokes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	code := e.fake.Approve(t, e.provider.AuthorizationURL("s", testChallenge)).Get("code")
	creds, err := e.provider.Exchange(ctx, code, testVerifier)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.provider.Exchange(ctx, code, testVerifier)
	wantErr(t, err, commands.ErrProviderAuth)
	_, err = e.provider.Accounts(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
	_, err = e.provider.Refresh(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
}

func TestCodeExpires(t *testing.T) {
	e := newEnv(t, envOptions{})
	code := e.fake.Approve(t, e.provider.AuthorizationURL("s", testChallenge)).Get("code")
	e.clock.Advance(3 * time.Minute)
	_, err := e.provider.Exchange(context.Background(), code, testVerifier)
	wantErr(t, err, commands.ErrProviderAuth)
}

func TestRevokeEndsAccessAndRefresh(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	creds := e.connect(t, "", "")
	other := e.connect(t, "", "")
	if err := e.provider.Revoke(ctx, creds); err != nil {
		t.Fatal(err)
	}
	_, err := e.provider.Accounts(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
	_, err = e.provider.Refresh(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
	if err := e.provider.Revoke(ctx, creds); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := e.provider.Accounts(ctx, other); err != nil {
		t.Fatalf("another connection of the same user: %v", err)
	}
}

// Access tokens last five minutes; the refresh token's hard expiry is set
// at the authorisation and never moves, however often it is used.
func TestRefreshKeepsTheHardExpiry(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	ctx := context.Background()
	creds := e.connect(t, "", "")
	if got := creds.AccessExpiresAt.Sub(start); got != 5*time.Minute {
		t.Fatalf("access lasts %s, want 5m", got)
	}
	hard := start.Add(30 * 24 * time.Hour)
	if !creds.RefreshExpiresAt.Equal(hard) {
		t.Fatalf("refresh expires %s, want %s", creds.RefreshExpiresAt, hard)
	}
	for range 3 {
		e.clock.Advance(6 * 24 * time.Hour)
		next, err := e.provider.Refresh(ctx, creds)
		if err != nil {
			t.Fatal(err)
		}
		if !next.RefreshExpiresAt.Equal(hard) || next.RefreshToken == creds.RefreshToken {
			t.Fatalf("refresh moved the hard expiry to %s or kept the token", next.RefreshExpiresAt)
		}
		creds = next
	}
	e.clock.Advance(13 * 24 * time.Hour) // past the 30 days
	_, err := e.provider.Refresh(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
}

// Tokens carry everything the institution needs, so a restarted server
// with the same key serves every existing connection; another key does not.
func TestTokensSurviveARestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	creds := e.connect(t, "restart-user", sandbox.PersonaDefault)
	before, err := e.provider.Accounts(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}

	restarted := newEnv(t, envOptions{start: e.clock.Now()})
	after, err := restarted.provider.Accounts(ctx, creds)
	if err != nil {
		t.Fatalf("accounts after a restart: %v", err)
	}
	if len(after) != len(before) || after[0].ID != before[0].ID || !after[0].Balance.Equal(before[0].Balance) {
		t.Fatal("a restart changed the data")
	}
	if _, err := restarted.provider.Refresh(ctx, creds); err != nil {
		t.Fatalf("refresh after a restart: %v", err)
	}

	rekeyed := newEnv(t, envOptions{start: e.clock.Now(), key: []byte("another key of thirty-two bytes or more, really")})
	_, err = rekeyed.provider.Accounts(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
	_, err = rekeyed.provider.Refresh(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
}

// Browsers reach the authorize page at the public URL while the adapter
// may call the institution elsewhere (the server on its listen address).
func TestAPIBaseURLSeparatesServerCalls(t *testing.T) {
	e := newEnv(t, envOptions{})
	p, err := sandbox.NewProvider(sandbox.ProviderConfig{BaseURL: "https://public.example/sandbox",
		APIBaseURL: e.srv.URL + sandbox.Prefix, ClientID: testClientID, ClientSecret: testClientSecret,
		RedirectURI: testRedirect, HTTPClient: e.srv.Client(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	authURL := p.AuthorizationURL("s", testChallenge)
	if !strings.HasPrefix(authURL, "https://public.example/sandbox/oauth/authorize?") {
		t.Fatalf("authorization URL %s", authURL)
	}
	q := e.fake.Approve(t, e.srv.URL+strings.TrimPrefix(authURL, "https://public.example"))
	creds, err := p.Exchange(context.Background(), q.Get("code"), testVerifier)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Accounts(context.Background(), creds); err != nil {
		t.Fatal(err)
	}
}

func TestNewInstitutionRefusesBadConfig(t *testing.T) {
	good := sandbox.Config{Key: testKey, ClientID: "c", ClientSecret: "s", RedirectURIs: []string{testRedirect}}
	for name, change := range map[string]func(*sandbox.Config){
		"short key":         func(c *sandbox.Config) { c.Key = []byte("short") },
		"no client":         func(c *sandbox.Config) { c.ClientID = "" },
		"no redirect":       func(c *sandbox.Config) { c.RedirectURIs = nil },
		"relative redirect": func(c *sandbox.Config) { c.RedirectURIs = []string{"/oauth/sandbox/callback"} },
	} {
		c := good
		change(&c)
		if _, err := sandbox.NewInstitution(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := sandbox.NewInstitution(good); err != nil {
		t.Fatal(err)
	}
}

// The revoke endpoint answers 200 for tokens it does not know (RFC 7009
// §2.2) and 401 to a caller that is not the client.
func TestRevokeEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	post := func(user, pass string, form url.Values) int {
		req := httptest.NewRequest(http.MethodPost, sandbox.Prefix+sandbox.RevokePath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
		rec := httptest.NewRecorder()
		e.inst.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if c := post(testClientID, testClientSecret, url.Values{"token": {"sbxr_unknown.token"}}); c != http.StatusOK {
		t.Errorf("unknown token: %d", c)
	}
	if c := post(testClientID, "wrong", url.Values{"token": {"x"}}); c != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", c)
	}
	if c := post(testClientID, testClientSecret, url.Values{}); c != http.StatusBadRequest {
		t.Errorf("no token: %d", c)
	}
}
