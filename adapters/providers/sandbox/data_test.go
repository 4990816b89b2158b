package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/commands"
)

// snapshot is everything a sync would read.
type snapshot struct {
	accounts     []commands.ProviderAccount
	transactions map[string][]commands.ProviderTransaction
	holdings     map[string][]commands.ProviderHolding
}

// read fetches every account's transactions booked in [from, to) and holdings.
func read(tb testing.TB, p commands.Provider, c commands.Credentials, from, to time.Time) snapshot {
	tb.Helper()
	ctx := context.Background()
	accounts, err := p.Accounts(ctx, c)
	if err != nil {
		tb.Fatalf("accounts: %v", err)
	}
	s := snapshot{accounts: accounts, transactions: map[string][]commands.ProviderTransaction{}, holdings: map[string][]commands.ProviderHolding{}}
	for _, a := range accounts {
		if s.transactions[a.ID], err = p.Transactions(ctx, c, a.ID, from, to); err != nil {
			tb.Fatalf("transactions of %s: %v", a.ID, err)
		}
		if s.holdings[a.ID], err = p.Holdings(ctx, c, a.ID); err != nil {
			tb.Fatalf("holdings of %s: %v", a.ID, err)
		}
	}
	return s
}

// accountOfType returns the snapshot's first account of type typ.
func (s snapshot) accountOfType(tb testing.TB, typ string) commands.ProviderAccount {
	tb.Helper()
	for _, a := range s.accounts {
		if a.Type == typ {
			return a
		}
	}
	tb.Fatalf("no %s account", typ)
	return commands.ProviderAccount{}
}

// The same user at the same instant sees the same data, to the byte,
// whichever installation (signing key) serves it; another user sees other
// accounts.
func TestDataIsDeterministic(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	from, to := start.AddDate(-1, 0, 0), start.AddDate(0, 0, 1)
	one := newEnv(t, envOptions{start: start})
	two := newEnv(t, envOptions{start: start, key: []byte("a completely different signing key, 32+ bytes")})
	a := read(t, one.provider, one.connect(t, "alice", ""), from, to)
	b := read(t, two.provider, two.connect(t, "Alice ", ""), from, to)
	if len(a.accounts) != 4 || len(a.accounts) != len(b.accounts) {
		t.Fatalf("%d and %d accounts, want 4", len(a.accounts), len(b.accounts))
	}
	same := func(what string, x, y []byte) {
		if !bytes.Equal(x, y) {
			t.Fatalf("%s differs:\n%s\n%s", what, x, y)
		}
	}
	total := 0
	for i, acc := range a.accounts {
		same("account", acc.Raw, b.accounts[i].Raw)
		ta, tb := a.transactions[acc.ID], b.transactions[acc.ID]
		if len(ta) != len(tb) {
			t.Fatalf("account %s: %d and %d transactions", acc.ID, len(ta), len(tb))
		}
		for j := range ta {
			same("transaction", ta[j].Raw, tb[j].Raw)
		}
		for j, h := range a.holdings[acc.ID] {
			same("holding", h.Raw, b.holdings[acc.ID][j].Raw)
		}
		total += len(ta)
	}
	if total < 500 {
		t.Fatalf("only %d transactions in a year", total)
	}

	bob := read(t, one.provider, one.connect(t, "bob", ""), from, to)
	for i, acc := range bob.accounts {
		if acc.ID == a.accounts[i].ID || acc.Balance.Equal(a.accounts[i].Balance) {
			t.Fatalf("bob and alice share account %s or its balance", acc.ID)
		}
	}
}

