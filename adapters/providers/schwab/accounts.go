package schwab

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/commands"
)

// currency is the only one Schwab's Trader API reports in.
const currency = "USD"

// accountIDPrefix marks ids this adapter derived.
const accountIDPrefix = "schwab-"

// accountID derives ProviderAccount.ID from a full account number: keyed,
// so that the stored id cannot be reversed by trying every number.
func (a *Adapter) accountID(number string) string {
	mac := hmac.New(sha256.New, a.idKey)
	mac.Write([]byte("schwab account number\x00"))
	mac.Write([]byte(number))
	return accountIDPrefix + hex.EncodeToString(mac.Sum(nil)[:16])
}

// linkedAccount is an account the credentials reach, with Schwab's hash
// for URLs and the id the port knows it by.
type linkedAccount struct {
	id     string
	number string
	hash   string
}

// linkedAccounts lists the accounts the credentials reach (GET
// /accounts/accountNumbers).
func (a *Adapter) linkedAccounts(ctx context.Context, c commands.Credentials, op string) ([]linkedAccount, error) {
	ans, err := a.get(ctx, c, call{op: op, route: "/accounts/accountNumbers", path: "/accounts/accountNumbers"})
	if err != nil {
		return nil, err
	}
	var list []accountNumber
	if err := json.Unmarshal(ans.body, &list); err != nil {
		return nil, invalid(op, "account numbers", ans)
	}
	out := make([]linkedAccount, 0, len(list))
	for _, n := range list {
		if n.AccountNumber == "" || n.HashValue == "" {
			return nil, fmt.Errorf("schwab: %s: account number entry without number or hash%s: %w", op, ans.correl, commands.ErrProviderInvalidResponse)
		}
		out = append(out, linkedAccount{id: a.accountID(string(n.AccountNumber)), number: string(n.AccountNumber), hash: n.HashValue})
	}
	return out, nil
}

// resolve finds the account the port calls accountID, and a masker of
// every number the credentials reach (a journal may name the other one).
func (a *Adapter) resolve(ctx context.Context, c commands.Credentials, accountID, op string) (linkedAccount, masker, error) {
	linked, err := a.linkedAccounts(ctx, c, op)
	if err != nil {
		return linkedAccount{}, masker{}, err
	}
	numbers := make([]string, len(linked))
	for i, l := range linked {
		numbers[i] = l.number
	}
	for _, l := range linked {
		if l.id == accountID {
			return l, newMasker(numbers...), nil
		}
	}
	return linkedAccount{}, masker{}, fmt.Errorf("schwab: %s: account not among the connection's: %w", op, commands.ErrProviderNotFound)
}

// Accounts lists the connection's accounts (GET /accounts, without
// positions: Holdings asks for them per account, and an account's Raw
// stays an account record).
func (a *Adapter) Accounts(ctx context.Context, c commands.Credentials) ([]commands.ProviderAccount, error) {
	const op = "list accounts"
	ans, err := a.get(ctx, c, call{op: op, route: "/accounts", path: "/accounts"})
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(ans.body, &raws); err != nil {
		return nil, invalid(op, "accounts", ans)
	}
	envs := make([]accountEnvelope, len(raws))
	numbers := make([]string, 0, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &envs[i]); err != nil || envs[i].SecuritiesAccount == nil {
			return nil, invalid(op, "account", answer{correl: ans.correl})
		}
		numbers = append(numbers, string(envs[i].SecuritiesAccount.AccountNumber))
	}
	m := newMasker(numbers...)
	out := make([]commands.ProviderAccount, 0, len(raws))
	for i, env := range envs {
		acct, err := a.mapAccount(env.SecuritiesAccount, raws[i], m)
		if err != nil {
			return nil, fmt.Errorf("schwab: %s%s: %w", op, ans.correl, err)
		}
		out = append(out, acct)
	}
	return out, nil
}

// mapAccount maps one securitiesAccount: balance is the liquidation value,
// available the funds available (margin), else the cash available for
// withdrawal, else the cash balance.
func (a *Adapter) mapAccount(sa *securitiesAccount, raw json.RawMessage, m masker) (commands.ProviderAccount, error) {
	number := string(sa.AccountNumber)
	if number == "" {
		return commands.ProviderAccount{}, fmt.Errorf("account without number: %w", commands.ErrProviderInvalidResponse)
	}
	balance, ok := firstValid(sa.CurrentBalances.LiquidationValue, sa.InitialBalances.LiquidationValue, sa.InitialBalances.AccountValue)
	if !ok {
		return commands.ProviderAccount{}, fmt.Errorf("account %s without liquidation value: %w", mask(number), commands.ErrProviderInvalidResponse)
	}
	var available *decimal.Decimal
	if v, ok := firstValid(sa.CurrentBalances.AvailableFunds, sa.CurrentBalances.CashAvailableForWithdrawal, sa.CurrentBalances.CashBalance); ok {
		available = &v
	}
	clean, err := m.raw(raw)
	if err != nil {
		return commands.ProviderAccount{}, fmt.Errorf("account %s: %w", mask(number), commands.ErrProviderInvalidResponse)
	}
	masked := ""
	if len(number) > 4 {
		masked = number[len(number)-4:]
	}
	return commands.ProviderAccount{
		ID:           a.accountID(number),
		Name:         accountName(sa.Type, masked),
		Type:         commands.AccountTypeBrokerage,
		Subtype:      sa.Type,
		MaskedNumber: masked,
		Currency:     currency,
		Balance:      balance,
		Available:    available,
		Raw:          clean,
	}, nil
}

