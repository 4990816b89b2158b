package schwab

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/commands"
)

// Limits of Schwab's transaction search.
const (
	// MaxTransactionsPerCall is the most records one search answers; a
	// window answering that many may have lost some and is split.
	MaxTransactionsPerCall = 3000
	// MaxTransactionWindow is the longest range one search covers: 365
	// days, which is within a year however Schwab counts one.
	MaxTransactionWindow = 365 * 24 * time.Hour
)

// transactionTypes are all the types the search knows; it requires the
// parameter and answers only the types named.
var transactionTypes = strings.Join([]string{
	"TRADE", "RECEIVE_AND_DELIVER", "DIVIDEND_OR_INTEREST", "ACH_RECEIPT", "ACH_DISBURSEMENT",
	"CASH_RECEIPT", "CASH_DISBURSEMENT", "ELECTRONIC_FUND", "WIRE_OUT", "WIRE_IN", "JOURNAL",
	"MEMORANDUM", "MARGIN_CALL", "MONEY_MARKET", "SMA_ADJUSTMENT",
}, ",")

// Transactions lists the account's transactions within [from, to): one
// search per window of at most MaxTransactionWindow, windows that come
// back full split in halves (on whole seconds) until none is, records
// deduplicated by activityId and INVALID ones skipped. The result is
// ordered by time, then id.
func (a *Adapter) Transactions(ctx context.Context, c commands.Credentials, accountID string, from, to time.Time) ([]commands.ProviderTransaction, error) {
	const op = "list transactions"
	acct, m, err := a.resolve(ctx, c, accountID, op)
	if err != nil {
		return nil, err
	}
	s := &search{a: a, c: c, acct: acct, m: m, seen: map[string]bool{}}
	for start := from; start.Before(to); {
		end := to
		if end.Sub(start) > MaxTransactionWindow {
			end = start.Add(MaxTransactionWindow)
		}
		if err := s.window(ctx, start, end); err != nil {
			return nil, err
		}
		start = end
	}
	slices.SortFunc(s.out, func(x, y dated) int {
		return cmp.Or(x.at.Compare(y.at), cmp.Compare(x.tx.ID, y.tx.ID))
	})
	out := make([]commands.ProviderTransaction, len(s.out))
	for i, d := range s.out {
		out[i] = d.tx
	}
	return out, nil
}

// search collects one account's transactions across windows.
type search struct {
	a    *Adapter
	c    commands.Credentials
	acct linkedAccount
	m    masker
	seen map[string]bool
	out  []dated
}

// dated is a mapped transaction with the instant it is ordered by.
type dated struct {
	tx commands.ProviderTransaction
	at time.Time
}

// window searches [start, end) and splits it when the answer is full.
func (s *search) window(ctx context.Context, start, end time.Time) error {
	const op = "list transactions"
	raws, correl, err := s.fetch(ctx, start, end)
	if err != nil {
		return err
	}
	if len(raws) >= MaxTransactionsPerCall {
		// Whole seconds: records are stamped to the second, so none sits
		// on a boundary whichever way Schwab treats endDate.
		mid := start.Add(end.Sub(start) / 2).Truncate(time.Second)
		if !mid.After(start) || !mid.Before(end) {
			return fmt.Errorf("schwab: %s: more than %d transactions between %s and %s%s: %w",
				op, MaxTransactionsPerCall, apiTimestamp(start), apiTimestamp(end), correl, commands.ErrProviderInvalidResponse)
		}
		if err := s.window(ctx, start, mid); err != nil {
			return err
		}
		return s.window(ctx, mid, end)
	}
	for _, raw := range raws {
		var tx transaction
		if err := json.Unmarshal(raw, &tx); err != nil {
			return invalid(op, "transaction", answer{correl: correl})
		}
		id := tx.ActivityID.String()
		if id == "" {
			return fmt.Errorf("schwab: %s: transaction without activityId%s: %w", op, correl, commands.ErrProviderInvalidResponse)
		}
		if s.seen[id] {
			continue
		}
		s.seen[id] = true
		if tx.Status == "INVALID" {
			continue
		}
		d, err := mapTransaction(tx, raw, s.acct.id, s.m)
		if err != nil {
			return fmt.Errorf("schwab: %s: transaction %s%s: %w", op, id, correl, err)
		}
		s.out = append(s.out, d)
	}
	return nil
}

