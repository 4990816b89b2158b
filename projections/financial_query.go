package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound means the resource does not exist in the read model or
// belongs to another user: the two are one answer, so that ids of other
// users' resources cannot be probed.
var ErrNotFound = errors.New("projections: no such resource")

// FinancialReader answers the data API's queries from the financial_data
// read model (FinancialData). Every query is scoped to one user; money
// comes back as the NUMERIC column's text, exactly as recorded, never
// through a float. Each call is one round trip of short statements: no
// transaction stays open between calls, so a long listing (CSV export)
// paged through it never holds the xid horizon.
type FinancialReader struct {
	pool *pgxpool.Pool
	t    TableNames
}

// NewFinancialReader returns a reader of the live tables over pool (the
// application role's: reads need no more).
func NewFinancialReader(pool *pgxpool.Pool) (*FinancialReader, error) {
	if pool == nil {
		return nil, errors.New("projections: nil pool")
	}
	return &FinancialReader{pool: pool, t: LiveTables(FinancialData{})}, nil
}

// AccountView is one account as the API shows it.
type AccountView struct {
	ID                uuid.UUID
	ConnectionID      uuid.UUID
	ProviderAccountID string
	Name              string
	Type              string
	Subtype           string
	// Last4 is at most the last four letters or digits of the number.
	Last4 string
	// Currency is the balance's currency, or the account's before any balance.
	Currency     string
	Balance      *string
	Available    *string
	BalanceAt    *time.Time
	IsActive     bool
	LastSyncedAt *time.Time
	OpenedAt     time.Time
}

// AccountKey is an account's place in list order: opened_at, then id.
type AccountKey struct {
	OpenedAt time.Time
	ID       uuid.UUID
}

// Key returns v's place in list order.
func (v AccountView) Key() AccountKey { return AccountKey{OpenedAt: v.OpenedAt, ID: v.ID} }

// AccountFilter narrows an account listing; zero fields do not filter.
type AccountFilter struct {
	ConnectionID *uuid.UUID
	Type         string
	Active       *bool
}

// CurrencyTotal sums the balances of one currency: Balance over the
// accounts with a balance, Available over those whose provider reports an
// available balance (nil when none does).
type CurrencyTotal struct {
	Currency  string
	Balance   string
	Available *string
	Accounts  int
}

// accountColumns is the select list scanAccount reads.
const accountColumns = `a.id, a.connection_id, a.provider_account_id, a.name, a.account_type, a.subtype, a.account_number_last4,
	coalesce(a.balance_currency, a.currency), a.balance::text, a.available_balance::text, a.balance_at, a.is_active,
	a.last_synced_at, a.opened_at`

func scanAccount(row pgx.CollectableRow) (AccountView, error) {
	var v AccountView
	err := row.Scan(&v.ID, &v.ConnectionID, &v.ProviderAccountID, &v.Name, &v.Type, &v.Subtype, &v.Last4, &v.Currency,
		&v.Balance, &v.Available, &v.BalanceAt, &v.IsActive, &v.LastSyncedAt, &v.OpenedAt)
	return v, err
}

// where collects the conditions and arguments of one query.
type where struct {
	conds []string
	args  []any
}

// add appends a condition whose placeholders are written as ? in order.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string { return strings.Join(w.conds, " AND ") }

// arg adds an argument without a condition and returns its placeholder.
func (w *where) arg(a any) string {
	w.args = append(w.args, a)
	return fmt.Sprintf("$%d", len(w.args))
}

// accountWhere scopes to the user and applies f.
func accountWhere(userID uuid.UUID, f AccountFilter) *where {
	w := &where{}
	w.add("a.user_id = ?", userID)
	if f.ConnectionID != nil {
		w.add("a.connection_id = ?", *f.ConnectionID)
	}
	if f.Type != "" {
		w.add("a.account_type = ?", f.Type)
	}
	if f.Active != nil {
		w.add("a.is_active = ?", *f.Active)
	}
	return w
}