// As the clock moves, a later sync shows new transactions, pending ones
// posted (some for another amount), a pre-authorisation cancelled, and
// balances that moved by exactly what posted; what had posted never
// changes.
func TestDataChangesOverTime(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	ctx := context.Background()
	creds := e.connect(t, "time-traveller", "")
	from := start.AddDate(0, 0, -20) // earlier than anything still pending

	type state struct {
		balance, available decimal.Decimal
		byID               map[string]commands.ProviderTransaction
		posted, pending    decimal.Decimal
	}
	observe := func() state {
		s := read(t, e.provider, creds, from, e.clock.Now().AddDate(0, 0, 1))
		chk := s.accountOfType(t, commands.AccountTypeChecking)
		st := state{balance: chk.Balance, available: *chk.Available, byID: map[string]commands.ProviderTransaction{}}
		for _, tx := range s.transactions[chk.ID] {
			st.byID[tx.ID] = tx
			if tx.Pending {
				st.pending = st.pending.Add(tx.Amount)
			} else {
				st.posted = st.posted.Add(tx.Amount)
			}
		}
		if !st.available.Equal(st.balance.Add(st.pending)) {
			t.Fatalf("available %s is not the balance %s less the pending %s", st.available, st.balance, st.pending)
		}
		return st
	}
	prev := observe()
	seen := map[string]int{}
	for step := range 14 {
		e.clock.Advance(24 * time.Hour)
		var err error
		if creds, err = e.provider.Refresh(ctx, creds); err != nil { // the access token is long expired
			t.Fatal(err)
		}
		cur := observe()
		for id, p := range prev.byID {
			c, ok := cur.byID[id]
			switch {
			case !ok && !p.Pending:
				t.Fatalf("day %d: posted transaction %s disappeared", step, id)
			case !ok:
				if !strings.Contains(p.Description, "PRE-AUTHORIZATION") {
					t.Fatalf("day %d: pending %q disappeared", step, p.Description)
				}
				seen["cancelled"]++
			case !p.Pending:
				if !bytes.Equal(p.Raw, c.Raw) {
					t.Fatalf("day %d: posted transaction changed:\n%s\n%s", step, p.Raw, c.Raw)
				}
			case !c.Pending:
				seen["posted"]++
				if !c.Amount.Equal(p.Amount) {
					seen["posted for another amount"]++
				}
				if !c.Date.Equal(p.Date) {
					t.Fatalf("day %d: %s changed its date on posting", step, id)
				}
			}
		}
		for id := range cur.byID {
			if _, ok := prev.byID[id]; !ok {
				seen["new"]++
			}
		}
		moved, posted := cur.balance.Sub(prev.balance), cur.posted.Sub(prev.posted)
		if !moved.Equal(posted) {
			t.Fatalf("day %d: the balance moved by %s, the posted transactions by %s", step, moved, posted)
		}
		prev = cur
	}
	for _, what := range []string{"new", "posted", "posted for another amount", "cancelled"} {
		if seen[what] == 0 {
			t.Errorf("in two weeks, no transaction %s (saw %v)", what, seen)
		}
	}
	t.Logf("two weeks of checking: %v", seen)
}

