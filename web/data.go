package web

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web/api"
)

// FinancialData reads the financial read model behind the data routes;
// projections.FinancialReader implements it. Every method is scoped to one
// user and answers projections.ErrNotFound for another user's resource
// exactly as for a missing one.
type FinancialData interface {
	ListAccounts(ctx context.Context, userID uuid.UUID, f projections.AccountFilter, after *projections.AccountKey, limit int) ([]projections.AccountView, []projections.CurrencyTotal, error)
	Account(ctx context.Context, userID, id uuid.UUID) (projections.AccountView, error)
	ListConnectionAccounts(ctx context.Context, userID, connectionID uuid.UUID, after *projections.AccountKey, limit int) ([]projections.AccountView, []projections.CurrencyTotal, error)
	ListTransactions(ctx context.Context, userID uuid.UUID, f projections.TransactionFilter, after *projections.TransactionKey, limit int) ([]projections.TransactionView, error)
	Transaction(ctx context.Context, userID, id uuid.UUID) (projections.TransactionView, error)
	ListHoldings(ctx context.Context, userID uuid.UUID, accountID *uuid.UUID, after *projections.HoldingKey, limit int) ([]projections.HoldingView, error)
	ListBalanceSnapshots(ctx context.Context, userID uuid.UUID, f projections.SnapshotFilter, after *projections.SnapshotKey, limit int) ([]projections.BalanceSnapshot, error)
	BalanceHistory(ctx context.Context, userID, accountID uuid.UUID, start, end string) ([]projections.DailyBalance, error)
}

// errDataOff answers the data routes of a server built without a reader
// (a test or an embedder that needs none).
var errDataOff = &Error{Code: CodeUnavailable, Detail: "financial data is not configured on this server"}

// dataCaller returns the reader and the verified caller.
func (h *strictAPI) dataCaller(ctx context.Context) (FinancialData, commands.Principal, error) {
	if h.s.data == nil {
		return nil, commands.Principal{}, errDataOff
	}
	p, err := callerOf(ctx)
	return h.s.data, p, err
}

// keysetPage is the outcome of a keyset listing asked for limit+1 rows: the
// page's rows and, when there were more, the cursor after its last.
func keysetPage[V any, K any](h *strictAPI, s *cursorScope, caller uuid.UUID, rows []V, limit int, key func(V) K) ([]V, *string, error) {
	if len(rows) <= limit {
		return rows, nil, nil
	}
	rows = rows[:limit]
	next, err := h.s.cursors.seal(s, caller.String(), key(rows[limit-1]))
	if err != nil {
		return nil, nil, err
	}
	return rows, &next, nil
}

// Keyset positions as cursors carry them (short JSON names).
type (
	accountCursor struct {
		OpenedAt time.Time `json:"o"`
		ID       uuid.UUID `json:"i"`
	}
	transactionCursor struct {
		Date string    `json:"d"`
		ID   uuid.UUID `json:"i"`
	}
	holdingCursor struct {
		AccountID uuid.UUID `json:"a"`
		Ordinal   int       `json:"n"`
	}
	snapshotCursor struct {
		RecordedAt time.Time `json:"r"`
		AccountID  uuid.UUID `json:"a"`
		Version    int64     `json:"v"`
	}
)

// ListAccounts pages through the caller's accounts with their totals.
func (h *strictAPI) ListAccounts(ctx context.Context, req api.ListAccountsRequestObject) (api.ListAccountsResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	prm := req.Params
	var q dataQuery
	f := projections.AccountFilter{ConnectionID: prm.ConnectionId, Type: q.oneOf("account_type", prm.AccountType, accountTypes), Active: prm.IsActive}
	s := scope("accounts").with("account_type", f.Type)
	if f.ConnectionID != nil {
		s.with("connection_id", f.ConnectionID.String())
	}
	if f.Active != nil {
		s.with("is_active", strconv.FormatBool(*f.Active))
	}
	list, err := h.listAccounts(ctx, p.UserID, &q, s, prm.Cursor, prm.Limit, func(after *projections.AccountKey, limit int) ([]projections.AccountView, []projections.CurrencyTotal, error) {
		return data.ListAccounts(ctx, p.UserID, f, after, limit)
	})
	if err != nil {
		return nil, err
	}
	return api.ListAccounts200JSONResponse(list), nil
}

