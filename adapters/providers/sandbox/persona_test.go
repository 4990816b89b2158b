package sandbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/commands"
)

// The expiring persona's access token lasts a minute and its refresh
// token ten minutes from the authorisation: then only a new authorisation
// helps.
func TestExpiringPersona(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	ctx := context.Background()
	creds := e.connect(t, "", sandbox.PersonaExpiring)
	if got := creds.AccessExpiresAt.Sub(start); got != time.Minute {
		t.Fatalf("access lasts %s, want 1m", got)
	}
	if got := creds.RefreshExpiresAt.Sub(start); got != 10*time.Minute {
		t.Fatalf("refresh lasts %s, want 10m", got)
	}
	e.clock.Advance(61 * time.Second)
	_, err := e.provider.Accounts(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
	if creds, err = e.provider.Refresh(ctx, creds); err != nil {
		t.Fatal(err)
	}
	if _, err := e.provider.Accounts(ctx, creds); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(9 * time.Minute) // 10m01s after the authorisation
	_, err = e.provider.Refresh(ctx, creds)
	wantErr(t, err, commands.ErrProviderAuth)
	if again := e.connect(t, "", sandbox.PersonaExpiring); again.AccessToken == "" {
		t.Fatal("re-authorisation failed")
	}
}

// The flaky persona fails on a rhythm a client can rely on: of every four
// data calls, the second answers 503 and the fourth 429 with Retry-After.
func TestFlakyPersona(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	creds := e.connect(t, "", sandbox.PersonaFlaky)
	accounts, err := e.provider.Accounts(ctx, creds) // call 1
	if err != nil {
		t.Fatalf("call 1: %v", err)
	}
	id := accounts[2].ID
	calls := []func() error{
		func() error { _, err := e.provider.Holdings(ctx, creds, id); return err },
		func() error { _, err := e.provider.Accounts(ctx, creds); return err },
		func() error { _, err := e.provider.Holdings(ctx, creds, id); return err },
	}
	for n := 2; n <= 9; n++ {
		err := calls[n%len(calls)]()
		switch n % 4 {
		case 2:
			wantErr(t, err, commands.ErrProviderUnavailable)
		case 0:
			var rl *commands.RateLimitedError
			if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
				t.Fatalf("call %d: want a *RateLimitedError of 2s, got %v", n, err)
			}
		default:
			if err != nil {
				t.Fatalf("call %d: %v", n, err)
			}
		}
	}
	// Another connection has its own rhythm.
	other := e.connect(t, "", sandbox.PersonaFlaky)
	if _, err := e.provider.Accounts(ctx, other); err != nil {
		t.Fatalf("first call of another connection: %v", err)
	}
}

// The large persona adds ten operating accounts with about thirty card
// purchases a day each; an adapter reads a year of one of them whole.
func TestLargePersona(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	ctx := context.Background()
	creds := e.connect(t, "", sandbox.PersonaLarge)
	accounts, err := e.provider.Accounts(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 14 {
		t.Fatalf("%d accounts, want 14", len(accounts))
	}
	op := accounts[len(accounts)-1]
	if op.Type != commands.AccountTypeChecking || op.Subtype != "business_checking" {
		t.Fatalf("operating account is %s/%s", op.Type, op.Subtype)
	}
	txs, err := e.provider.Transactions(ctx, creds, op.ID, start.AddDate(-1, 0, 0), start)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tx := range txs {
		if ids[tx.ID] {
			t.Fatalf("transaction %s twice", tx.ID)
		}
		ids[tx.ID] = true
	}
	if len(txs) < 10_000 {
		t.Fatalf("%d transactions in a year of an operating account, want over 10,000", len(txs))
	}
}

// A connection named after a persona gets it without touching the page:
// the alias travels as login_hint, preselects the persona and names the
// sandbox user, so the same alias always shows the same data.
func TestAliasChoosesThePersona(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	q := e.fake.Approve(t, e.provider.AuthorizationURLForAlias("s", testChallenge, "Flaky test"))
	creds, err := e.provider.Exchange(ctx, q.Get("code"), testVerifier)
	if err != nil {
		t.Fatal(err)
	}
	viaAlias, err := e.provider.Accounts(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.provider.Accounts(ctx, creds)
	wantErr(t, err, commands.ErrProviderUnavailable) // the flaky rhythm's second call

	named, err := e.provider.Accounts(ctx, e.connect(t, "Flaky test", sandbox.PersonaDefault))
	if err != nil {
		t.Fatal(err)
	}
	if named[0].ID != viaAlias[0].ID {
		t.Fatal("the alias did not name the sandbox user")
	}
}
