// Package providertest is the contract every commands.Provider adapter
// passes: one suite, run by each adapter's tests against a fake of its
// institution served over real HTTP (httptest.Server) in the institution's
// own dialect, so that the use cases can rely on the same behaviour from
// every provider — the typed failures above all.
package providertest

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/commands"
)

// Fake is what the contract needs from an adapter's fake institution: a
// way to play the user who approves access, and switches for the failures
// every provider must report in the same typed way.
type Fake interface {
	// Approve plays the user approving access at authURL (as the adapter
	// built it) and returns the query the institution sends back to the
	// callback: at least "code" and "state".
	Approve(t *testing.T, authURL string) url.Values
	// ExpireAccess makes every access token issued so far expire, so
	// that data calls with it are refused as unauthenticated.
	ExpireAccess()
	// RevokeRefresh makes every refresh token issued so far invalid.
	RevokeRefresh()
	// FailNext makes the next data call (not the token endpoint) fail with
	// the HTTP status, carrying Retry-After when retryAfter > 0.
	FailNext(status int, retryAfter time.Duration)
	// GarbageNext makes the next data call answer 200 with a body that is
	// not the dialect (e.g. an HTML page or truncated JSON).
	GarbageNext()
	// Secrets lists every secret the fake handed out or knows (tokens,
	// codes, client secret), for the check that none leaks into errors.
	Secrets() []string
}

// Case is one adapter under test with its fake.
type Case struct {
	Provider commands.Provider
	Fake     Fake
}

// Run runs the contract against the cases newCase builds, a fresh one for
// each subtest.
func Run(t *testing.T, newCase func(t *testing.T) Case) {
	t.Run("authorize and exchange", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		if creds.AccessToken == "" || creds.RefreshToken == "" {
			t.Fatal("exchange returned empty tokens")
		}
		if !creds.AccessExpiresAt.After(time.Now().Add(-time.Minute)) {
			t.Fatalf("access expiry %s is in the past", creds.AccessExpiresAt)
		}
	})
	t.Run("authorization url carries state", func(t *testing.T) {
		c := newCase(t)
		u, err := url.Parse(c.Provider.AuthorizationURL("state-123", challenge))
		if err != nil {
			t.Fatal(err)
		}
		if u.Query().Get("state") != "state-123" {
			t.Fatalf("state not in %s", u.Redacted())
		}
		if c.Provider.Info().PKCE && u.Query().Get("code_challenge") != challenge {
			t.Fatalf("PKCE provider without code_challenge in %s", u.Redacted())
		}
	})
	t.Run("invalid code is an auth failure", func(t *testing.T) {
		c := newCase(t)
		_, err := c.Provider.Exchange(context.Background(), "not-a-code", verifier)
		wantKind(t, c, err, commands.ErrProviderAuth)
	})
	t.Run("data calls", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		ctx := context.Background()
		accounts, err := c.Provider.Accounts(ctx, creds)
		if err != nil {
			t.Fatalf("accounts: %v", err)
		}
		if len(accounts) == 0 {
			t.Fatal("no accounts")
		}
		to := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		from := to.AddDate(-1, 0, 0)
		seen := 0
		for _, a := range accounts {
			checkAccount(t, a)
			txs, err := c.Provider.Transactions(ctx, creds, a.ID, from, to)
			if err != nil {
				t.Fatalf("transactions of %s: %v", a.ID, err)
			}
			ids := map[string]bool{}
			for _, tx := range txs {
				checkTransaction(t, a, tx, from, to)
				if ids[tx.ID] {
					t.Errorf("transaction %s listed twice", tx.ID)
				}
				ids[tx.ID] = true
			}
			seen += len(txs)
			if _, err := c.Provider.Holdings(ctx, creds, a.ID); err != nil {
				t.Fatalf("holdings of %s: %v", a.ID, err)
			}
		}
		if seen == 0 {
			t.Fatal("no transactions in a year across every account")
		}
	})
	t.Run("unknown account is not found", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		ctx := context.Background()
		to := time.Now().UTC()
		_, err := c.Provider.Transactions(ctx, creds, "no-such-account", to.AddDate(0, -1, 0), to)
		wantKind(t, c, err, commands.ErrProviderNotFound)
		_, err = c.Provider.Holdings(ctx, creds, "no-such-account")
		wantKind(t, c, err, commands.ErrProviderNotFound)
	})
	t.Run("refresh", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		next, err := c.Provider.Refresh(context.Background(), creds)
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if next.AccessToken == "" || next.AccessToken == creds.AccessToken {
			t.Fatal("refresh did not return a new access token")
		}
		if next.RefreshToken == "" {
			t.Fatal("refresh lost the refresh token")
		}
		if _, err := c.Provider.Accounts(context.Background(), next); err != nil {
			t.Fatalf("accounts with refreshed credentials: %v", err)
		}
	})
	t.Run("revoked refresh token is an auth failure", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		c.Fake.RevokeRefresh()
		_, err := c.Provider.Refresh(context.Background(), creds)
		wantKind(t, c, err, commands.ErrProviderAuth)
	})
	t.Run("expired access token is an auth failure", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		c.Fake.ExpireAccess()
		_, err := c.Provider.Accounts(context.Background(), creds)
		wantKind(t, c, err, commands.ErrProviderAuth)
	})
	t.Run("429 is rate limited with the delay", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		c.Fake.FailNext(429, 7*time.Second)
		_, err := c.Provider.Accounts(context.Background(), creds)
		wantKind(t, c, err, commands.ErrProviderRateLimited)
		var rl *commands.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
			t.Fatalf("want a *RateLimitedError of 7s, got %v", err)
		}
	})
	for _, status := range []int{500, 502, 503} {
		t.Run("status "+strconv.Itoa(status)+" is unavailable", func(t *testing.T) {
			c := newCase(t)
			creds := connect(t, c)
			c.Fake.FailNext(status, 0)
			_, err := c.Provider.Accounts(context.Background(), creds)
			wantKind(t, c, err, commands.ErrProviderUnavailable)
		})
	}
	t.Run("garbage is an invalid response", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		c.Fake.GarbageNext()
		_, err := c.Provider.Accounts(context.Background(), creds)
		if !errors.Is(err, commands.ErrProviderInvalidResponse) && !errors.Is(err, commands.ErrProviderUnavailable) {
			t.Fatalf("garbage: want ErrProviderInvalidResponse (or unavailable for an HTML error page), got %v", err)
		}
		noSecrets(t, c, err)
	})
	t.Run("cancelled context", func(t *testing.T) {
		c := newCase(t)
		creds := connect(t, c)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Provider.Accounts(ctx, creds)
		if !errors.Is(err, context.Canceled) && !errors.Is(err, commands.ErrProviderUnavailable) {
			t.Fatalf("cancelled: want context.Canceled or unavailable, got %v", err)
		}
	})
}