// ListConnectionAccounts pages through the accounts of one of the caller's connections.
func (h *strictAPI) ListConnectionAccounts(ctx context.Context, req api.ListConnectionAccountsRequestObject) (api.ListConnectionAccountsResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	var q dataQuery
	s := scope("connection_accounts").with("connection_id", req.Id.String())
	list, err := h.listAccounts(ctx, p.UserID, &q, s, req.Params.Cursor, req.Params.Limit, func(after *projections.AccountKey, limit int) ([]projections.AccountView, []projections.CurrencyTotal, error) {
		return data.ListConnectionAccounts(ctx, p.UserID, req.Id, after, limit)
	})
	if err != nil {
		return nil, err
	}
	return api.ListConnectionAccounts200JSONResponse(list), nil
}

// listAccounts runs one account listing: cursor, page of limit+1, totals.
func (h *strictAPI) listAccounts(ctx context.Context, caller uuid.UUID, q *dataQuery, s *cursorScope, cursor *string, limitParam *int,
	read func(after *projections.AccountKey, limit int) ([]projections.AccountView, []projections.CurrencyTotal, error)) (api.AccountList, error) {
	limit, err := pageLimit(limitParam)
	if err != nil {
		return api.AccountList{}, err
	}
	var c accountCursor
	var after *projections.AccountKey
	if q.cursor(h.s.cursors, s, caller.String(), cursor, &c) {
		after = &projections.AccountKey{OpenedAt: c.OpenedAt, ID: c.ID}
	}
	if err := q.err(); err != nil {
		return api.AccountList{}, err
	}
	rows, totals, err := read(after, limit+1)
	if err != nil {
		return api.AccountList{}, err
	}
	rows, next, err := keysetPage(h, s, caller, rows, limit, func(v projections.AccountView) accountCursor {
		return accountCursor{OpenedAt: v.OpenedAt, ID: v.ID}
	})
	if err != nil {
		return api.AccountList{}, err
	}
	list := api.AccountList{Items: make([]api.Account, len(rows)), NextCursor: next, Totals: make([]api.CurrencyTotal, len(totals))}
	for i, v := range rows {
		list.Items[i] = accountJSON(v)
	}
	for i, t := range totals {
		list.Totals[i] = api.CurrencyTotal{Currency: t.Currency, Balance: t.Balance, AvailableBalance: t.Available, Accounts: t.Accounts}
	}
	return list, nil
}

// GetAccount answers one of the caller's accounts.
func (h *strictAPI) GetAccount(ctx context.Context, req api.GetAccountRequestObject) (api.GetAccountResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	v, err := data.Account(ctx, p.UserID, req.Id)
	if err != nil {
		return nil, err
	}
	return api.GetAccount200JSONResponse(accountJSON(v)), nil
}

// accountJSON renders an account; the number shows at most its last four.
func accountJSON(v projections.AccountView) api.Account {
	a := api.Account{
		Id: v.ID, ConnectionId: v.ConnectionID, Name: v.Name, AccountType: api.AccountAccountType(v.Type),
		Subtype: nonEmpty(v.Subtype), Balance: v.Balance, AvailableBalance: v.Available, BalanceAsOf: utc(v.BalanceAt),
		Currency: v.Currency, IsActive: v.IsActive, LastSyncedAt: utc(v.LastSyncedAt), OpenedAt: v.OpenedAt.UTC(),
	}
	if v.Last4 != "" {
		masked := "****" + v.Last4
		a.AccountNumberMasked = &masked
	}
	return a
}

