package schwab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // trade dates are New York dates on any host, tz database or not

	"github.com/shopspring/decimal"
)

// The JSON shapes of Schwab's answers, as far as the adapter reads them.
// Unknown fields are ignored; Raw keeps the whole record. Numbers are
// decoded by decimal from their literal text, so no float touches an
// amount.

// accountNumber is one entry of GET /accounts/accountNumbers.
type accountNumber struct {
	AccountNumber flexString `json:"accountNumber"`
	HashValue     string     `json:"hashValue"`
}

// accountEnvelope is one entry of GET /accounts (or the answer of GET
// /accounts/{hash}).
type accountEnvelope struct {
	SecuritiesAccount *securitiesAccount `json:"securitiesAccount"`
}

// securitiesAccount is a brokerage account; IRAs are CASH accounts too.
type securitiesAccount struct {
	Type            string            `json:"type"`
	AccountNumber   flexString        `json:"accountNumber"`
	Positions       []json.RawMessage `json:"positions"`
	InitialBalances balances          `json:"initialBalances"`
	CurrentBalances balances          `json:"currentBalances"`
}

// balances holds the fields the mapping uses, of cash and margin accounts.
type balances struct {
	LiquidationValue           decimal.NullDecimal `json:"liquidationValue"`
	AccountValue               decimal.NullDecimal `json:"accountValue"`
	AvailableFunds             decimal.NullDecimal `json:"availableFunds"`
	CashAvailableForWithdrawal decimal.NullDecimal `json:"cashAvailableForWithdrawal"`
	CashBalance                decimal.NullDecimal `json:"cashBalance"`
}

// position is one entry of securitiesAccount.positions.
type position struct {
	LongQuantity      decimal.NullDecimal `json:"longQuantity"`
	ShortQuantity     decimal.NullDecimal `json:"shortQuantity"`
	AveragePrice      decimal.NullDecimal `json:"averagePrice"`
	AverageLongPrice  decimal.NullDecimal `json:"averageLongPrice"`
	AverageShortPrice decimal.NullDecimal `json:"averageShortPrice"`
	MarketValue       decimal.NullDecimal `json:"marketValue"`
	Instrument        instrument          `json:"instrument"`
}

// instrument may carry the key assetType twice; encoding/json keeps the
// last, which is as good as the first (both name the class).
type instrument struct {
	AssetType   string `json:"assetType"`
	Symbol      string `json:"symbol"`
	Description string `json:"description"`
	Type        string `json:"type"`
}

// transaction is one entry of GET /accounts/{hash}/transactions.
type transaction struct {
	ActivityID     json.Number         `json:"activityId"`
	Time           string              `json:"time"`
	Description    string              `json:"description"`
	Type           string              `json:"type"`
	Status         string              `json:"status"`
	TradeDate      string              `json:"tradeDate"`
	SettlementDate string              `json:"settlementDate"`
	NetAmount      decimal.NullDecimal `json:"netAmount"`
	TransferItems  []transferItem      `json:"transferItems"`
}

// transferItem is one leg of a transaction: the security of a trade, a
// fee (feeType set, positive amount, negative cost) or cash.
type transferItem struct {
	Instrument     instrument          `json:"instrument"`
	Amount         decimal.NullDecimal `json:"amount"`
	Cost           decimal.NullDecimal `json:"cost"`
	Price          decimal.NullDecimal `json:"price"`
	FeeType        string              `json:"feeType"`
	PositionEffect string              `json:"positionEffect"`
}

// flexString accepts a JSON string or number: accountNumber is a string in
// accounts and transactions but a number in orders.
type flexString string

// UnmarshalJSON takes a string as is and a number by its literal text.
func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("account number is neither string nor number")
	}
	*f = flexString(n.String())
	return nil
}

// newYork is the zone of Schwab's trade dates.
var newYork = mustLoadLocation("America/New_York")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err) // time/tzdata is embedded, so this cannot fail
	}
	return loc
}

// timestampLayouts are the forms Schwab's timestamps take:
// "2024-04-04T15:56:07+0000", "…07.000Z", "…07+00:00", with or without a
// fraction, and a bare date.
var timestampLayouts = []string{
	time.RFC3339Nano,                     // Z or +00:00, optional fraction
	"2006-01-02T15:04:05.999999999Z0700", // +0000 (or Z), optional fraction
	"2006-01-02T15:04:05.999999999Z07",   // +00
	"2006-01-02T15:04:05.999999999",      // no zone: UTC
	"2006-01-02",                         // a date
}

// parseTimestamp reads any of Schwab's timestamp forms.
func parseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable timestamp %q", s)
}

// newYorkDate is the New York calendar date of t, as midnight UTC: Schwab
// stamps a trade date as New York midnight in UTC (T04:00:00+0000 in
// summer, T05:00:00+0000 in winter).
func newYorkDate(t time.Time) time.Time {
	y, m, d := t.In(newYork).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// apiTimestamp is the form the transaction search takes its range in,
// e.g. 2024-03-28T21:10:42.000Z.
func apiTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// masker removes full account numbers from raw records.
type masker struct {
	numbers []string
}

// newMasker masks the given numbers (empty ones ignored).
func newMasker(numbers ...string) masker {
	m := masker{}
	for _, n := range numbers {
		if n != "" {
			m.numbers = append(m.numbers, n)
		}
	}
	return m
}

// mask is n's masked form: its last four digits.
func mask(n string) string {
	if len(n) <= 4 {
		return "****"
	}
	return "****" + n[len(n)-4:]
}

// raw re-encodes rec with every account number masked: the value of any
// accountNumber key (string or number), and any known number inside any
// string or equal to any number. Keys come out sorted and a duplicated key
// once; the record stays the provider's otherwise.
func (m masker) raw(rec json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = m.walk("", v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// text is s with every known account number masked.
func (m masker) text(s string) string {
	for _, n := range m.numbers {
		s = strings.ReplaceAll(s, n, mask(n))
	}
	return s
}

func (m masker) walk(key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = m.walk(k, x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = m.walk("", x)
		}
		return v
	case string:
		if key == "accountNumber" {
			return mask(v)
		}
		return m.text(v)
	case json.Number:
		if key == "accountNumber" {
			return mask(v.String())
		}
		for _, n := range m.numbers {
			if v.String() == n {
				return mask(n)
			}
		}
		return v
	}
	return v
}
