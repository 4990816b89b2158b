package schwab_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/adapters/providers/schwab"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/commands"
)

func TestAccountsMapping(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	accts, err := fx.a.Accounts(context.Background(), creds)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		name, subtype      string
		balance, available string
	}{
		"5926": {"Schwab Cash …5926", "CASH", "25890.12", "1480.33"},     // cashAvailableForWithdrawal
		"2818": {"Schwab Margin …2818", "MARGIN", "41000.1", "12000.55"}, // availableFunds
	}
	if len(accts) != len(want) {
		t.Fatalf("%d accounts, want %d", len(accts), len(want))
	}
	for _, a := range accts {
		w, ok := want[a.MaskedNumber]
		if !ok {
			t.Fatalf("unexpected account %+v", a)
		}
		if a.Name != w.name || a.Subtype != w.subtype || a.Type != commands.AccountTypeBrokerage || a.Currency != "USD" {
			t.Errorf("account %s: %q %q %q %q", a.MaskedNumber, a.Name, a.Type, a.Subtype, a.Currency)
		}
		if !a.Balance.Equal(decimal.RequireFromString(w.balance)) {
			t.Errorf("account %s: balance %s, want %s", a.MaskedNumber, a.Balance, w.balance)
		}
		if a.Available == nil || !a.Available.Equal(decimal.RequireFromString(w.available)) {
			t.Errorf("account %s: available %v, want %s", a.MaskedNumber, a.Available, w.available)
		}
		if !strings.HasPrefix(a.ID, "schwab-") || len(a.ID) != len("schwab-")+32 {
			t.Errorf("account id %q is not schwab- and 32 hex digits", a.ID)
		}
		raw := string(a.Raw)
		if !strings.Contains(raw, `"accountNumber":"****`+a.MaskedNumber+`"`) {
			t.Errorf("raw account does not show the masked number: %s", raw)
		}
		if strings.Contains(raw, `"positions"`) || !strings.Contains(raw, `"currentBalances"`) {
			t.Errorf("raw account is not the account record without positions: %s", raw)
		}
		noLeak(t, fx.fake, "raw account", raw)
		noLeak(t, fx.fake, "account id", a.ID)
	}

	// Stable: a second call, and another adapter with the same key.
	again, err := mustNew(t, fx.fake, fx.clock.Now).Accounts(context.Background(), creds)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].ID != accts[i].ID {
			t.Errorf("account id changed from %s to %s", accts[i].ID, again[i].ID)
		}
	}
}

func TestAccountIDIsKeyed(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	plain := sha256.Sum256([]byte(schwabtest.CashAccountNumber))
	if strings.Contains(id, hex.EncodeToString(plain[:])[:16]) {
		t.Fatal("account id is a plain hash of the number, reversible by trying every number")
	}
	cfg := config(fx.fake, fx.clock.Now)
	cfg.AccountIDKey = []byte("another-key-another-key-another-key-0123")
	other, err := schwab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	accts, err := other.Accounts(context.Background(), creds)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accts {
		if a.ID == id {
			t.Fatal("another key derived the same id")
		}
	}
	// An id of another key is unknown to this adapter.
	_, err = other.Holdings(context.Background(), creds, id)
	wantKind(t, err, commands.ErrProviderNotFound)
}

func TestHoldingsMapping(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	type holding struct{ assetType, qty, avg, value, desc string }
	tests := []struct {
		number string
		want   map[string]holding
	}{
		{schwabtest.CashAccountNumber, map[string]holding{
			"AAPL":  {"EQUITY", "50", "150.1234", "8479", ""},
			"SCHD":  {"COLLECTIVE_INVESTMENT", "120", "76.5", "9426", "SCHWAB US DIVIDEND EQUITY ETF"},
			"SWTSX": {"MUTUAL_FUND", "25.5", "95.12", "2411.5", "SCHWAB TOTAL STOCK MARKET INDEX"},
			// GME has quantity zero: left out.
		}},
		{schwabtest.MarginAccountNumber, map[string]holding{
			"SPY   240510C00520000": {"OPTION", "2", "5.25", "1220", "SPDR S&P 500 05/10/2024 $520 Call"},
			"TSLA":                  {"EQUITY", "-1", "175.5", "-172.1", ""},
			"MSFT":                  {"EQUITY", "100", "380", "39890", "MICROSOFT CORP"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.number, func(t *testing.T) {
			id := fx.accountID(t, creds, tt.number)
			fx.fake.ResetCalls()
			hs, err := fx.a.Holdings(context.Background(), creds, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) != len(tt.want) {
				t.Fatalf("%d holdings, want %d: %+v", len(hs), len(tt.want), hs)
			}
			for _, h := range hs {
				w, ok := tt.want[h.Symbol]
				if !ok {
					t.Fatalf("unexpected holding %q", h.Symbol)
				}
				if h.AssetType != w.assetType || h.Description != w.desc || h.Currency != "USD" ||
					!h.Quantity.Equal(decimal.RequireFromString(w.qty)) ||
					h.AveragePrice == nil || !h.AveragePrice.Equal(decimal.RequireFromString(w.avg)) ||
					!h.MarketValue.Equal(decimal.RequireFromString(w.value)) {
					t.Errorf("holding %s: %+v, want %+v", h.Symbol, h, w)
				}
				noLeak(t, fx.fake, "raw position", string(h.Raw))
			}
			reqs := fx.fake.Requests()
			if len(reqs) != 2 || reqs[0].Endpoint != schwabtest.EndpointAccountNumbers || reqs[1].Endpoint != schwabtest.EndpointAccount {
				t.Fatalf("requests %+v, want the account numbers then the account", reqs)
			}
			if reqs[1].Query.Get("fields") != "positions" || reqs[1].Path != "/trader/v1/accounts/"+schwabtest.AccountHash(tt.number) {
				t.Errorf("account request %+v: want the hash in the path and fields=positions", reqs[1])
			}
		})
	}
}