// transactionFilter validates the filters shared by both transaction listings.
func transactionFilter(q *dataQuery, start, end, typ, status *string) projections.TransactionFilter {
	var f projections.TransactionFilter
	f.Start, f.End = q.dateRange(start, end)
	f.Type = q.oneOf("transaction_type", typ, transactionTypes)
	f.Status = q.oneOf("status", status, transactionStatuses)
	return f
}

// transactionScope binds a transaction cursor to the endpoint and filters.
func transactionScope(endpoint string, f projections.TransactionFilter) *cursorScope {
	s := scope(endpoint).with("start_date", f.Start).with("end_date", f.End).with("transaction_type", f.Type).with("status", f.Status)
	if f.AccountID != nil {
		s.with("account_id", f.AccountID.String())
	}
	return s
}

// ListTransactions pages through the transactions of all the caller's accounts.
func (h *strictAPI) ListTransactions(ctx context.Context, req api.ListTransactionsRequestObject) (api.ListTransactionsResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	prm := req.Params
	var q dataQuery
	f := transactionFilter(&q, prm.StartDate, prm.EndDate, prm.TransactionType, prm.Status)
	page, err := h.listTransactions(ctx, data, p.UserID, &q, transactionScope("transactions", f), f, prm.Cursor, prm.Limit)
	if err != nil {
		return nil, err
	}
	return page, nil
}

// ListAccountTransactions pages through one account's transactions, or
// streams them all as CSV when the client asks for text/csv.
func (h *strictAPI) ListAccountTransactions(ctx context.Context, req api.ListAccountTransactionsRequestObject) (api.ListAccountTransactionsResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	prm := req.Params
	var q dataQuery
	f := transactionFilter(&q, prm.StartDate, prm.EndDate, prm.TransactionType, prm.Status)
	f.AccountID = &req.Id
	if wantsCSV(acceptOf(ctx)) {
		if err := q.err(); err != nil {
			return nil, err
		}
		return h.transactionsCSV(ctx, data, p.UserID, f)
	}
	page, err := h.listTransactions(ctx, data, p.UserID, &q, transactionScope("account_transactions", f), f, prm.Cursor, prm.Limit)
	if err != nil {
		return nil, err
	}
	return page, nil
}

// listTransactions runs one transaction listing.
func (h *strictAPI) listTransactions(ctx context.Context, data FinancialData, caller uuid.UUID, q *dataQuery, s *cursorScope,
	f projections.TransactionFilter, cursor *string, limitParam *int) (transactionPage, error) {
	limit, err := pageLimit(limitParam)
	if err != nil {
		return transactionPage{}, err
	}
	var c transactionCursor
	var after *projections.TransactionKey
	if q.cursor(h.s.cursors, s, caller.String(), cursor, &c) {
		after = &projections.TransactionKey{Date: c.Date, ID: c.ID}
	}
	if err := q.err(); err != nil {
		return transactionPage{}, err
	}
	rows, err := data.ListTransactions(ctx, caller, f, after, limit+1)
	if err != nil {
		return transactionPage{}, err
	}
	rows, next, err := keysetPage(h, s, caller, rows, limit, func(v projections.TransactionView) transactionCursor {
		return transactionCursor{Date: v.Date, ID: v.ID}
	})
	if err != nil {
		return transactionPage{}, err
	}
	return transactionPage{items: rows, next: next}, nil
}

// GetTransaction answers one of the caller's transactions.
func (h *strictAPI) GetTransaction(ctx context.Context, req api.GetTransactionRequestObject) (api.GetTransactionResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	v, err := data.Transaction(ctx, p.UserID, req.Id)
	if err != nil {
		return nil, err
	}
	return api.GetTransaction200JSONResponse(transactionJSON(v)), nil
}

