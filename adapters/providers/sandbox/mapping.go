package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/commands"
)

// errDialect is what a record that breaks the dialect wraps.
var errDialect = commands.ErrProviderInvalidResponse

// accountTypes maps the dialect's products to Dashtam's account types;
// anything else is AccountTypeOther, with the product kept as subtype.
var accountTypes = map[string]string{
	"checking":          commands.AccountTypeChecking,
	"business_checking": commands.AccountTypeChecking,
	"savings":           commands.AccountTypeSavings,
	"money_market":      commands.AccountTypeSavings,
	"brokerage":         commands.AccountTypeBrokerage,
	"roth_ira":          commands.AccountTypeRetirement,
	"traditional_ira":   commands.AccountTypeRetirement,
	"401k":              commands.AccountTypeRetirement,
	"credit_card":       commands.AccountTypeCredit,
}

// transactionTypes maps the dialect's kinds to Dashtam's transaction
// types; anything else is TransactionTypeOther, with the kind kept as subtype.
var transactionTypes = map[string]string{
	"ach_credit":      commands.TransactionTypeDeposit,
	"card_purchase":   commands.TransactionTypeWithdrawal,
	"bill_payment":    commands.TransactionTypeWithdrawal,
	"atm_withdrawal":  commands.TransactionTypeWithdrawal,
	"transfer_out":    commands.TransactionTypeTransfer,
	"transfer_in":     commands.TransactionTypeTransfer,
	"interest_credit": commands.TransactionTypeInterest,
	"service_fee":     commands.TransactionTypeFee,
	"trade_buy":       commands.TransactionTypeBuy,
	"trade_sell":      commands.TransactionTypeSell,
	"dividend":        commands.TransactionTypeDividend,
}

func mapAccount(raw json.RawMessage) (commands.ProviderAccount, error) {
	var w wireAccount
	if err := json.Unmarshal(raw, &w); err != nil {
		return commands.ProviderAccount{}, fmt.Errorf("account is not the sandbox dialect: %w", errDialect)
	}
	balance, err := amount(w.Balances.Current)
	if w.ID == "" || err != nil || !validCurrency(w.Currency) {
		return commands.ProviderAccount{}, fmt.Errorf("account without id, balance or currency: %w", errDialect)
	}
	a := commands.ProviderAccount{
		ID: w.ID, Name: w.Name, Type: commands.AccountTypeOther, Subtype: w.Product,
		MaskedNumber: lastFour(w.NumberLast4), Currency: w.Currency, Balance: balance, Raw: slices.Clone(raw),
	}
	if t, ok := accountTypes[w.Product]; ok {
		a.Type = t
	}
	if w.Balances.Available != nil {
		avail, err := amount(*w.Balances.Available)
		if err != nil {
			return commands.ProviderAccount{}, fmt.Errorf("account %s: available balance: %w", w.ID, errDialect)
		}
		a.Available = &avail
	}
	return a, nil
}

func mapTransaction(raw json.RawMessage) (commands.ProviderTransaction, error) {
	var w wireTransaction
	// go-json: a year of a large persona is a hundred thousand of these,
	// and encoding/json's decoding was most of a sync's provider time.
	if err := gojson.Unmarshal(raw, &w); err != nil {
		return commands.ProviderTransaction{}, fmt.Errorf("transaction is not the sandbox dialect: %w", errDialect)
	}
	value, err := amount(w.Amount.Value)
	date, derr := time.Parse(time.DateOnly, w.BookingDate)
	if w.ID == "" || err != nil || derr != nil || !validCurrency(w.Amount.Currency) || (w.Status != "pending" && w.Status != "posted") {
		return commands.ProviderTransaction{}, fmt.Errorf("transaction without id, amount, date or status: %w", errDialect)
	}
	t := commands.ProviderTransaction{
		ID: w.ID, AccountID: w.AccountID, Type: commands.TransactionTypeOther, Subtype: w.Kind,
		Pending: w.Status == "pending", Amount: value, Currency: w.Amount.Currency, Description: w.Description,
		Date: date, Raw: slices.Clone(raw),
	}
	if typ, ok := transactionTypes[w.Kind]; ok {
		t.Type = typ
	}
	if w.ValueDate != "" {
		vd, err := time.Parse(time.DateOnly, w.ValueDate)
		if err != nil {
			return commands.ProviderTransaction{}, fmt.Errorf("transaction %s: value date: %w", w.ID, errDialect)
		}
		t.SettlementDate = &vd
	}
	if tr := w.Trade; tr != nil {
		fields := []struct {
			s   string
			dst **decimal.Decimal
		}{{tr.Quantity, &t.Quantity}, {tr.Price, &t.UnitPrice}, {tr.Commission, &t.Commission}, {tr.Fees, &t.Fees}}
		for _, f := range fields {
			if f.s == "" {
				continue
			}
			d, err := amount(f.s)
			if err != nil {
				return commands.ProviderTransaction{}, fmt.Errorf("transaction %s: trade detail: %w", w.ID, errDialect)
			}
			*f.dst = &d
		}
		t.Symbol = tr.Symbol
	}
	return t, nil
}

func mapPosition(raw json.RawMessage) (commands.ProviderHolding, error) {
	var w wirePosition
	if err := json.Unmarshal(raw, &w); err != nil {
		return commands.ProviderHolding{}, fmt.Errorf("position is not the sandbox dialect: %w", errDialect)
	}
	qty, err1 := amount(w.Quantity)
	value, err2 := amount(w.MarketValue.Value)
	if w.Symbol == "" || err1 != nil || err2 != nil || !validCurrency(w.MarketValue.Currency) {
		return commands.ProviderHolding{}, fmt.Errorf("position without symbol, quantity or value: %w", errDialect)
	}
	h := commands.ProviderHolding{
		Symbol: w.Symbol, Description: w.Name, AssetType: strings.ToUpper(w.AssetClass), Quantity: qty,
		MarketValue: value, Currency: w.MarketValue.Currency, Raw: slices.Clone(raw),
	}
	if w.CostBasisPerUnit != nil {
		avg, err := amount(*w.CostBasisPerUnit)
		if err != nil {
			return commands.ProviderHolding{}, fmt.Errorf("position %s: cost basis: %w", w.Symbol, errDialect)
		}
		h.AveragePrice = &avg
	}
	return h, nil
}

// amount parses a dialect decimal string (never a JSON number, never a float).
func amount(s string) (decimal.Decimal, error) {
	if s == "" || len(s) > 40 {
		return decimal.Decimal{}, errors.New("empty or overlong decimal")
	}
	return decimal.NewFromString(s)
}

// validCurrency accepts an ISO 4217 shape: three uppercase letters.
func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// lastFour keeps at most the last four characters of a masked number.
func lastFour(s string) string {
	if len(s) > 4 {
		return s[len(s)-4:]
	}
	return s
}
