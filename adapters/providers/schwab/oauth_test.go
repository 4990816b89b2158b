package schwab_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/providers/schwab"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/commands"
)

func TestNewRefusesUnusableConfig(t *testing.T) {
	f := schwabtest.New(t, schwabtest.Options{})
	tests := []struct {
		name   string
		change func(*schwab.Config)
	}{
		{"no client id", func(c *schwab.Config) { c.ClientID = "" }},
		{"no client secret", func(c *schwab.Config) { c.ClientSecret = "" }},
		{"relative redirect uri", func(c *schwab.Config) { c.RedirectURI = "/oauth/schwab/callback" }},
		{"http redirect uri off loopback", func(c *schwab.Config) { c.RedirectURI = "http://dashtam.example/oauth/schwab/callback" }},
		{"relative api url", func(c *schwab.Config) { c.APIBaseURL = "trader/v1" }},
		{"ftp token url", func(c *schwab.Config) { c.TokenURL = "ftp://api.schwabapi.com/v1/oauth/token" }},
		{"short account id key", func(c *schwab.Config) { c.AccountIDKey = []byte("short") }},
		{"client without timeout", func(c *schwab.Config) { c.HTTPClient = &http.Client{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(f, nil)
			tt.change(&cfg)
			if _, err := schwab.New(cfg); err == nil {
				t.Fatal("New accepted the configuration")
			} else if strings.Contains(err.Error(), f.ClientSecret()) {
				t.Fatalf("error quotes the client secret: %v", err)
			}
		})
	}
	t.Run("loopback http redirect and defaults", func(t *testing.T) {
		cfg := config(f, nil)
		cfg.RedirectURI = "http://127.0.0.1:8080/oauth/schwab/callback"
		cfg.AuthURL, cfg.TokenURL, cfg.APIBaseURL, cfg.HTTPClient = "", "", "", nil
		a, err := schwab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if u := a.AuthorizationURL("s", ""); !strings.HasPrefix(u, schwab.DefaultAuthURL+"?") {
			t.Fatalf("authorization url %s, want one on %s", u, schwab.DefaultAuthURL)
		}
	})
}

func TestAuthorizationURL(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	u, err := url.Parse(fx.a.AuthorizationURL("state with spaces&more", "ignored-challenge"))
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"client_id":     {fx.fake.ClientID()},
		"redirect_uri":  {fx.fake.RedirectURI()},
		"response_type": {"code"},
		"state":         {"state with spaces&more"},
	}
	if got := u.Query(); got.Encode() != want.Encode() {
		t.Fatalf("query %v, want %v", got, want)
	}
	if fx.a.Info().PKCE || fx.a.Info().Slug != "schwab" {
		t.Fatalf("info %+v", fx.a.Info())
	}
}

func TestExchangeSetsBothExpiries(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	if !creds.AccessExpiresAt.Equal(start.Add(30 * time.Minute)) {
		t.Errorf("access expires %s, want %s", creds.AccessExpiresAt, start.Add(30*time.Minute))
	}
	if !creds.RefreshExpiresAt.Equal(start.Add(7 * 24 * time.Hour)) {
		t.Errorf("refresh expires %s, want %s", creds.RefreshExpiresAt, start.Add(7*24*time.Hour))
	}
	if creds.TokenType != "Bearer" || creds.Scope != "api" {
		t.Errorf("token type %q scope %q", creds.TokenType, creds.Scope)
	}
}