// transactionJSON renders a transaction; trade fields only when present.
func transactionJSON(v projections.TransactionView) api.Transaction {
	t := api.Transaction{
		Id: v.ID, AccountId: v.AccountID, ProviderTransactionId: v.ProviderTransactionID,
		TransactionType: api.TransactionTransactionType(v.Type), Subtype: nonEmpty(v.Subtype),
		Status: api.TransactionStatus(v.Status), Amount: v.Amount, Currency: v.Currency, Description: v.Description,
		TransactionDate: dateOf(v.Date), Symbol: v.Symbol, Quantity: v.Quantity, UnitPrice: v.UnitPrice,
		Commission: v.Commission, Fees: v.Fees,
	}
	if v.SettlementDate != nil {
		d := dateOf(*v.SettlementDate)
		t.SettlementDate = &d
	}
	return t
}

// ListHoldings pages through the positions of all the caller's accounts.
func (h *strictAPI) ListHoldings(ctx context.Context, req api.ListHoldingsRequestObject) (api.ListHoldingsResponseObject, error) {
	list, err := h.listHoldings(ctx, nil, req.Params.Cursor, req.Params.Limit)
	if err != nil {
		return nil, err
	}
	return api.ListHoldings200JSONResponse(list), nil
}

// ListAccountHoldings pages through the positions of one of the caller's accounts.
func (h *strictAPI) ListAccountHoldings(ctx context.Context, req api.ListAccountHoldingsRequestObject) (api.ListAccountHoldingsResponseObject, error) {
	list, err := h.listHoldings(ctx, &req.Id, req.Params.Cursor, req.Params.Limit)
	if err != nil {
		return nil, err
	}
	return api.ListAccountHoldings200JSONResponse(list), nil
}

func (h *strictAPI) listHoldings(ctx context.Context, accountID *uuid.UUID, cursor *string, limitParam *int) (api.HoldingList, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return api.HoldingList{}, err
	}
	limit, err := pageLimit(limitParam)
	if err != nil {
		return api.HoldingList{}, err
	}
	s := scope("holdings")
	if accountID != nil {
		s = scope("account_holdings").with("account_id", accountID.String())
	}
	var q dataQuery
	var c holdingCursor
	var after *projections.HoldingKey
	if q.cursor(h.s.cursors, s, p.UserID.String(), cursor, &c) {
		after = &projections.HoldingKey{AccountID: c.AccountID, Ordinal: c.Ordinal}
	}
	if err := q.err(); err != nil {
		return api.HoldingList{}, err
	}
	rows, err := data.ListHoldings(ctx, p.UserID, accountID, after, limit+1)
	if err != nil {
		return api.HoldingList{}, err
	}
	rows, next, err := keysetPage(h, s, p.UserID, rows, limit, func(v projections.HoldingView) holdingCursor {
		return holdingCursor{AccountID: v.AccountID, Ordinal: v.Ordinal}
	})
	if err != nil {
		return api.HoldingList{}, err
	}
	list := api.HoldingList{Items: make([]api.Holding, len(rows)), NextCursor: next}
	for i, v := range rows {
		list.Items[i] = api.Holding{AccountId: v.AccountID, Symbol: v.Symbol, Description: v.Description, AssetType: v.AssetType,
			Quantity: v.Quantity, AveragePrice: v.AveragePrice, MarketValue: v.MarketValue, Currency: v.Currency, AsOf: v.AsOf.UTC()}
	}
	return list, nil
}