// ListAccounts returns up to limit of the user's accounts matching f after
// the key (nil: from the start), oldest first, and the totals of every
// matching account (not only the page's), in one round trip.
func (r *FinancialReader) ListAccounts(ctx context.Context, userID uuid.UUID, f AccountFilter, after *AccountKey, limit int) ([]AccountView, []CurrencyTotal, error) {
	if limit < 1 {
		return nil, nil, fmt.Errorf("list accounts: limit %d is below 1", limit)
	}
	tw := accountWhere(userID, f)
	totals := fmt.Sprintf(`SELECT coalesce(a.balance_currency, a.currency), sum(a.balance)::text, sum(a.available_balance)::text, count(*)
		FROM %s a WHERE %s AND a.balance IS NOT NULL GROUP BY 1 ORDER BY 1`, r.t.Of(accountsTable), tw)
	w := accountWhere(userID, f)
	if after != nil {
		w.add("(a.opened_at, a.id) > (?, ?)", after.OpenedAt, after.ID)
	}
	page := fmt.Sprintf(`SELECT %s FROM %s a WHERE %s ORDER BY a.opened_at, a.id LIMIT %s`,
		accountColumns, r.t.Of(accountsTable), w, w.arg(limit))
	b := &pgx.Batch{}
	b.Queue(page, w.args...)
	b.Queue(totals, tw.args...)
	br := r.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("list accounts: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanAccount)
	if err != nil {
		return nil, nil, fmt.Errorf("list accounts: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("total accounts: %w", err)
	}
	sums, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CurrencyTotal, error) {
		var c CurrencyTotal
		err := row.Scan(&c.Currency, &c.Balance, &c.Available, &c.Accounts)
		return c, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("total accounts: %w", err)
	}
	return list, sums, nil
}

// Account returns one of the user's accounts, or ErrNotFound.
func (r *FinancialReader) Account(ctx context.Context, userID, id uuid.UUID) (AccountView, error) {
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s a WHERE a.id = $1 AND a.user_id = $2`,
		accountColumns, r.t.Of(accountsTable)), id, userID)
	if err != nil {
		return AccountView{}, fmt.Errorf("read account: %w", err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanAccount)
	if errors.Is(err, pgx.ErrNoRows) {
		return AccountView{}, ErrNotFound
	}
	if err != nil {
		return AccountView{}, fmt.Errorf("read account: %w", err)
	}
	return v, nil
}

// ListConnectionAccounts is ListAccounts over one of the user's
// connections: ErrNotFound when the connection is not the user's (or not
// known to the read model yet), an empty page when it has no accounts.
func (r *FinancialReader) ListConnectionAccounts(ctx context.Context, userID, connectionID uuid.UUID, after *AccountKey, limit int) ([]AccountView, []CurrencyTotal, error) {
	var owned bool
	if err := r.pool.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE connection_id = $1 AND user_id = $2)`,
		r.t.Of(connectionOwnersTable)), connectionID, userID).Scan(&owned); err != nil {
		return nil, nil, fmt.Errorf("read connection owner: %w", err)
	}
	if !owned {
		return nil, nil, ErrNotFound
	}
	return r.ListAccounts(ctx, userID, AccountFilter{ConnectionID: &connectionID}, after, limit)
}

// TransactionView is one transaction as the API shows it; the decimals
// are the NUMERIC columns' text.
type TransactionView struct {
	ID                    uuid.UUID
	AccountID             uuid.UUID
	ConnectionID          *uuid.UUID
	ProviderTransactionID string
	Type                  string
	Subtype               string
	Status                string
	Amount                string
	Currency              string
	Description           string
	// Date and SettlementDate are calendar dates, YYYY-MM-DD.
	Date           string
	SettlementDate *string
	Symbol         *string
	Quantity       *string
	UnitPrice      *string
	Commission     *string
	Fees           *string
}

// TransactionKey is a transaction's place in list order: newest date
// first, then id descending.
type TransactionKey struct {
	Date string
	ID   uuid.UUID
}

// Key returns v's place in list order.
func (v TransactionView) Key() TransactionKey { return TransactionKey{Date: v.Date, ID: v.ID} }

