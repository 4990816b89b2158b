package schwab_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/commands"
)

// rec writes a transaction record in Schwab's dialect; empty fields are
// left out, as Schwab leaves them out.
type rec struct {
	id                              int64
	typ, status, desc               string
	time, tradeDate, settlementDate string
	net                             string
	legs                            []string
	extra                           string // raw members appended, with a leading comma
	accountNumber                   string
}

func (r rec) json() string {
	if r.status == "" {
		r.status = "VALID"
	}
	if r.accountNumber == "" {
		r.accountNumber = schwabtest.CashAccountNumber
	}
	if r.time == "" && r.tradeDate == "" {
		r.time, r.tradeDate = "2024-06-03T14:30:00+0000", "2024-06-03T04:00:00+0000"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"activityId":%d,"accountNumber":%q,"type":%q,"status":%q,"subAccount":"CASH","netAmount":%s`,
		r.id, r.accountNumber, r.typ, r.status, r.net)
	for k, v := range map[string]string{"description": r.desc, "time": r.time, "tradeDate": r.tradeDate, "settlementDate": r.settlementDate} {
		if v != "" {
			fmt.Fprintf(&b, `,%q:%q`, k, v)
		}
	}
	fmt.Fprintf(&b, `,"transferItems":[%s]%s}`, strings.Join(r.legs, ","), r.extra)
	return b.String()
}

const usdInstrument = `{"assetType":"CURRENCY","status":"ACTIVE","symbol":"CURRENCY_USD","description":"USD currency","instrumentId":1,"closingPrice":0.0}`

// feeLeg is a fee leg; an empty amount or cost is left out.
func feeLeg(typ, amount, cost string) string {
	s := `{"instrument":` + usdInstrument
	if amount != "" {
		s += `,"amount":` + amount
	}
	if cost != "" {
		s += `,"cost":` + cost
	}
	return s + `,"feeType":"` + typ + `"}`
}

func secLeg(assetType, symbol, amount, price, cost string) string {
	return fmt.Sprintf(`{"instrument":{"assetType":%q,"status":"ACTIVE","symbol":%q,"instrumentId":42,"closingPrice":%s},"amount":%s,"cost":%s,"price":%s,"positionEffect":"OPENING"}`,
		assetType, symbol, price, amount, cost, price)
}

func cashLeg(amount string) string {
	return `{"instrument":` + usdInstrument + `,"amount":` + amount + `,"cost":0.0}`
}

// zeroFees are the fee legs Schwab lists with nothing charged.
var zeroFees = []string{feeLeg("COMMISSION", "0.0", "0.0"), feeLeg("SEC_FEE", "0.0", "0.0"), feeLeg("OPT_REG_FEE", "0.0", "0.0"), feeLeg("TAF_FEE", "0.0", "0.0")}

func legs(ls ...[]string) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l...)
	}
	return out
}

// want is what a record maps to; empty strings are absent values.
type want struct {
	typ                                   string
	pending                               bool
	amount, date, settlement, description string
	symbol, qty, price, commission, fees  string
}

func TestTransactionMapping(t *testing.T) {
	tests := []struct {
		name string
		rec  rec
		want want
	}{
		{"buy with zero-fee legs", rec{typ: "TRADE", net: "-785.5", legs: legs(zeroFees, []string{secLeg("COLLECTIVE_INVESTMENT", "SCHD", "10.0", "78.55", "-785.5")})},
			want{typ: "buy", amount: "-785.5", date: "2024-06-03", symbol: "SCHD", qty: "10", price: "78.55", commission: "0", fees: "0"}},
		{"sell with fee legs", rec{typ: "TRADE", net: "850.57", legs: []string{
			feeLeg("COMMISSION", "0.65", "-0.65"), feeLeg("SEC_FEE", "0.02", "-0.02"), feeLeg("OPT_REG_FEE", "0.0", "0.0"), feeLeg("TAF_FEE", "0.01", "-0.01"),
			secLeg("EQUITY", "AAPL", "-5.0", "170.25", "851.25")}},
			want{typ: "sell", amount: "850.57", date: "2024-06-03", symbol: "AAPL", qty: "-5", price: "170.25", commission: "0.65", fees: "0.03"}},
		{"commission legs add up", rec{typ: "TRADE", net: "-1051.32", legs: []string{
			feeLeg("COMMISSION", "0.65", "-0.65"), feeLeg("COMMISSION", "0.65", "-0.65"), feeLeg("OPT_REG_FEE", "0.02", "-0.02"),
			secLeg("OPTION", "SPY   240510C00520000", "2.0", "5.25", "-1050.0")}},
			want{typ: "buy", amount: "-1051.32", date: "2024-06-03", symbol: "SPY   240510C00520000", qty: "2", price: "5.25", commission: "1.3", fees: "0.02"}},
		{"fee legs with only an amount or only a cost", rec{typ: "TRADE", net: "-101.53", legs: []string{
			feeLeg("COMMISSION", "1.5", ""), feeLeg("SEC_FEE", "", "-0.03"), secLeg("EQUITY", "F", "10", "10", "-100")}},
			want{typ: "buy", amount: "-101.53", date: "2024-06-03", symbol: "F", qty: "10", price: "10", commission: "1.5", fees: "0.03"}},
		{"net amount as Schwab states it", rec{typ: "TRADE", net: "-100.0", legs: legs(zeroFees, []string{secLeg("EQUITY", "F", "9", "11", "-99")})},
			want{typ: "buy", amount: "-100", date: "2024-06-03", symbol: "F", qty: "9", price: "11", commission: "0", fees: "0"}},
		{"short sale", rec{typ: "TRADE", net: "175.48", legs: legs(zeroFees, []string{secLeg("EQUITY", "TSLA", "-1.0", "175.5", "175.5")})},
			want{typ: "sell", amount: "175.48", date: "2024-06-03", symbol: "TSLA", qty: "-1", price: "175.5", commission: "0", fees: "0"}},
		{"trade without a security leg", rec{typ: "TRADE", net: "-2.5", legs: []string{feeLeg("COMMISSION", "2.5", "-2.5"), cashLeg("-2.5")}},
			want{typ: "other", amount: "-2.5", date: "2024-06-03"}},
		{"qualified dividend", rec{typ: "DIVIDEND_OR_INTEREST", desc: "QUALIFIED DIVIDEND", net: "12.5", legs: []string{cashLeg("12.5"), secLeg("EQUITY", "AAPL", "0", "0", "0")}},
			want{typ: "dividend", amount: "12.5", date: "2024-06-03", description: "QUALIFIED DIVIDEND"}},
		{"international dividend", rec{typ: "DIVIDEND_OR_INTEREST", desc: "INTERNATIONAL DIV", net: "3.1", legs: []string{cashLeg("3.1")}},
			want{typ: "dividend", amount: "3.1", date: "2024-06-03", description: "INTERNATIONAL DIV"}},
		{"sweep interest", rec{typ: "DIVIDEND_OR_INTEREST", desc: "SCHWAB1 INT 03/27-04/25", net: "0.42", legs: []string{cashLeg("0.42")}},
			want{typ: "interest", amount: "0.42", date: "2024-06-03", description: "SCHWAB1 INT 03/27-04/25"}},
		{"bank interest", rec{typ: "DIVIDEND_OR_INTEREST", desc: "Bank Interest", net: "1.01", legs: []string{cashLeg("1.01")}},
			want{typ: "interest", amount: "1.01", date: "2024-06-03", description: "Bank Interest"}},
		{"margin interest", rec{typ: "DIVIDEND_OR_INTEREST", desc: "MARGIN INTEREST", net: "-3.21", legs: []string{cashLeg("-3.21")}},
			want{typ: "interest", amount: "-3.21", date: "2024-06-03", description: "MARGIN INTEREST"}},
		{"fee only", rec{typ: "DIVIDEND_OR_INTEREST", desc: "ADR MGMT FEE", net: "-0.6", legs: []string{feeLeg("ADR_FEE", "0.6", "-0.6")}},
			want{typ: "fee", amount: "-0.6", date: "2024-06-03", description: "ADR MGMT FEE"}},
		{"ACH credit", rec{typ: "ELECTRONIC_FUND", desc: "ACH Credit Received", net: "2500.0", legs: []string{cashLeg("2500.0")}},
			want{typ: "deposit", amount: "2500", date: "2024-06-03", description: "ACH Credit Received"}},
		{"outgoing electronic fund", rec{typ: "ELECTRONIC_FUND", desc: "ACH Debit", net: "-50", legs: []string{cashLeg("-50")}},
			want{typ: "withdrawal", amount: "-50", date: "2024-06-03", description: "ACH Debit"}},
		{"ACH receipt", rec{typ: "ACH_RECEIPT", net: "10", legs: []string{cashLeg("10")}}, want{typ: "deposit", amount: "10", date: "2024-06-03"}},
		{"cash receipt", rec{typ: "CASH_RECEIPT", net: "11", legs: []string{cashLeg("11")}}, want{typ: "deposit", amount: "11", date: "2024-06-03"}},
		{"wire in", rec{typ: "WIRE_IN", net: "12", legs: []string{cashLeg("12")}}, want{typ: "deposit", amount: "12", date: "2024-06-03"}},
		{"ACH disbursement", rec{typ: "ACH_DISBURSEMENT", net: "-13", legs: []string{cashLeg("-13")}}, want{typ: "withdrawal", amount: "-13", date: "2024-06-03"}},
		{"cash disbursement", rec{typ: "CASH_DISBURSEMENT", net: "-14", legs: []string{cashLeg("-14")}}, want{typ: "withdrawal", amount: "-14", date: "2024-06-03"}},
		{"wire out", rec{typ: "WIRE_OUT", net: "-15", legs: []string{cashLeg("-15")}}, want{typ: "withdrawal", amount: "-15", date: "2024-06-03"}},
		{"journal naming the other account", rec{typ: "JOURNAL", desc: "JOURNAL TO " + schwabtest.MarginAccountNumber, net: "-500", legs: []string{cashLeg("-500")}},
			want{typ: "journal", amount: "-500", date: "2024-06-03", description: "JOURNAL TO ****2818"}},
		{"receive and deliver", rec{typ: "RECEIVE_AND_DELIVER", desc: "TRANSFER OF SECURITY OR OPTION IN", net: "0", legs: []string{secLeg("EQUITY", "MSFT", "20", "0", "0")}},
			want{typ: "transfer", amount: "0", date: "2024-06-03", description: "TRANSFER OF SECURITY OR OPTION IN"}},
		{"memorandum", rec{typ: "MEMORANDUM", net: "0"}, want{typ: "other", amount: "0", date: "2024-06-03"}},
		{"margin call", rec{typ: "MARGIN_CALL", net: "0"}, want{typ: "other", amount: "0", date: "2024-06-03"}},
		{"money market", rec{typ: "MONEY_MARKET", net: "5", legs: []string{cashLeg("5")}}, want{typ: "other", amount: "5", date: "2024-06-03"}},
		{"SMA adjustment", rec{typ: "SMA_ADJUSTMENT", net: "0"}, want{typ: "other", amount: "0", date: "2024-06-03"}},
		{"pending", rec{typ: "ELECTRONIC_FUND", status: "PENDING", desc: "ACH Credit Received", net: "100", legs: []string{cashLeg("100")}},
			want{typ: "deposit", pending: true, amount: "100", date: "2024-06-03", description: "ACH Credit Received"}},

		// Dates: the New York calendar date of tradeDate, else of time.
		{"winter trade date", rec{typ: "JOURNAL", net: "1", time: "2024-03-09T16:00:00+0000", tradeDate: "2024-03-09T05:00:00+0000"},
			want{typ: "journal", amount: "1", date: "2024-03-09"}},
		{"trade date on the spring-forward day", rec{typ: "JOURNAL", net: "1", time: "2024-03-10T16:00:00+0000", tradeDate: "2024-03-10T05:00:00.000Z"},
			want{typ: "journal", amount: "1", date: "2024-03-10"}},
		{"summer trade date", rec{typ: "JOURNAL", net: "1", time: "2024-03-11T13:00:00+0000", tradeDate: "2024-03-11T04:00:00+0000"},
			want{typ: "journal", amount: "1", date: "2024-03-11"}},
		{"settlement across fall-back", rec{typ: "JOURNAL", net: "1", time: "2024-11-01T19:00:00+0000", tradeDate: "2024-11-01T04:00:00+00:00", settlementDate: "2024-11-04T05:00:00+0000"},
			want{typ: "journal", amount: "1", date: "2024-11-01", settlement: "2024-11-04"}},
		{"late evening before fall-back, time only", rec{typ: "JOURNAL", net: "1", time: "2024-11-03T03:30:00Z"},
			want{typ: "journal", amount: "1", date: "2024-11-02"}},
		{"last second before spring-forward midnight, time only", rec{typ: "JOURNAL", net: "1", time: "2024-03-10T04:59:59.123+00:00"},
			want{typ: "journal", amount: "1", date: "2024-03-09"}},
		{"fractions and Z, time only", rec{typ: "JOURNAL", net: "1", time: "2024-07-01T03:59:59.500000Z"},
			want{typ: "journal", amount: "1", date: "2024-06-30"}},
		{"+0000 at New York midnight, time only", rec{typ: "JOURNAL", net: "1", time: "2024-07-01T04:00:00+0000"},
			want{typ: "journal", amount: "1", date: "2024-07-01"}},
		{"exact decimals", rec{typ: "CASH_RECEIPT", net: "1234.5678", legs: []string{cashLeg("1234.5678")}},
			want{typ: "deposit", amount: "1234.5678", date: "2024-06-03"}},
	}
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	fx.fake.ClearTransactions(schwabtest.CashAccountNumber)
	for i := range tests {
		tests[i].rec.id = 90_000_000_000 + int64(i)
		fx.fake.AddTransaction(t, schwabtest.CashAccountNumber, tests[i].rec.json())
	}
	invalid := rec{id: 91_000_000_000, typ: "TRADE", status: "INVALID", net: "-1", legs: []string{secLeg("EQUITY", "F", "1", "1", "-1")}}
	fx.fake.AddTransaction(t, schwabtest.CashAccountNumber, invalid.json())

	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	from, to := time.Date(2024, 1, 1, 5, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 5, 0, 0, 0, time.UTC)
	txs, err := fx.a.Transactions(context.Background(), creds, id, from, to)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]commands.ProviderTransaction{}
	for _, tx := range txs {
		byID[tx.ID] = tx
	}
	if len(byID) != len(tests) {
		t.Errorf("%d transactions, want %d (INVALID left out)", len(byID), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, ok := byID[fmt.Sprint(tt.rec.id)]
			if !ok {
				t.Fatalf("transaction %d missing", tt.rec.id)
			}
			checkTransaction(t, tx, tt.rec.typ, tt.want)
			noLeak(t, fx.fake, "raw transaction", string(tx.Raw))
			if !strings.Contains(string(tx.Raw), `"accountNumber":"****5926"`) {
				t.Errorf("raw does not show the masked account number: %s", tx.Raw)
			}
			if tx.AccountID != id {
				t.Errorf("account id %s, want %s", tx.AccountID, id)
			}
		})
	}
}

// checkTransaction compares tx with w.
func checkTransaction(t *testing.T, tx commands.ProviderTransaction, subtype string, w want) {
	t.Helper()
	if tx.Type != w.typ || tx.Subtype != subtype || tx.Pending != w.pending || tx.Currency != "USD" || tx.Description != w.description {
		t.Errorf("type %q subtype %q pending %v currency %q description %q, want %q %q %v USD %q",
			tx.Type, tx.Subtype, tx.Pending, tx.Currency, tx.Description, w.typ, subtype, w.pending, w.description)
	}
	if !tx.Amount.Equal(decimal.RequireFromString(w.amount)) {
		t.Errorf("amount %s, want %s", tx.Amount, w.amount)
	}
	if got := tx.Date.Format(time.DateOnly); got != w.date || tx.Date.Location() != time.UTC || !tx.Date.Equal(tx.Date.Truncate(24*time.Hour)) {
		t.Errorf("date %s, want %s at midnight UTC", tx.Date, w.date)
	}
	switch {
	case w.settlement == "" && tx.SettlementDate != nil:
		t.Errorf("settlement %s, want none", tx.SettlementDate)
	case w.settlement != "" && (tx.SettlementDate == nil || tx.SettlementDate.Format(time.DateOnly) != w.settlement):
		t.Errorf("settlement %v, want %s", tx.SettlementDate, w.settlement)
	}
	if tx.Symbol != w.symbol {
		t.Errorf("symbol %q, want %q", tx.Symbol, w.symbol)
	}
	for _, f := range []struct {
		name string
		got  *decimal.Decimal
		want string
	}{{"quantity", tx.Quantity, w.qty}, {"unit price", tx.UnitPrice, w.price}, {"commission", tx.Commission, w.commission}, {"fees", tx.Fees, w.fees}} {
		switch {
		case f.want == "" && f.got != nil:
			t.Errorf("%s %s, want none", f.name, f.got)
		case f.want != "" && (f.got == nil || !f.got.Equal(decimal.RequireFromString(f.want))):
			t.Errorf("%s %v, want %s", f.name, f.got, f.want)
		}
	}
}

// TestTransactionQuirks covers records whose JSON itself is odd.
func TestTransactionQuirks(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	fx.fake.ClearTransactions(schwabtest.CashAccountNumber)
	// assetType twice in one instrument: encoding/json keeps the last.
	dup := `{"activityId":7001,"time":"2024-04-04T15:56:07+0000","accountNumber":"31415926","type":"TRADE","status":"VALID","subAccount":"CASH","tradeDate":"2024-04-04T04:00:00+0000","netAmount":-820.0,"transferItems":[{"instrument":{"assetType":"CURRENCY","symbol":"MSFT","instrumentId":1904150,"assetType":"EQUITY","type":"COMMON_STOCK"},"amount":2.0,"cost":-820.0,"price":410.0,"positionEffect":"OPENING"}]}`
	// Fields Schwab added without notice, at every level.
	unknown := `{"activityId":98765432101234,"time":"2024-04-05T15:56:07.000Z","accountNumber":"31415926","type":"CASH_RECEIPT","status":"VALID","brandNewField":{"nested":[1,2,{"accountNumber":"31415926"}]},"netAmount":5,"transferItems":[{"instrument":{"assetType":"CURRENCY","symbol":"CURRENCY_USD","shinyNew":true},"amount":5,"cost":0,"anotherNewField":"x"}],"activityType":"SOMETHING_NEW"}`
	fx.fake.AddTransaction(t, schwabtest.CashAccountNumber, dup)
	fx.fake.AddTransaction(t, schwabtest.CashAccountNumber, unknown)
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	txs, err := fx.a.Transactions(context.Background(), creds, id, time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 2 || txs[0].ID != "7001" || txs[1].ID != "98765432101234" {
		t.Fatalf("transactions %+v, want 7001 then 98765432101234 in time order", txs)
	}
	checkTransaction(t, txs[0], "TRADE", want{typ: "buy", amount: "-820", date: "2024-04-04", symbol: "MSFT", qty: "2", price: "410", commission: "0", fees: "0"})
	if n := strings.Count(string(txs[0].Raw), `"assetType"`); n != 1 || strings.Contains(string(txs[0].Raw), "CURRENCY") {
		t.Errorf("raw of the duplicate-key record: %s", txs[0].Raw)
	}
	checkTransaction(t, txs[1], "CASH_RECEIPT", want{typ: "deposit", amount: "5", date: "2024-04-05"})
	for _, k := range []string{`"brandNewField"`, `"shinyNew":true`, `"anotherNewField":"x"`, `"activityType":"SOMETHING_NEW"`, `{"accountNumber":"****5926"}`} {
		if !strings.Contains(string(txs[1].Raw), k) {
			t.Errorf("raw lost %s: %s", k, txs[1].Raw)
		}
	}
	noLeak(t, fx.fake, "raw", string(txs[1].Raw))
}

// TestSeededHistory reads the fake's default year through the adapter:
// every kind the dialect produces, the INVALID order left out.
func TestSeededHistory(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	to := start.Truncate(24 * time.Hour).Add(24 * time.Hour)
	from := to.AddDate(-1, 0, 0)
	byType := map[string]int{}
	pending := 0
	for _, number := range []string{schwabtest.CashAccountNumber, schwabtest.MarginAccountNumber} {
		txs, err := fx.a.Transactions(context.Background(), creds, fx.accountID(t, creds, number), from, to)
		if err != nil {
			t.Fatal(err)
		}
		total := fx.fake.TransactionCount(number)
		if number == schwabtest.CashAccountNumber {
			total-- // the INVALID order
		}
		if len(txs) != total {
			t.Errorf("account %s: %d transactions, want %d", number, len(txs), total)
		}
		for _, tx := range txs {
			byType[tx.Type]++
			if tx.Pending {
				pending++
			}
			noLeak(t, fx.fake, "raw", string(tx.Raw))
			noLeak(t, fx.fake, "description", tx.Description)
			if tx.Subtype == "TRADE" && (tx.Commission == nil || tx.Fees == nil || tx.Quantity == nil || tx.Symbol == "") {
				t.Errorf("trade %s without trade fields: %+v", tx.ID, tx)
			}
		}
	}
	for _, typ := range []string{"buy", "sell", "dividend", "interest", "deposit", "withdrawal", "journal", "transfer", "fee", "other"} {
		if byType[typ] == 0 {
			t.Errorf("no %s transaction in the seeded year (%v)", typ, byType)
		}
	}
	if pending != 1 {
		t.Errorf("%d pending transactions, want 1", pending)
	}
}

// TestTransactionsSplitLongRanges asks for eighteen months: two searches,
// each within Schwab's year, contiguous, covering the whole range.
func TestTransactionsSplitLongRanges(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	to := start
	from := to.AddDate(0, -18, 0)
	fx.fake.ResetCalls()
	txs, err := fx.a.Transactions(context.Background(), creds, id, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != fx.fake.TransactionCount(schwabtest.CashAccountNumber)-1 {
		t.Errorf("%d transactions, want the whole history but the INVALID one", len(txs))
	}
	windows := searchWindows(t, fx.fake)
	if len(windows) != 2 {
		t.Fatalf("%d searches, want 2: %v", len(windows), windows)
	}
	checkCoverage(t, windows, from, to)
}

// TestTransactionsSplitFullWindows puts 7000 records in a month: each
// full answer is split in halves until none is full, and every record
// comes back once.
func TestTransactionsSplitFullWindows(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	fx.fake.ClearTransactions(schwabtest.CashAccountNumber)
	from := time.Date(2025, 1, 1, 5, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	ids := fx.fake.GenerateTransactions(schwabtest.CashAccountNumber, 7000, from, to)
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	fx.fake.ResetCalls()
	txs, err := fx.a.Transactions(context.Background(), creds, id, from, to)
	if err != nil {
		t.Fatal(err)
	}
	checkExactly(t, txs, ids)
	windows := searchWindows(t, fx.fake)
	if len(windows) < 3 {
		t.Fatalf("%d searches for 7000 records, want at least 3", len(windows))
	}
	checkCoverage(t, leaves(windows), from, to)
	if windows[0].records != schwabtest.MaxTransactionsPerCall {
		t.Errorf("first search answered %d records, want a full page", windows[0].records)
	}
	for _, w := range leaves(windows) {
		if w.records >= schwabtest.MaxTransactionsPerCall {
			t.Errorf("search %s..%s was full and not split", w.start, w.end)
		}
	}
	for _, r := range fx.fake.Requests(schwabtest.EndpointTransactions) {
		if r.Status != 200 {
			t.Errorf("search %v answered %d", r.Query, r.Status)
		}
	}
}

// TestTransactionsDeduplicate makes Schwab match whole days, so that
// adjacent windows both answer their common day's records.
func TestTransactionsDeduplicate(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	fx.fake.MatchWholeDays(true)
	fx.fake.ClearTransactions(schwabtest.CashAccountNumber)
	from := time.Date(2023, 6, 1, 4, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 18, 0)
	ids := fx.fake.GenerateTransactions(schwabtest.CashAccountNumber, 1000, from, to)
	// And four busy days (900 records each): a window holding all four
	// comes back full and is split, and its halves share a day. (A day of
	// more than 3000 could never be split when Schwab matches whole days.)
	busy := time.Date(2024, 2, 1, 5, 0, 0, 0, time.UTC)
	ids = append(ids, fx.fake.GenerateTransactions(schwabtest.CashAccountNumber, 3600, busy, busy.Add(96*time.Hour))...)
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	fx.fake.ResetCalls()
	txs, err := fx.a.Transactions(context.Background(), creds, id, from, to)
	if err != nil {
		t.Fatal(err)
	}
	checkExactly(t, txs, ids)
	answered := 0
	for _, w := range leaves(searchWindows(t, fx.fake)) {
		answered += w.records
	}
	if answered <= len(ids) {
		t.Fatalf("the leaf searches answered %d records for %d: no duplicate to remove", answered, len(ids))
	}
}

func TestTransactionsTooManyInOneSecond(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	at := time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)
	fx.fake.GenerateTransactions(schwabtest.CashAccountNumber, 3000, at, at.Add(time.Millisecond))
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	_, err := fx.a.Transactions(context.Background(), creds, id, at.Add(-time.Minute), at.Add(time.Minute))
	wantKind(t, err, commands.ErrProviderInvalidResponse)
}

func TestTransactionsOfUnknownAccountCallNoSearch(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	_, err := fx.a.Transactions(context.Background(), creds, "schwab-00000000000000000000000000000000", start.AddDate(0, -1, 0), start)
	wantKind(t, err, commands.ErrProviderNotFound)
	if n := fx.fake.Calls(schwabtest.EndpointTransactions); n != 0 {
		t.Fatalf("%d searches for an unknown account", n)
	}
	// An empty range asks nothing either.
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	txs, err := fx.a.Transactions(context.Background(), creds, id, start, start)
	if err != nil || len(txs) != 0 || fx.fake.Calls(schwabtest.EndpointTransactions) != 0 {
		t.Fatalf("empty range: %v %v, %d searches", txs, err, fx.fake.Calls(schwabtest.EndpointTransactions))
	}
}

// window is one search's range as sent, inclusive, and how many records
// it answered.
type window struct {
	start, end time.Time
	records    int
}

func searchWindows(t *testing.T, f *schwabtest.Fake) []window {
	t.Helper()
	var out []window
	for _, r := range f.Requests(schwabtest.EndpointTransactions) {
		s, err1 := time.Parse("2006-01-02T15:04:05.000Z", r.Query.Get("startDate"))
		e, err2 := time.Parse("2006-01-02T15:04:05.000Z", r.Query.Get("endDate"))
		if err1 != nil || err2 != nil {
			t.Fatalf("search %v: dates not in Schwab's form", r.Query)
		}
		if r.Query.Get("types") != strings.Join(schwabtest.TransactionTypes, ",") {
			t.Errorf("search types %q, want all", r.Query.Get("types"))
		}
		if e.Sub(s) > schwabtest.MaxTransactionRange {
			t.Errorf("search %s..%s spans more than Schwab allows", s, e)
		}
		out = append(out, window{s, e, r.Records})
	}
	return out
}

// leaves drops windows that were split (those another window starts
// with and ends before).
func leaves(ws []window) []window {
	var out []window
	for i, w := range ws {
		split := false
		for j, v := range ws {
			if i != j && !v.start.Before(w.start) && !v.end.After(w.end) && (v.start != w.start || v.end != w.end) {
				split = true
			}
		}
		if !split {
			out = append(out, w)
		}
	}
	return out
}

// checkCoverage checks that ws, in order, tile [from, to) at
// millisecond precision without gap or overlap.
func checkCoverage(t *testing.T, ws []window, from, to time.Time) {
	t.Helper()
	next := from
	for _, w := range ws {
		if !w.start.Equal(next) {
			t.Fatalf("window starts %s, want %s", w.start, next)
		}
		next = w.end.Add(time.Millisecond)
	}
	if !next.Equal(to) {
		t.Fatalf("windows end at %s, want %s", next, to)
	}
}

// checkExactly checks that txs are the ids, each once.
func checkExactly(t *testing.T, txs []commands.ProviderTransaction, ids []int64) {
	t.Helper()
	seen := map[string]int{}
	for _, tx := range txs {
		seen[tx.ID]++
	}
	for _, id := range ids {
		if seen[fmt.Sprint(id)] != 1 {
			t.Fatalf("transaction %d listed %d times", id, seen[fmt.Sprint(id)])
		}
	}
	if len(txs) != len(ids) {
		t.Fatalf("%d transactions, want %d", len(txs), len(ids))
	}
}
