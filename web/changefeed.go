package web

import (
	"context"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/web/api"
)

// ChangeFeed answers the transactions change feed; fanout.Feed implements it.
type ChangeFeed interface {
	// Sync returns what changed in user's transactions after cursor ("" for
	// the start) in at most count transactions. Errors:
	// fanout.ErrInvalidCursor for a cursor not issued to user.
	Sync(ctx context.Context, user uuid.UUID, cursor string, count int) (fanout.FeedPage, error)
}

// errFeedOff answers the change feed of a server built without one.
var errFeedOff = &Error{Code: CodeUnavailable, Detail: "the transactions change feed is not configured on this server"}

// SyncTransactions answers the change feed after the caller's cursor.
func (h *strictAPI) SyncTransactions(ctx context.Context, req api.SyncTransactionsRequestObject) (api.SyncTransactionsResponseObject, error) {
	if h.s.feed == nil {
		return nil, errFeedOff
	}
	p, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	cursor, count := "", 0
	if req.Params.Cursor != nil {
		cursor = *req.Params.Cursor
	}
	if req.Params.Count != nil {
		count = *req.Params.Count
	}
	page, err := h.s.feed.Sync(ctx, p.UserID, cursor, count)
	if err != nil {
		return nil, err
	}
	out := api.TransactionsSync{
		Added: feedTransactionsJSON(page.Added), Modified: feedTransactionsJSON(page.Modified),
		Removed: make([]openapi_types.UUID, len(page.Removed)), NextCursor: page.NextCursor, HasMore: page.HasMore,
	}
	copy(out.Removed, page.Removed)
	return api.SyncTransactions200JSONResponse(out), nil
}

// feedTransactionsJSON renders the feed's transactions.
func feedTransactionsJSON(ts []fanout.FeedTransaction) []api.FeedTransaction {
	out := make([]api.FeedTransaction, len(ts))
	for i, t := range ts {
		d := t.Data
		out[i] = api.FeedTransaction{
			Id: t.ID, AccountId: t.AccountID, ConnectionId: t.ConnectionID, ProviderTransactionId: d.ProviderTransactionID,
			TransactionType: d.Type, Subtype: optString(d.Subtype), Status: api.FeedTransactionStatus(t.Status),
			Amount: d.Amount.String(), Currency: d.Currency, Description: optString(d.Description),
			TransactionDate: feedDate(d.Date), SettlementDate: optDate(d.SettlementDate), Symbol: optString(d.Symbol),
			Quantity: optDecimal(d.Quantity), UnitPrice: optDecimal(d.UnitPrice), Commission: optDecimal(d.Commission),
			Fees: optDecimal(d.Fees),
		}
	}
	return out
}

// optString is nil for the empty string.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// optDecimal renders a present amount as its decimal string.
func optDecimal(d *decimal.Decimal) *string {
	if d == nil {
		return nil
	}
	s := d.String()
	return &s
}

// feedDate parses a YYYY-MM-DD date as the log holds it.
func feedDate(s string) openapi_types.Date {
	t, _ := time.Parse(time.DateOnly, s)
	return openapi_types.Date{Time: t}
}

// optDate is nil for an absent date.
func optDate(s string) *openapi_types.Date {
	if s == "" {
		return nil
	}
	d := feedDate(s)
	return &d
}