// TransactionFilter narrows a transaction listing; zero fields do not
// filter. Start and End are inclusive dates (YYYY-MM-DD).
type TransactionFilter struct {
	AccountID  *uuid.UUID
	Start, End string
	Type       string
	Status     string
}

const transactionColumns = `t.id, t.account_id, t.connection_id, t.provider_transaction_id, t.transaction_type,
	coalesce(t.subtype, ''), t.status, t.amount::text, t.currency, coalesce(t.description, ''), t.transaction_date::text,
	t.settlement_date::text, t.symbol, t.quantity::text, t.unit_price::text, t.commission::text, t.fees::text`

// scanTransaction scans one row of transactionColumns. The ids are scanned
// as pgtype.UUID: uuid.UUID is an sql.Scanner, which pgx feeds through its
// text form (formatted, then parsed again).
func scanTransaction(row pgx.CollectableRow) (TransactionView, error) {
	var (
		v                TransactionView
		id, acct, connID pgtype.UUID
	)
	err := row.Scan(&id, &acct, &connID, &v.ProviderTransactionID, &v.Type, &v.Subtype, &v.Status,
		&v.Amount, &v.Currency, &v.Description, &v.Date, &v.SettlementDate, &v.Symbol, &v.Quantity, &v.UnitPrice,
		&v.Commission, &v.Fees)
	v.ID, v.AccountID = id.Bytes, acct.Bytes
	if connID.Valid {
		c := uuid.UUID(connID.Bytes)
		v.ConnectionID = &c
	}
	return v, err
}

// transactionTextColumns is how many of transactionColumns, after the
// three ids, are text (the decimals and dates cast to it).
const transactionTextColumns = 14

