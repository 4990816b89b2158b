package syncs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
)

// TestSchwabEndToEnd syncs a Schwab connection through the real adapter
// and the fake Schwab in its own dialect: trades with their fee legs
// become buys and sells with signed quantities, prices, commissions and
// fees; dividends, interest, ELECTRONIC_FUND deposits, JOURNAL entries,
// wires and fee-only records get their types and signs; a cancelled
// (INVALID) order is not stored; positions become holdings; no full
// account number reaches the log; and a second sync appends nothing.
func TestSchwabEndToEnd(t *testing.T) {
	w := newWorld(t, worldOptions{})
	p := user()
	id := w.connectSchwab(p, "Schwab")
	done, ok := w.sync(p, id).(connection.SyncCompleted)
	require.True(t, ok, "%#v", done)
	assert.Equal(t, 2, done.Accounts)
	assert.Empty(t, done.AccountErrors)
	assert.Positive(t, done.Counts.Created)

	s := w.folded()
	require.Len(t, s.accounts, 2)
	var cashAcct, marginAcct string
	for key, a := range s.accounts {
		assert.Equal(t, "brokerage", a.Details.Type, key)
		assert.True(t, a.Active)
		switch a.Details.MaskedNumber {
		case "5926":
			cashAcct = key
			assert.Equal(t, "25890.12", a.Balance)
			// The closed GME position (quantity zero) is no holding.
			assert.ElementsMatch(t, []string{"AAPL 50 8479", "SCHD 120 9426", "SWTSX 25.5 2411.5"}, a.Holdings)
		case "2818":
			marginAcct = key
			assert.ElementsMatch(t, []string{"SPY   240510C00520000 2 1220", "TSLA -1 -172.1", "MSFT 100 39890"}, a.Holdings)
		default:
			t.Errorf("account %s masked as %q", key, a.Details.MaskedNumber)
		}
	}
	require.NotEmpty(t, cashAcct)
	require.NotEmpty(t, marginAcct)

	// find returns the account's transactions matching the predicate.
	find := func(acct string, match func(transaction.Data) bool) []txState {
		var out []txState
		for _, tx := range s.transactions {
			if tx.Account == acct && match(tx.Data) {
				out = append(out, tx)
			}
		}
		return out
	}
	one := func(what, acct string, match func(transaction.Data) bool) txState {
		t.Helper()
		got := find(acct, match)
		require.NotEmpty(t, got, what)
		return got[0]
	}
	dec := func(p interface{ String() string }) string {
		if p == nil {
			return "nil"
		}
		return p.String()
	}

	optionBuy := one("an option bought", marginAcct, func(d transaction.Data) bool {
		return d.Subtype == "TRADE" && d.Type == "buy" && strings.HasPrefix(d.Symbol, "SPY")
	})
	assert.Equal(t, "-525.66", optionBuy.Data.Amount.String(), "1 contract x 5.25 x 100, commission 0.65, fees 0.01")
	assert.Equal(t, "1", dec(optionBuy.Data.Quantity))
	assert.Equal(t, "5.25", dec(optionBuy.Data.UnitPrice))
	assert.Equal(t, "0.65", dec(optionBuy.Data.Commission))
	assert.Equal(t, "0.01", dec(optionBuy.Data.Fees))
	optionSell := one("an option sold", marginAcct, func(d transaction.Data) bool { return d.Type == "sell" && strings.HasPrefix(d.Symbol, "SPY") })
	assert.Equal(t, "609.32", optionSell.Data.Amount.String(), "610 less commission 0.65 and fees 0.03")
	assert.Equal(t, "-1", dec(optionSell.Data.Quantity))
	assert.Equal(t, "0.03", dec(optionSell.Data.Fees))
	short := one("a short sale", marginAcct, func(d transaction.Data) bool { return d.Type == "sell" && d.Symbol == "TSLA" })
	assert.Equal(t, "-1", dec(short.Data.Quantity))
	assert.Equal(t, "175.48", short.Data.Amount.String())

	stockSell := one("a stock sold", cashAcct, func(d transaction.Data) bool { return d.Type == "sell" && d.Symbol == "AAPL" })
	assert.Equal(t, "851.22", stockSell.Data.Amount.String())
	assert.Equal(t, "-5", dec(stockSell.Data.Quantity))
	assert.Equal(t, "170.25", dec(stockSell.Data.UnitPrice))
	assert.Equal(t, "0", dec(stockSell.Data.Commission))
	assert.Equal(t, "0.03", dec(stockSell.Data.Fees))
	etfBuy := one("an ETF bought", cashAcct, func(d transaction.Data) bool { return d.Type == "buy" && d.Symbol == "SCHD" })
	assert.Equal(t, "10", dec(etfBuy.Data.Quantity))
	assert.True(t, etfBuy.Data.Amount.IsNegative())

	dividend := one("a dividend", cashAcct, func(d transaction.Data) bool { return d.Type == "dividend" })
	assert.Equal(t, "12.5", dividend.Data.Amount.String())
	assert.Equal(t, "DIVIDEND_OR_INTEREST", dividend.Data.Subtype)
	assert.Nil(t, dividend.Data.Quantity, "a dividend is no trade")
	interest := one("interest paid", cashAcct, func(d transaction.Data) bool { return d.Type == "interest" })
	assert.Equal(t, "0.42", interest.Data.Amount.String())
	marginInterest := one("margin interest charged", marginAcct, func(d transaction.Data) bool { return d.Type == "interest" })
	assert.Equal(t, "-3.21", marginInterest.Data.Amount.String())

	deposits := find(cashAcct, func(d transaction.Data) bool { return d.Subtype == "ELECTRONIC_FUND" })
	require.NotEmpty(t, deposits)
	pending := 0
	for _, d := range deposits {
		assert.Equal(t, "deposit", d.Data.Type)
		assert.Equal(t, "2500", d.Data.Amount.String())
		if d.Status == transaction.StatusPending {
			pending++
		}
	}
	assert.Equal(t, 1, pending, "the latest ACH credit is still pending")

	out := one("a journal out", cashAcct, func(d transaction.Data) bool { return d.Subtype == "JOURNAL" })
	assert.Equal(t, "journal", out.Data.Type)
	assert.Equal(t, "-500", out.Data.Amount.String())
	in := one("a journal in", marginAcct, func(d transaction.Data) bool { return d.Subtype == "JOURNAL" })
	assert.Equal(t, "500", in.Data.Amount.String())
	assert.Equal(t, "deposit", one("a wire in", marginAcct, func(d transaction.Data) bool { return d.Subtype == "WIRE_IN" }).Data.Type)
	assert.Equal(t, "withdrawal", one("a wire out", marginAcct, func(d transaction.Data) bool { return d.Subtype == "WIRE_OUT" }).Data.Type)
	assert.Equal(t, "withdrawal", one("an ACH debit", cashAcct, func(d transaction.Data) bool { return d.Subtype == "ACH_DISBURSEMENT" }).Data.Type)
	adr := one("a fee alone", cashAcct, func(d transaction.Data) bool { return d.Type == "fee" })
	assert.Equal(t, "-0.6", adr.Data.Amount.String())
	assert.Empty(t, find(cashAcct, func(d transaction.Data) bool { return d.Type == "buy" && d.Symbol == "AAPL" }),
		"the INVALID (cancelled) AAPL order is not stored")

	var leaked int
	require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT count(*) FROM events
		WHERE payload::text LIKE '%' || $1 || '%' OR payload::text LIKE '%' || $2 || '%'`,
		schwabtest.CashAccountNumber, schwabtest.MarginAccountNumber).Scan(&leaked))
	assert.Zero(t, leaked, "events holding a full account number")

	before := w.eventCounts()
	again, ok := w.sync(p, id).(connection.SyncCompleted)
	require.True(t, ok)
	assert.Zero(t, again.Counts.Created+again.Counts.Updated+again.Counts.Removed)
	after := w.eventCounts()
	assert.Equal(t, before[eventstore.StreamAccount], after[eventstore.StreamAccount])
	assert.Equal(t, before[eventstore.StreamTransaction], after[eventstore.StreamTransaction])
	w.indexMatchesLog()
}