// fetch is one search over [start, end): Schwab's range is taken as
// inclusive, so it ends a millisecond before end.
func (s *search) fetch(ctx context.Context, start, end time.Time) ([]json.RawMessage, string, error) {
	const op = "list transactions"
	ans, err := s.a.get(ctx, s.c, call{
		op: op, route: "/accounts/{hash}/transactions", path: "/accounts/" + url.PathEscape(s.acct.hash) + "/transactions",
		query: url.Values{
			"startDate": {apiTimestamp(start)},
			"endDate":   {apiTimestamp(end.Add(-time.Millisecond))},
			"types":     {transactionTypes},
		},
		account: true,
	})
	if err != nil {
		return nil, "", err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(ans.body, &raws); err != nil {
		return nil, "", invalid(op, "transactions", ans)
	}
	return raws, ans.correl, nil
}

// mapTransaction maps one record to the port's vocabulary.
func mapTransaction(tx transaction, raw json.RawMessage, accountID string, m masker) (dated, error) {
	at, err := transactionInstant(tx)
	if err != nil {
		return dated{}, err
	}
	clean, err := m.raw(raw)
	if err != nil {
		return dated{}, fmt.Errorf("re-encode record: %w", commands.ErrProviderInvalidResponse)
	}
	security, commission, fees, feeOnly := legs(tx.TransferItems)
	p := commands.ProviderTransaction{
		ID:          tx.ActivityID.String(),
		AccountID:   accountID,
		Type:        transactionType(tx, security, feeOnly),
		Subtype:     tx.Type,
		Pending:     tx.Status == "PENDING",
		Amount:      tx.NetAmount.Decimal,
		Currency:    currency,
		Description: m.text(strings.TrimSpace(tx.Description)),
		Date:        newYorkDate(at),
		Raw:         clean,
	}
	if tx.SettlementDate != "" {
		if t, err := parseTimestamp(tx.SettlementDate); err == nil {
			d := newYorkDate(t)
			p.SettlementDate = &d
		}
	}
	if p.Type == commands.TransactionTypeBuy || p.Type == commands.TransactionTypeSell {
		qty := security.Amount.Decimal
		p.Symbol = strings.TrimSpace(security.Instrument.Symbol)
		p.Quantity = &qty
		if security.Price.Valid {
			price := security.Price.Decimal
			p.UnitPrice = &price
		}
		p.Commission, p.Fees = &commission, &fees
	}
	ordered := at
	if t, err := parseTimestamp(tx.Time); err == nil {
		ordered = t
	}
	return dated{tx: p, at: ordered}, nil
}

// transactionInstant is the instant whose New York date is the
// transaction's date: the trade date, else the time.
func transactionInstant(tx transaction) (time.Time, error) {
	for _, s := range []string{tx.TradeDate, tx.Time} {
		if s == "" {
			continue
		}
		t, err := parseTimestamp(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: %w", err, commands.ErrProviderInvalidResponse)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("no tradeDate or time: %w", commands.ErrProviderInvalidResponse)
}

// legs reads a transaction's transfer items: the security leg (the first
// that is neither a fee nor currency), the commission (COMMISSION fee
// legs) and the other fees, both positive, and whether every leg is a fee.
func legs(items []transferItem) (security *transferItem, commission, fees decimal.Decimal, feeOnly bool) {
	feeOnly = len(items) > 0
	for i := range items {
		it := &items[i]
		if it.FeeType == "" {
			feeOnly = false
			if security == nil && it.Instrument.AssetType != "CURRENCY" {
				security = it
			}
			continue
		}
		// Fee legs carry a positive amount and a negative cost; either
		// may be missing or zero.
		v := it.Cost.Decimal.Abs()
		if v.IsZero() {
			v = it.Amount.Decimal.Abs()
		}
		if it.FeeType == "COMMISSION" {
			commission = commission.Add(v)
		} else {
			fees = fees.Add(v)
		}
	}
	return security, commission, fees, feeOnly
}

// interestWords tell interest from dividends among DIVIDEND_OR_INTEREST
// ("SCHWAB1 INT 03/27-04/25", "BANK INTEREST", "MARGIN INTEREST").
var interestWords = regexp.MustCompile(`(?i)\b(int|interest)\b`)

// transactionType maps Schwab's type to the port's vocabulary.
func transactionType(tx transaction, security *transferItem, feeOnly bool) string {
	if tx.Type == "TRADE" {
		switch {
		case security == nil:
			return commands.TransactionTypeOther
		case security.Amount.Decimal.IsPositive():
			return commands.TransactionTypeBuy
		case security.Amount.Decimal.IsNegative():
			return commands.TransactionTypeSell
		}
		return commands.TransactionTypeOther
	}
	if feeOnly {
		return commands.TransactionTypeFee
	}
	switch tx.Type {
	case "DIVIDEND_OR_INTEREST":
		if interestWords.MatchString(tx.Description) {
			return commands.TransactionTypeInterest
		}
		return commands.TransactionTypeDividend
	case "ELECTRONIC_FUND":
		// "ACH Credit Received" is how deposits arrive; an outgoing
		// electronic transfer has a negative amount.
		if tx.NetAmount.Decimal.IsNegative() {
			return commands.TransactionTypeWithdrawal
		}
		return commands.TransactionTypeDeposit
	case "ACH_RECEIPT", "CASH_RECEIPT", "WIRE_IN":
		return commands.TransactionTypeDeposit
	case "ACH_DISBURSEMENT", "CASH_DISBURSEMENT", "WIRE_OUT":
		return commands.TransactionTypeWithdrawal
	case "JOURNAL":
		return commands.TransactionTypeJournal
	case "RECEIVE_AND_DELIVER":
		return commands.TransactionTypeTransfer
	}
	return commands.TransactionTypeOther
}