// An investment account's value is its cash plus its positions at the
// day's prices; the available balance is the cash.
func TestInvestmentBalancesAreCashPlusPositions(t *testing.T) {
	start := time.Date(2026, 7, 1, 16, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	s := read(t, e.provider, e.connect(t, "", ""), start.AddDate(-1, 0, 0), start)
	for _, typ := range []string{commands.AccountTypeBrokerage, commands.AccountTypeRetirement} {
		a := s.accountOfType(t, typ)
		var raw struct {
			Balances struct {
				Cash       string `json:"cash"`
				Securities string `json:"securities"`
			} `json:"balances"`
		}
		if err := json.Unmarshal(a.Raw, &raw); err != nil {
			t.Fatal(err)
		}
		cash := decimal.RequireFromString(raw.Balances.Cash)
		held := decimal.Zero
		for _, h := range s.holdings[a.ID] {
			if h.Quantity.Sign() <= 0 || h.AveragePrice == nil || h.Currency != "USD" {
				t.Fatalf("%s: odd holding %+v", typ, h)
			}
			held = held.Add(h.MarketValue)
		}
		if len(s.holdings[a.ID]) < 3 || !a.Balance.Equal(cash.Add(held)) || !a.Available.Equal(cash) {
			t.Fatalf("%s: balance %s, cash %s, positions %s (%d)", typ, a.Balance, cash, held, len(s.holdings[a.ID]))
		}
	}
	chk := s.accountOfType(t, commands.AccountTypeChecking)
	if len(s.holdings[chk.ID]) != 0 {
		t.Fatal("a checking account with positions")
	}
}

// A year of history has the story the spec asks for: salary deposits,
// card spending at merchants, transfers seen from both sides, trades with
// commissions whose amount is quantity × price plus costs, and dividends.
func TestAYearOfHistory(t *testing.T) {
	start := time.Date(2026, 7, 1, 16, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	s := read(t, e.provider, e.connect(t, "", ""), start.AddDate(-1, 0, 0), start)
	count := map[string]int{}
	transfers := map[string]decimal.Decimal{} // account|date|amount → seen
	for _, a := range s.accounts {
		for _, tx := range s.transactions[a.ID] {
			count[a.Type+"/"+tx.Subtype]++
			var raw struct {
				Counterparty string `json:"counterparty_account_id"`
				Merchant     *struct {
					Name string `json:"name"`
				} `json:"merchant"`
			}
			if err := json.Unmarshal(tx.Raw, &raw); err != nil {
				t.Fatal(err)
			}
			switch tx.Type {
			case commands.TransactionTypeTransfer:
				if raw.Counterparty == "" {
					t.Fatalf("transfer without counterparty: %s", tx.Raw)
				}
				transfers[fmt.Sprintf("%s|%s|%s", a.ID, raw.Counterparty, tx.Date.Format(time.DateOnly))] = tx.Amount
			case commands.TransactionTypeBuy, commands.TransactionTypeSell:
				checkTrade(t, tx)
			}
			if tx.Subtype == "card_purchase" && !strings.Contains(tx.Description, "PRE-AUTHORIZATION") && raw.Merchant == nil {
				t.Fatalf("card purchase without merchant: %s", tx.Raw)
			}
		}
	}
	for key, amount := range transfers {
		parts := strings.Split(key, "|")
		other, ok := transfers[parts[1]+"|"+parts[0]+"|"+parts[2]]
		if !ok || !other.Equal(amount.Neg()) {
			t.Fatalf("transfer %s of %s has no opposite side (%s)", key, amount, other)
		}
	}
	for _, want := range []string{"checking/ach_credit", "checking/card_purchase", "checking/bill_payment", "checking/transfer_out",
		"savings/transfer_in", "savings/interest_credit", "brokerage/trade_buy", "brokerage/trade_sell", "brokerage/dividend",
		"retirement/trade_buy", "retirement/dividend", "retirement/transfer_in"} {
		if count[want] == 0 {
			t.Errorf("a year without %s: %v", want, count)
		}
	}
	if count["checking/ach_credit"] < 24 {
		t.Errorf("%d salary deposits in a year", count["checking/ach_credit"])
	}
}

func checkTrade(t *testing.T, tx commands.ProviderTransaction) {
	t.Helper()
	if tx.Symbol == "" || tx.Quantity == nil || tx.UnitPrice == nil || tx.Commission == nil || tx.Fees == nil || tx.SettlementDate == nil {
		t.Fatalf("trade without details: %s", tx.Raw)
	}
	gross := tx.Quantity.Abs().Mul(*tx.UnitPrice).Truncate(2)
	costs := tx.Commission.Add(*tx.Fees)
	want := gross.Neg().Sub(costs)
	if tx.Type == commands.TransactionTypeSell {
		want = gross.Sub(costs)
		if tx.Quantity.Sign() >= 0 || tx.Fees.Sign() <= 0 {
			t.Fatalf("sale without negative quantity or fees: %s", tx.Raw)
		}
	} else if tx.Quantity.Sign() <= 0 {
		t.Fatalf("buy without positive quantity: %s", tx.Raw)
	}
	if !tx.Amount.Equal(want) || !tx.SettlementDate.After(tx.Date) {
		t.Fatalf("trade amount %s, want %s; settles %s: %s", tx.Amount, want, tx.SettlementDate, tx.Raw)
	}
}

// Small pages give exactly what one large page gives, in the same order.
func TestPagesAndWindowsJoinUp(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	creds := e.connect(t, "", "")
	small := e.newProvider(t, e.srv.URL, testRedirect, 7)
	ctx := context.Background()
	accounts, err := e.provider.Accounts(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	from, to := start.AddDate(0, -5, 0), start.Add(time.Hour) // spans two range windows
	big, err := e.provider.Transactions(ctx, creds, accounts[0].ID, from, to)
	if err != nil {
		t.Fatal(err)
	}
	paged, err := small.Transactions(ctx, creds, accounts[0].ID, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(big) < 100 || len(big) != len(paged) {
		t.Fatalf("%d transactions in one page a window, %d in pages of 7", len(big), len(paged))
	}
	for i := range big {
		if big[i].ID != paged[i].ID || big[i].Date.Before(from.Truncate(24*time.Hour)) || big[i].Date.After(to) {
			t.Fatalf("transaction %d: %s and %s, dated %s", i, big[i].ID, paged[i].ID, big[i].Date)
		}
	}
}

// The institution keeps about thirteen months of history online.
func TestHistoryWindow(t *testing.T) {
	start := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{start: start})
	creds := e.connect(t, "", "")
	txs, err := e.provider.Transactions(context.Background(), creds, read(t, e.provider, creds, start, start).accounts[0].ID,
		start.AddDate(-3, 0, 0), start.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	oldest := txs[0].Date
	if oldest.Before(start.AddDate(0, 0, -401)) || oldest.After(start.AddDate(0, 0, -395)) {
		t.Fatalf("oldest transaction %s, want about 400 days before %s", oldest, start)
	}
}

// The persona a connection alias selects, as docs/sandbox.md tells clients.
func TestPersonaForAlias(t *testing.T) {
	for alias, want := range map[string]sandbox.Persona{
		"":                      sandbox.PersonaDefault,
		"My bank":               sandbox.PersonaDefault,
		"Flaky test":            sandbox.PersonaFlaky,
		"sandbox-large":         sandbox.PersonaLarge,
		"my EXPIRING bank":      sandbox.PersonaExpiring,
		"flakyness":             sandbox.PersonaDefault, // whole words only
		"default then large":    sandbox.PersonaLarge,
		"large, flaky":          sandbox.PersonaLarge,    // the first persona named
		"expiring_soon":         sandbox.PersonaExpiring, // anything but letters and digits separates
		"Sandbox (expiring) #2": sandbox.PersonaExpiring,
	} {
		if got := sandbox.PersonaForAlias(alias); got != want {
			t.Errorf("PersonaForAlias(%q) = %s, want %s", alias, got, want)
		}
	}
}