// accountName is a display name; Schwab's API has no nickname. Every
// Schwab account is brokerage to the port: IRAs come back as CASH.
func accountName(typ, last4 string) string {
	kind := "Brokerage"
	switch typ {
	case "CASH":
		kind = "Cash"
	case "MARGIN":
		kind = "Margin"
	}
	name := "Schwab " + kind
	if last4 != "" {
		name += " …" + last4
	}
	return name
}

// Holdings lists one account's positions (GET /accounts/{hash}?fields=positions);
// quantity is long − short, and a position with none is left out.
func (a *Adapter) Holdings(ctx context.Context, c commands.Credentials, accountID string) ([]commands.ProviderHolding, error) {
	const op = "list holdings"
	acct, m, err := a.resolve(ctx, c, accountID, op)
	if err != nil {
		return nil, err
	}
	ans, err := a.get(ctx, c, call{
		op: op, route: "/accounts/{hash}", path: "/accounts/" + url.PathEscape(acct.hash),
		query: url.Values{"fields": {"positions"}}, account: true,
	})
	if err != nil {
		return nil, err
	}
	var env accountEnvelope
	if err := json.Unmarshal(ans.body, &env); err != nil || env.SecuritiesAccount == nil {
		return nil, invalid(op, "account", ans)
	}
	out := make([]commands.ProviderHolding, 0, len(env.SecuritiesAccount.Positions))
	for _, raw := range env.SecuritiesAccount.Positions {
		var p position
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, invalid(op, "position", answer{correl: ans.correl})
		}
		h, keep, err := mapPosition(p, raw, m)
		if err != nil {
			return nil, fmt.Errorf("schwab: %s%s: %w", op, ans.correl, err)
		}
		if keep {
			out = append(out, h)
		}
	}
	return out, nil
}

// mapPosition maps a position; keep is false for a zero quantity.
func mapPosition(p position, raw json.RawMessage, m masker) (commands.ProviderHolding, bool, error) {
	qty := p.LongQuantity.Decimal.Sub(p.ShortQuantity.Decimal)
	if qty.IsZero() {
		return commands.ProviderHolding{}, false, nil
	}
	if p.Instrument.Symbol == "" {
		return commands.ProviderHolding{}, false, fmt.Errorf("position without symbol: %w", commands.ErrProviderInvalidResponse)
	}
	side := p.AverageLongPrice
	if qty.IsNegative() {
		side = p.AverageShortPrice
	}
	var avg *decimal.Decimal
	if v, ok := firstValid(p.AveragePrice, side); ok {
		avg = &v
	}
	clean, err := m.raw(raw)
	if err != nil {
		return commands.ProviderHolding{}, false, fmt.Errorf("position %s: %w", p.Instrument.Symbol, commands.ErrProviderInvalidResponse)
	}
	return commands.ProviderHolding{
		Symbol:       strings.TrimSpace(p.Instrument.Symbol),
		Description:  p.Instrument.Description,
		AssetType:    p.Instrument.AssetType,
		Quantity:     qty,
		AveragePrice: avg,
		MarketValue:  p.MarketValue.Decimal,
		Currency:     currency,
		Raw:          clean,
	}, true, nil
}

// firstValid returns the first present value.
func firstValid(vs ...decimal.NullDecimal) (decimal.Decimal, bool) {
	for _, v := range vs {
		if v.Valid {
			return v.Decimal, true
		}
	}
	return decimal.Decimal{}, false
}

// invalid reports an answer the adapter cannot decode by its size and
// correlation id, never its content.
func invalid(op, what string, ans answer) error {
	hint := ""
	if ans.body != nil {
		hint = fmt.Sprintf(" (%d bytes)", len(ans.body))
	}
	return fmt.Errorf("schwab: %s: unreadable %s%s%s: %w", op, what, hint, ans.correl, commands.ErrProviderInvalidResponse)
}