// collectTransactions collects a page of up to limit rows of
// transactionColumns into a slice sized for it. It reads each row's raw
// values rather than scanning them: a row's fourteen texts become one
// string that the view's fields slice, instead of a string each (the
// page's allocation and most of pgx's per-column scanning work, measured
// in BenchmarkTransactionsPage, docs/benchmarks.md).
func collectTransactions(rows pgx.Rows, limit int) ([]TransactionView, error) {
	defer rows.Close()
	list := make([]TransactionView, 0, min(limit, 1000))
	var (
		buf  []byte
		ends [transactionTextColumns]int
	)
	for rows.Next() {
		raw := rows.RawValues()
		fds := rows.FieldDescriptions()
		if len(raw) != 3+transactionTextColumns {
			return nil, fmt.Errorf("transaction row of %d columns, want %d", len(raw), 3+transactionTextColumns)
		}
		var v TransactionView
		id, err := rawUUID(fds[0], raw[0])
		if err != nil {
			return nil, fmt.Errorf("transaction id: %w", err)
		}
		v.ID = id
		if v.AccountID, err = rawUUID(fds[1], raw[1]); err != nil {
			return nil, fmt.Errorf("transaction %s: account id: %w", v.ID, err)
		}
		if raw[2] != nil {
			c, err := rawUUID(fds[2], raw[2])
			if err != nil {
				return nil, fmt.Errorf("transaction %s: connection id: %w", v.ID, err)
			}
			v.ConnectionID = &c
		}
		buf = buf[:0]
		for i, r := range raw[3:] {
			buf = append(buf, r...)
			ends[i] = len(buf)
		}
		text := string(buf)
		field := func(i int) string {
			if i == 0 {
				return text[:ends[0]]
			}
			return text[ends[i-1]:ends[i]]
		}
		optional := func(i int) *string {
			if raw[3+i] == nil {
				return nil
			}
			f := field(i)
			return &f
		}
		// The columns that cannot be NULL for a transaction the read model
		// holds; NULL in one is an error, as pgx's scan into a string is.
		for i := range 8 {
			if raw[3+i] == nil {
				return nil, fmt.Errorf("transaction %s: column %s is NULL", v.ID, fds[3+i].Name)
			}
		}
		v.ProviderTransactionID, v.Type, v.Subtype, v.Status = field(0), field(1), field(2), field(3)
		v.Amount, v.Currency, v.Description, v.Date = field(4), field(5), field(6), field(7)
		v.SettlementDate, v.Symbol, v.Quantity = optional(8), optional(9), optional(10)
		v.UnitPrice, v.Commission, v.Fees = optional(11), optional(12), optional(13)
		list = append(list, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return list, nil
}

// rawUUID decodes a uuid column's raw value in either wire format.
func rawUUID(fd pgconn.FieldDescription, raw []byte) (uuid.UUID, error) {
	if raw == nil {
		return uuid.UUID{}, errors.New("is NULL")
	}
	if fd.Format == pgx.BinaryFormatCode {
		if len(raw) != 16 {
			return uuid.UUID{}, fmt.Errorf("binary uuid of %d bytes", len(raw))
		}
		return uuid.UUID(raw), nil
	}
	return uuid.ParseBytes(raw)
}

// transactionPage builds the page query over the user's transactions.
// Every value is a scalar subquery, (SELECT $n), rather than a bare
// parameter: the planner cannot see through it, so a custom plan is
// estimated exactly as the generic one and PostgreSQL settles on the
// generic plan of the prepared statement after five executions. With
// bare parameters it re-planned every page (a keyset's dates make the
// custom plan look cheaper), which cost as much CPU as running the query
// (docs/benchmarks.md). Whatever the values, the plan is the same walk
// down an index in list order, stopped by the limit.
func (r *FinancialReader) transactionPage(userID uuid.UUID, f TransactionFilter, after *TransactionKey, limit int) (string, []any) {
	w := &where{}
	w.add("t.user_id = (SELECT ?::uuid)", pgUUID(userID))
	if f.AccountID != nil {
		w.add("t.account_id = (SELECT ?::uuid)", pgUUID(*f.AccountID))
	}
	if f.Start != "" {
		w.add("t.transaction_date >= (SELECT ?::date)", f.Start)
	}
	if f.End != "" {
		w.add("t.transaction_date <= (SELECT ?::date)", f.End)
	}
	if f.Type != "" {
		w.add("t.transaction_type = (SELECT ?::text)", f.Type)
	}
	if f.Status != "" {
		w.add("t.status = (SELECT ?::text)", f.Status)
	}
	if after != nil {
		w.add("(t.transaction_date, t.id) < ((SELECT ?::date), (SELECT ?::uuid))", after.Date, pgUUID(after.ID))
	}
	return fmt.Sprintf(`SELECT %s FROM %s t WHERE %s ORDER BY t.transaction_date DESC, t.id DESC LIMIT (SELECT %s::bigint)`,
		transactionColumns, r.t.Of(transactionsTable), w, w.arg(limit)), w.args
}

// pgUUID is id as pgx encodes it directly: a uuid.UUID argument goes
// through its driver.Valuer, formatted as text and parsed again.
func pgUUID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// ListTransactions returns up to limit of the user's transactions matching
// f after the key (nil: from the start), newest date first. With
// f.AccountID set, an account that is not the user's is ErrNotFound. The
// page query is scoped to the user, so a page with rows proves the account
// is the user's: only an empty page asks, in a second round trip, whether
// the account exists for the user. The order is a keyset over
// (transaction_date, id): a transaction recorded behind a client's cursor
// does not shift the pages after it.
func (r *FinancialReader) ListTransactions(ctx context.Context, userID uuid.UUID, f TransactionFilter, after *TransactionKey, limit int) ([]TransactionView, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list transactions: limit %d is below 1", limit)
	}
	page, args := r.transactionPage(userID, f, after, limit)
	rows, err := r.pool.Query(ctx, page, args...)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	list, err := collectTransactions(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	if len(list) == 0 && f.AccountID != nil {
		var owned bool
		if err := r.pool.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1 AND user_id = $2)`,
			r.t.Of(accountsTable)), *f.AccountID, userID).Scan(&owned); err != nil {
			return nil, fmt.Errorf("list transactions: read account owner: %w", err)
		}
		if !owned {
			return nil, ErrNotFound
		}
	}
	return list, nil
}

// withAccount runs query after checking, in the same round trip, that the
// account is the user's: ErrNotFound when it is not.
func (r *FinancialReader) withAccount(ctx context.Context, userID, accountID uuid.UUID, query string, args []any, collect func(pgx.Rows) error) error {
	b := &pgx.Batch{}
	b.Queue(fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1 AND user_id = $2)`, r.t.Of(accountsTable)), accountID, userID)
	b.Queue(query, args...)
	br := r.pool.SendBatch(ctx, b)
	defer br.Close()
	var owned bool
	if err := br.QueryRow().Scan(&owned); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	if err := collect(rows); err != nil {
		return err
	}
	if !owned {
		return ErrNotFound
	}
	return nil
}