// A fixed PKCE pair (RFC 7636 appendix B).
const (
	verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// connect authorises through the fake and exchanges the code.
func connect(t *testing.T, c Case) commands.Credentials {
	t.Helper()
	q := c.Fake.Approve(t, c.Provider.AuthorizationURL("contract-state", challenge))
	if q.Get("state") != "contract-state" {
		t.Fatalf("callback state %q, want contract-state", q.Get("state"))
	}
	v := ""
	if c.Provider.Info().PKCE {
		v = verifier
	}
	creds, err := c.Provider.Exchange(context.Background(), q.Get("code"), v)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return creds
}

// wantKind checks that err matches want and no other kind, and leaks nothing.
func wantKind(t *testing.T, c Case, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("want %v, got %v", want, err)
	}
	for _, k := range []error{commands.ErrProviderAuth, commands.ErrProviderUnavailable, commands.ErrProviderRateLimited,
		commands.ErrProviderNotFound, commands.ErrProviderInvalidResponse} {
		if k != want && errors.Is(err, k) {
			t.Fatalf("%v also matches %v", err, k)
		}
	}
	noSecrets(t, c, err)
}

// noSecrets fails when err's text contains any secret the fake knows.
func noSecrets(t *testing.T, c Case, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range c.Fake.Secrets() {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error %q contains a secret", err)
		}
	}
}

func checkAccount(t *testing.T, a commands.ProviderAccount) {
	t.Helper()
	switch {
	case a.ID == "":
		t.Error("account without id")
	case len(a.MaskedNumber) > 4:
		t.Errorf("account %s: masked number %q shows more than four characters", a.ID, a.MaskedNumber)
	case a.Currency == "":
		t.Errorf("account %s: no currency", a.ID)
	case a.Type == "":
		t.Errorf("account %s: no type", a.ID)
	}
}

func checkTransaction(t *testing.T, a commands.ProviderAccount, tx commands.ProviderTransaction, from, to time.Time) {
	t.Helper()
	switch {
	case tx.ID == "":
		t.Errorf("account %s: transaction without id", a.ID)
	case tx.AccountID != a.ID:
		t.Errorf("transaction %s: account %q, want %q", tx.ID, tx.AccountID, a.ID)
	case tx.Type == "":
		t.Errorf("transaction %s: no type", tx.ID)
	case tx.Currency == "":
		t.Errorf("transaction %s: no currency", tx.ID)
	case tx.Date.Before(from.AddDate(0, 0, -1)) || !tx.Date.Before(to.AddDate(0, 0, 1)):
		t.Errorf("transaction %s dated %s, outside [%s, %s)", tx.ID, tx.Date, from, to)
	case len(tx.Raw) == 0:
		t.Errorf("transaction %s: no raw record", tx.ID)
	}
}