// TestCodeIsDecodedOnce follows the code from the wire to the exchange:
// Schwab sends it URL-encoded, the callback's query parsing decodes it,
// and the adapter must pass that on as is. The fake's codes hold a "+",
// which a second decode would turn into a space.
func TestCodeIsDecodedOnce(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	callback := fx.fake.ApproveURL(t, fx.a.AuthorizationURL("st", ""))
	raw := callback[strings.Index(callback, "?")+1:]
	if !strings.Contains(raw, "%40") || !strings.Contains(raw, "%2B") {
		t.Fatalf("callback %s: code not URL-encoded as Schwab sends it", callback)
	}
	u, _ := url.Parse(callback)
	q := u.Query() // what the callback handler does: one decode
	code := q.Get("code")
	if !strings.HasPrefix(code, "C0.") || !strings.HasSuffix(code, "@") || !strings.Contains(code, "+") {
		t.Fatalf("decoded code %q is not shaped like Schwab's", code)
	}
	if q.Get("session") == "" || q.Get("state") != "st" {
		t.Fatalf("callback query %v lacks session or state", q)
	}
	if _, err := fx.a.Exchange(context.Background(), code, ""); err != nil {
		t.Fatalf("exchange of the once-decoded code: %v", err)
	}

	// The fake refuses a code decoded twice or not at all, so the success
	// above is the adapter's doing.
	for name, bad := range map[string]func(string) string{
		"decoded twice": func(c string) string { s, _ := url.QueryUnescape(c); return s },
		"still encoded": url.QueryEscape,
	} {
		t.Run(name, func(t *testing.T) {
			c := fx.fake.Approve(t, fx.a.AuthorizationURL("st", "")).Get("code")
			_, err := fx.a.Exchange(context.Background(), bad(c), "")
			wantKind(t, err, commands.ErrProviderAuth)
			noLeak(t, fx.fake, "exchange error", err.Error())
		})
	}
}

func TestCodeIsSingleUseAndShortLived(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	ctx := context.Background()
	code := fx.fake.Approve(t, fx.a.AuthorizationURL("st", "")).Get("code")
	if _, err := fx.a.Exchange(ctx, code, ""); err != nil {
		t.Fatal(err)
	}
	_, err := fx.a.Exchange(ctx, code, "")
	wantKind(t, err, commands.ErrProviderAuth)
	noLeak(t, fx.fake, "reused code error", err.Error())

	code = fx.fake.Approve(t, fx.a.AuthorizationURL("st", "")).Get("code")
	fx.clock.Advance(31 * time.Second)
	_, err = fx.a.Exchange(ctx, code, "")
	wantKind(t, err, commands.ErrProviderAuth)

	_, err = fx.a.Exchange(ctx, "", "")
	wantKind(t, err, commands.ErrProviderAuth)
}