// Transaction returns one of the user's transactions, or ErrNotFound.
func (r *FinancialReader) Transaction(ctx context.Context, userID, id uuid.UUID) (TransactionView, error) {
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s t WHERE t.id = $1 AND t.user_id = $2`,
		transactionColumns, r.t.Of(transactionsTable)), id, userID)
	if err != nil {
		return TransactionView{}, fmt.Errorf("read transaction: %w", err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanTransaction)
	if errors.Is(err, pgx.ErrNoRows) {
		return TransactionView{}, ErrNotFound
	}
	if err != nil {
		return TransactionView{}, fmt.Errorf("read transaction: %w", err)
	}
	return v, nil
}

// HoldingView is one position of an account, as last recorded.
type HoldingView struct {
	AccountID    uuid.UUID
	Ordinal      int
	Symbol       string
	Description  string
	AssetType    string
	Quantity     string
	AveragePrice *string
	MarketValue  string
	Currency     string
	AsOf         time.Time
}

// HoldingKey is a holding's place in list order: account, then the
// position in the recorded list (sorted by symbol).
type HoldingKey struct {
	AccountID uuid.UUID
	Ordinal   int
}

// Key returns v's place in list order.
func (v HoldingView) Key() HoldingKey { return HoldingKey{AccountID: v.AccountID, Ordinal: v.Ordinal} }

// ListHoldings returns up to limit of the user's holdings after the key,
// ordered by account and symbol; with accountID set, one account's, and
// ErrNotFound when it is not the user's.
func (r *FinancialReader) ListHoldings(ctx context.Context, userID uuid.UUID, accountID *uuid.UUID, after *HoldingKey, limit int) ([]HoldingView, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list holdings: limit %d is below 1", limit)
	}
	w := &where{}
	w.add("a.user_id = ?", userID)
	if accountID != nil {
		w.add("h.account_id = ?", *accountID)
	}
	if after != nil {
		w.add("(h.account_id, h.ordinal) > (?, ?)", after.AccountID, after.Ordinal)
	}
	query := fmt.Sprintf(`SELECT h.account_id, h.ordinal, h.symbol, h.description, h.asset_type, h.quantity::text,
		h.average_price::text, h.market_value::text, h.currency, h.as_of
		FROM %s h JOIN %s a ON a.id = h.account_id WHERE %s ORDER BY h.account_id, h.ordinal LIMIT %s`,
		r.t.Of(holdingsTable), r.t.Of(accountsTable), w, w.arg(limit))
	var list []HoldingView
	collect := func(rows pgx.Rows) error {
		var err error
		list, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (HoldingView, error) {
			var v HoldingView
			err := row.Scan(&v.AccountID, &v.Ordinal, &v.Symbol, &v.Description, &v.AssetType, &v.Quantity,
				&v.AveragePrice, &v.MarketValue, &v.Currency, &v.AsOf)
			return v, err
		})
		return err
	}
	var err error
	if accountID != nil {
		err = r.withAccount(ctx, userID, *accountID, query, w.args, collect)
	} else {
		var rows pgx.Rows
		if rows, err = r.pool.Query(ctx, query, w.args...); err == nil {
			err = collect(rows)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list holdings: %w", err)
	}
	return list, nil
}

// BalanceSnapshot is one recorded balance of an account.
type BalanceSnapshot struct {
	AccountID  uuid.UUID
	Version    int64
	RecordedAt time.Time
	Balance    string
	Available  *string
	Currency   string
}

// SnapshotKey is a snapshot's place in list order: newest first.
type SnapshotKey struct {
	RecordedAt time.Time
	AccountID  uuid.UUID
	Version    int64
}

// Key returns s's place in list order.
func (s BalanceSnapshot) Key() SnapshotKey {
	return SnapshotKey{RecordedAt: s.RecordedAt, AccountID: s.AccountID, Version: s.Version}
}

// SnapshotFilter narrows a snapshot listing; Start and End are inclusive
// dates (YYYY-MM-DD) of recorded_at in UTC.
type SnapshotFilter struct {
	AccountID  *uuid.UUID
	Start, End string
}

// ListBalanceSnapshots returns up to limit of the balances recorded for
// the user's accounts after the key, newest first.
func (r *FinancialReader) ListBalanceSnapshots(ctx context.Context, userID uuid.UUID, f SnapshotFilter, after *SnapshotKey, limit int) ([]BalanceSnapshot, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list balance snapshots: limit %d is below 1", limit)
	}
	w := &where{}
	w.add("a.user_id = ?", userID)
	if f.AccountID != nil {
		w.add("h.account_id = ?", *f.AccountID)
	}
	if f.Start != "" {
		w.add("h.recorded_at >= (?::date)::timestamp AT TIME ZONE 'UTC'", f.Start)
	}
	if f.End != "" {
		w.add("h.recorded_at < (?::date + 1)::timestamp AT TIME ZONE 'UTC'", f.End)
	}
	if after != nil {
		w.add("(h.recorded_at, h.account_id, h.version) < (?, ?, ?)", after.RecordedAt, after.AccountID, after.Version)
	}
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT h.account_id, h.version, h.recorded_at, h.balance::text,
		h.available_balance::text, h.currency
		FROM %s h JOIN %s a ON a.id = h.account_id WHERE %s
		ORDER BY h.recorded_at DESC, h.account_id DESC, h.version DESC LIMIT %s`,
		r.t.Of(balanceHistoryTable), r.t.Of(accountsTable), w, w.arg(limit)), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list balance snapshots: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanSnapshot)
	if err != nil {
		return nil, fmt.Errorf("list balance snapshots: %w", err)
	}
	return list, nil
}