// ListBalanceSnapshots pages through the balances recorded for the caller's accounts.
func (h *strictAPI) ListBalanceSnapshots(ctx context.Context, req api.ListBalanceSnapshotsRequestObject) (api.ListBalanceSnapshotsResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	prm := req.Params
	limit, err := pageLimit(prm.Limit)
	if err != nil {
		return nil, err
	}
	var q dataQuery
	f := projections.SnapshotFilter{AccountID: prm.AccountId}
	f.Start, f.End = q.dateRange(prm.StartDate, prm.EndDate)
	s := scope("balance_snapshots").with("start_date", f.Start).with("end_date", f.End)
	if f.AccountID != nil {
		s.with("account_id", f.AccountID.String())
	}
	var c snapshotCursor
	var after *projections.SnapshotKey
	if q.cursor(h.s.cursors, s, p.UserID.String(), prm.Cursor, &c) {
		after = &projections.SnapshotKey{RecordedAt: c.RecordedAt, AccountID: c.AccountID, Version: c.Version}
	}
	if err := q.err(); err != nil {
		return nil, err
	}
	rows, err := data.ListBalanceSnapshots(ctx, p.UserID, f, after, limit+1)
	if err != nil {
		return nil, err
	}
	rows, next, err := keysetPage(h, s, p.UserID, rows, limit, func(v projections.BalanceSnapshot) snapshotCursor {
		return snapshotCursor{RecordedAt: v.RecordedAt, AccountID: v.AccountID, Version: v.Version}
	})
	if err != nil {
		return nil, err
	}
	list := api.BalanceSnapshotList{Items: make([]api.BalanceSnapshot, len(rows)), NextCursor: next}
	for i, v := range rows {
		list.Items[i] = api.BalanceSnapshot{AccountId: v.AccountID, Balance: v.Balance, AvailableBalance: v.Available,
			Currency: v.Currency, RecordedAt: v.RecordedAt.UTC()}
	}
	return api.ListBalanceSnapshots200JSONResponse(list), nil
}

// GetAccountBalanceHistory answers an account's daily balances over a range.
func (h *strictAPI) GetAccountBalanceHistory(ctx context.Context, req api.GetAccountBalanceHistoryRequestObject) (api.GetAccountBalanceHistoryResponseObject, error) {
	data, p, err := h.dataCaller(ctx)
	if err != nil {
		return nil, err
	}
	var q dataQuery
	start, end := q.dateRange(req.Params.StartDate, req.Params.EndDate)
	if err := q.err(); err != nil {
		return nil, err
	}
	today := h.s.now().UTC().Format(time.DateOnly)
	if end == "" || end > today {
		end = today // the future has no balance yet
	}
	endDay := dateOf(end).Time
	if start == "" {
		start = endDay.AddDate(0, 0, 1-defaultHistoryDays).Format(time.DateOnly)
	}
	if days := int(endDay.Sub(dateOf(start).Time).Hours()/24) + 1; days > maxHistoryDays {
		return nil, &Error{Code: CodeUnprocessable, Detail: "the request has query values the API does not accept",
			Fields: []FieldError{{Field: "start_date", Message: "the range must span at most " + strconv.Itoa(maxHistoryDays) + " days"}}}
	}
	history := api.BalanceHistory{AccountId: req.Id, StartDate: dateOf(start), EndDate: dateOf(end), Points: []api.BalancePoint{}}
	if start > end {
		// A range wholly in the future: nothing to show, but the account
		// must still be the caller's.
		if _, err := data.Account(ctx, p.UserID, req.Id); err != nil {
			return nil, err
		}
		return api.GetAccountBalanceHistory200JSONResponse(history), nil
	}
	points, err := data.BalanceHistory(ctx, p.UserID, req.Id, start, end)
	if err != nil {
		return nil, err
	}
	for _, pt := range points {
		history.Points = append(history.Points, api.BalancePoint{Date: dateOf(pt.Date), Balance: pt.Balance,
			AvailableBalance: pt.Available, Currency: pt.Currency, RecordedAt: pt.RecordedAt.UTC()})
	}
	return api.GetAccountBalanceHistory200JSONResponse(history), nil
}

// dateOf turns a YYYY-MM-DD the database or a validated parameter gave
// into the API's date type; anything else is the zero date.
func dateOf(s string) openapi_types.Date {
	t, _ := time.Parse(time.DateOnly, s)
	return openapi_types.Date{Time: t}
}

// utc returns t in UTC, nil when absent.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// nonEmpty returns s, or nil (null) when it is empty.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