func TestRefreshKeepsTheOriginalRefreshExpiry(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	ctx := context.Background()
	creds := fx.connect(t)
	creds.Extra = map[string]string{"k": "v"}
	fx.clock.Advance(3 * 24 * time.Hour)
	next, err := fx.a.Refresh(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	if !next.RefreshExpiresAt.Equal(creds.RefreshExpiresAt) {
		t.Errorf("refresh expiry moved from %s to %s", creds.RefreshExpiresAt, next.RefreshExpiresAt)
	}
	if want := start.Add(3*24*time.Hour + 30*time.Minute); !next.AccessExpiresAt.Equal(want) {
		t.Errorf("access expires %s, want %s", next.AccessExpiresAt, want)
	}
	if next.AccessToken == creds.AccessToken || next.RefreshToken != creds.RefreshToken {
		t.Error("want a new access token and the same refresh token")
	}
	if next.Extra["k"] != "v" || next.Scope != "api" {
		t.Errorf("extra %v scope %q not carried over", next.Extra, next.Scope)
	}
	if _, err := fx.a.Accounts(ctx, next); err != nil {
		t.Fatalf("accounts with the refreshed token: %v", err)
	}

	// Day seven ends the chain, refreshes or not: refused without a call.
	fx.clock.Advance(4 * 24 * time.Hour)
	calls := fx.fake.Calls(schwabtest.EndpointToken)
	_, err = fx.a.Refresh(ctx, next)
	wantKind(t, err, commands.ErrProviderAuth)
	if got := fx.fake.Calls(schwabtest.EndpointToken); got != calls {
		t.Errorf("token endpoint called %d times for an expired refresh token", got-calls)
	}
	// Schwab refuses it too, when the adapter does not know the expiry.
	next.RefreshExpiresAt = time.Time{}
	_, err = fx.a.Refresh(ctx, next)
	wantKind(t, err, commands.ErrProviderAuth)
	noLeak(t, fx.fake, "refresh error", err.Error())
}

func TestRefreshStoresARotatedRefreshToken(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{RotateRefresh: true})
	ctx := context.Background()
	creds := fx.connect(t)
	next, err := fx.a.Refresh(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	if next.RefreshToken == creds.RefreshToken {
		t.Fatal("rotated refresh token not stored")
	}
	if !next.RefreshExpiresAt.Equal(creds.RefreshExpiresAt) {
		t.Errorf("refresh expiry moved to %s", next.RefreshExpiresAt)
	}
	_, err = fx.a.Refresh(ctx, creds)
	wantKind(t, err, commands.ErrProviderAuth)
	if _, err := fx.a.Refresh(ctx, next); err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
}

func TestTokenEndpointFailures(t *testing.T) {
	tests := []struct {
		name  string
		fail  schwabtest.Failure
		want  error
		delay time.Duration
	}{
		{"400 json", jsonFailure(400, `{"error":"invalid_grant","error_description":"expired"}`), commands.ErrProviderAuth, 0},
		{"401 invalid client", jsonFailure(401, `{"error":"invalid_client"}`), commands.ErrProviderAuth, 0},
		{"400 html", schwabtest.AccessDenied(400), commands.ErrProviderUnavailable, 0},
		{"403 access denied page", schwabtest.AccessDenied(403), commands.ErrProviderUnavailable, 0},
		{"500 json", jsonFailure(500, `{"error":"server_error"}`), commands.ErrProviderUnavailable, 0},
		{"502 gateway fault", schwabtest.GatewayFault(502, "Unexpected EOF at target", "messaging.adaptors.http.flow.UnexpectedEOFAtTarget"), commands.ErrProviderUnavailable, 0},
		{"503 html", schwabtest.AccessDenied(503), commands.ErrProviderUnavailable, 0},
		{"429 with retry-after", withRetryAfter(jsonFailure(429, `{"error":"rate_limited"}`), "30"), commands.ErrProviderRateLimited, 30 * time.Second},
		{"200 garbage", jsonFailure(200, `{"access_token":"tr`), commands.ErrProviderInvalidResponse, 0},
		{"200 without access token", jsonFailure(200, `{"token_type":"Bearer","expires_in":1800}`), commands.ErrProviderInvalidResponse, 0},
		{"200 with an error code", jsonFailure(200, `{"error":"invalid_grant"}`), commands.ErrProviderAuth, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, schwabtest.Options{})
			creds := fx.connect(t)
			for _, op := range []string{"refresh", "exchange"} {
				fx.fake.FailNextToken(tt.fail)
				var err error
				if op == "refresh" {
					_, err = fx.a.Refresh(context.Background(), creds)
				} else {
					code := fx.fake.Approve(t, fx.a.AuthorizationURL("st", "")).Get("code")
					_, err = fx.a.Exchange(context.Background(), code, "")
				}
				wantKind(t, err, tt.want)
				noLeak(t, fx.fake, op+" error", err.Error())
				if tt.delay > 0 {
					var rl *commands.RateLimitedError
					if !errorsAs(err, &rl) || rl.RetryAfter != tt.delay {
						t.Fatalf("%s: want retry after %s, got %v", op, tt.delay, err)
					}
				}
			}
		})
	}
}

func TestExpiredAccessTokenIsRefusedWithoutACall(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	fx.clock.Advance(30 * time.Minute)
	_, err := fx.a.Accounts(context.Background(), creds)
	wantKind(t, err, commands.ErrProviderAuth)
	if n := fx.fake.DataCalls(); n != 0 {
		t.Fatalf("%d data calls with an expired access token", n)
	}
}