func scanSnapshot(row pgx.CollectableRow) (BalanceSnapshot, error) {
	var s BalanceSnapshot
	err := row.Scan(&s.AccountID, &s.Version, &s.RecordedAt, &s.Balance, &s.Available, &s.Currency)
	return s, err
}

// DailyBalance is an account's balance at the end of one UTC day: the last
// balance recorded on or before it.
type DailyBalance struct {
	Date string
	BalanceSnapshot
}

// BalanceHistory returns one point per UTC day from start to end
// (inclusive dates, YYYY-MM-DD): the last balance recorded by the end of
// that day, carried forward over days that recorded none. Days before the
// first recorded balance have no point. ErrNotFound when the account is
// not the user's.
func (r *FinancialReader) BalanceHistory(ctx context.Context, userID, accountID uuid.UUID, start, end string) ([]DailyBalance, error) {
	query := fmt.Sprintf(`SELECT d::date::text, b.account_id, b.version, b.recorded_at, b.balance::text,
		b.available_balance::text, b.currency
		FROM generate_series($1::date, $2::date, interval '1 day') AS d
		CROSS JOIN LATERAL (
			SELECT h.* FROM %s h
			 WHERE h.account_id = $3 AND h.recorded_at < (d::date + 1)::timestamp AT TIME ZONE 'UTC'
			 ORDER BY h.recorded_at DESC, h.version DESC LIMIT 1) b
		ORDER BY d`, r.t.Of(balanceHistoryTable))
	var points []DailyBalance
	err := r.withAccount(ctx, userID, accountID, query, []any{start, end, accountID}, func(rows pgx.Rows) error {
		var err error
		points, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (DailyBalance, error) {
			var p DailyBalance
			err := row.Scan(&p.Date, &p.AccountID, &p.Version, &p.RecordedAt, &p.Balance, &p.Available, &p.Currency)
			return p, err
		})
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("read balance history: %w", err)
	}
	return points, nil
}
