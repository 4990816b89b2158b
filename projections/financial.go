package projections

import (
	"context"
	"fmt"
	"time"
	"unicode"

	gojson "github.com/goccy/go-json"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
)

// FinancialData projects what the data API serves: one row per account
// (details, latest balance, whether it still syncs, when it last did), one
// row per transaction (the latest data of its stream, with the owning user
// carried over from the account), each account's current holdings, every
// recorded balance (the balance history) and the owner of every connection.
//
// One projector owns the five tables because they are read together and
// built from the same streams: the transactions need the owner that only
// the account's AccountOpened names, and last_synced_at comes from the
// connection's SyncCompleted. One consumer also reads the log once, where
// four would read it four times (docs/data-api.md measures why that
// matters to a rebuild), and one checkpoint is what a read endpoint waits
// for to read its writes.
//
// Event types it does not fold (on any stream) are passed over: they are
// not foreign to it, only of no interest; an event of a type it folds that
// does not decode, or of a schema version it does not know, is an error,
// and is parked.
//
// Rows are exact whatever the batch boundaries: every field is owned by one
// kind of event and moves only to a higher stream version of that kind
// (details, active, balance, holdings, transaction data, transaction
// state), so applying an event again changes nothing, and a stream's
// events applied out of order (a parked event retried after later ones)
// end in the same row. A row whose opening event has not been applied yet
// has no owner and is invisible to every query. last_synced_at is the one
// field folded across streams, in log order, from rows read in the batch's
// own transaction, so it is exact for the live runner and a rebuild alike.
type FinancialData struct{}

// The logical tables FinancialData owns.
const (
	accountsTable         = "accounts"
	transactionsTable     = "transactions"
	holdingsTable         = "holdings"
	balanceHistoryTable   = "balance_history"
	connectionOwnersTable = "connection_owners"
)

// FinancialDataName is the projector's name, which read endpoints wait on.
const FinancialDataName = "financial_data"

// Name identifies the projector.
func (FinancialData) Name() string { return FinancialDataName }

// Tables lists the tables it owns.
func (FinancialData) Tables() []string {
	return []string{accountsTable, transactionsTable, holdingsTable, balanceHistoryTable, connectionOwnersTable}
}

// Schema creates the five tables with the indexes Apply itself needs.
func (FinancialData) Schema(t TableNames) string {
	return fmt.Sprintf(`
CREATE TABLE %[1]s (
    id                    uuid        PRIMARY KEY,
    connection_id         uuid,
    user_id               uuid,
    provider_account_id   text        NOT NULL,
    name                  text        NOT NULL,
    account_type          text        NOT NULL,
    subtype               text        NOT NULL,
    account_number_last4  text        NOT NULL,
    currency              text        NOT NULL,
    balance               numeric,
    available_balance     numeric,
    balance_currency      text,
    balance_at            timestamptz,
    is_active             boolean     NOT NULL,
    last_synced_at        timestamptz,
    opened_at             timestamptz,
    holdings_at           timestamptz,
    details_version       bigint      NOT NULL,
    active_version        bigint      NOT NULL,
    balance_version       bigint      NOT NULL,
    holdings_version      bigint      NOT NULL,
    version               bigint      NOT NULL,
    updated_position      bigint      NOT NULL
);
CREATE INDEX ON %[1]s (connection_id);

CREATE TABLE %[2]s (
    id                      uuid    PRIMARY KEY,
    account_id              uuid,
    connection_id           uuid,
    user_id                 uuid,
    provider_transaction_id text,
    transaction_type        text,
    subtype                 text,
    pending                 boolean NOT NULL,
    removed                 boolean NOT NULL,
    status                  text    GENERATED ALWAYS AS
        (CASE WHEN removed THEN 'removed' WHEN pending THEN 'pending' ELSE 'posted' END) STORED,
    amount                  numeric,
    currency                text,
    description             text,
    transaction_date        date,
    settlement_date         date,
    symbol                  text,
    quantity                numeric,
    unit_price              numeric,
    commission              numeric,
    fees                    numeric,
    data_version            bigint  NOT NULL,
    state_version           bigint  NOT NULL,
    created_position        bigint  NOT NULL,
    updated_position        bigint  NOT NULL
);
-- Transactions recorded before their account was opened wait here for
-- their owner: normally empty, so it costs inserts nothing.
CREATE INDEX ON %[2]s (account_id) WHERE user_id IS NULL;

CREATE TABLE %[3]s (
    account_id    uuid        NOT NULL,
    ordinal       integer     NOT NULL,
    symbol        text        NOT NULL,
    description   text        NOT NULL,
    asset_type    text        NOT NULL,
    quantity      numeric     NOT NULL,
    average_price numeric,
    market_value  numeric     NOT NULL,
    currency      text        NOT NULL,
    as_of         timestamptz NOT NULL,
    PRIMARY KEY (account_id, ordinal)
);

CREATE TABLE %[4]s (
    account_id        uuid        NOT NULL,
    version           bigint      NOT NULL,
    recorded_at       timestamptz NOT NULL,
    balance           numeric     NOT NULL,
    available_balance numeric,
    currency          text        NOT NULL,
    global_position   bigint      NOT NULL,
    PRIMARY KEY (account_id, version)
);

CREATE TABLE %[5]s (
    connection_id uuid PRIMARY KEY,
    user_id       uuid NOT NULL
);
`, t.Of(accountsTable), t.Of(transactionsTable), t.Of(holdingsTable), t.Of(balanceHistoryTable), t.Of(connectionOwnersTable))
}

// Indexes creates the indexes the data API's keyset queries walk, none of
// which Apply needs: a rebuild builds them after its replay.
func (FinancialData) Indexes(t TableNames) string {
	return fmt.Sprintf(`
CREATE INDEX ON %[1]s (user_id, opened_at, id);
CREATE INDEX ON %[2]s (account_id, transaction_date, id);
CREATE INDEX ON %[2]s (user_id, transaction_date, id);
CREATE INDEX ON %[3]s (account_id, recorded_at, version);
`, t.Of(accountsTable), t.Of(transactionsTable), t.Of(balanceHistoryTable))
}

// Event type names the projector folds, from the aggregates' own types.
var (
	evAccountOpened      = account.AccountOpened{}.EventType()
	evAccountUpdated     = account.AccountUpdated{}.EventType()
	evAccountBalance     = account.AccountBalanceRecorded{}.EventType()
	evAccountHoldings    = account.AccountHoldingsRecorded{}.EventType()
	evAccountClosed      = account.AccountClosed{}.EventType()
	evTxRecorded         = transaction.TransactionRecorded{}.EventType()
	evTxUpdated          = transaction.TransactionUpdated{}.EventType()
	evTxRemoved          = transaction.TransactionRemoved{}.EventType()
	evSyncCompleted      = connection.SyncCompleted{}.EventType()
	evConnectionAttempt  = connection.ProviderConnectionAttempted{}.EventType()
	financialSchemaKnown = 1 // the only schema version of every event above
)

// accountEvents and transactionEvents are the types folded on account and
// transaction streams.
var (
	accountEvents = map[string]bool{evAccountOpened: true, evAccountUpdated: true, evAccountBalance: true,
		evAccountHoldings: true, evAccountClosed: true}
	transactionEvents = map[string]bool{evTxRecorded: true, evTxUpdated: true, evTxRemoved: true}
)

// decodeFinancial decodes r's payload into v. The projector knows schema
// version 1 of every event it folds; a newer one is an error (parked, then
// retried once a release knows it) rather than a guess.
func decodeFinancial(r eventstore.Record, v any) error {
	if r.SchemaVersion != financialSchemaKnown {
		return fmt.Errorf("%s at %s v%d: schema version %d is unknown to the %s projector",
			r.EventType, r.Stream, r.Version, r.SchemaVersion, FinancialDataName)
	}
	// go-json, not encoding/json: the same struct tags and rules, at a
	// third of the cost on these payloads, whose provider's raw record
	// encoding/json validated and then skipped in two passes (decoding was
	// three quarters of a rebuild's Go time, docs/benchmarks.md).
	if err := gojson.Unmarshal(r.Payload, v); err != nil {
		return fmt.Errorf("%s at %s v%d: decode payload: %w", r.EventType, r.Stream, r.Version, err)
	}
	return nil
}

// Apply folds the batch into the five tables: accounts first (read, folded
// in log order, written back in one upsert), then the transactions (one
// upsert that takes each owner from the accounts just written), the owners
// of transactions that arrived before their account, the balance history,
// the replaced holdings and the connection owners — the writes in one
// round trip.
func (FinancialData) Apply(ctx context.Context, tx pgx.Tx, t TableNames, batch []eventstore.Record) error {
	var (
		accts    = newAccountFold()
		txs      = newTransactionFold()
		owners   []connectionOwner
		relevant bool
	)
	for _, r := range batch {
		switch r.Stream.Type {
		case eventstore.StreamAccount:
			if accountEvents[r.EventType] {
				relevant = true
				accts.ids = appendOnce(accts.ids, accts.seenID, r.Stream.ID)
			}
		case eventstore.StreamTransaction:
			relevant = relevant || transactionEvents[r.EventType]
		case eventstore.StreamConnection:
			switch r.EventType {
			case evSyncCompleted:
				relevant = true
				var e connection.SyncCompleted
				if err := decodeFinancial(r, &e); err != nil {
					return err
				}
				accts.connIDs = appendOnce(accts.connIDs, accts.seenConn, e.ConnectionID)
			case evConnectionAttempt:
				var e connection.ProviderConnectionAttempted
				if err := decodeFinancial(r, &e); err != nil {
					return err
				}
				if e.UserID != uuid.Nil {
					relevant = true
					owners = append(owners, connectionOwner{connectionID: r.Stream.ID, userID: e.UserID})
				}
			}
		}
	}
	if !relevant {
		return nil
	}
	if len(accts.ids) > 0 || len(accts.connIDs) > 0 {
		if err := accts.load(ctx, tx, t); err != nil {
			return err
		}
	}
	for _, r := range batch {
		var err error
		switch r.Stream.Type {
		case eventstore.StreamAccount:
			err = accts.fold(r)
		case eventstore.StreamTransaction:
			err = txs.fold(r)
		case eventstore.StreamConnection:
			if r.EventType == evSyncCompleted {
				err = accts.foldSync(r)
			}
		}
		if err != nil {
			return err
		}
	}
	return writeFinancial(ctx, tx, t, accts, txs, owners)
}

// appendOnce appends id to ids unless seen has it.
func appendOnce(ids []uuid.UUID, seen map[uuid.UUID]bool, id uuid.UUID) []uuid.UUID {
	if seen[id] {
		return ids
	}
	seen[id] = true
	return append(ids, id)
}

// connectionOwner is who a connection belongs to, from its first attempt.
type connectionOwner struct{ connectionID, userID uuid.UUID }

// accountRow is one account as the accounts table holds it.
type accountRow struct {
	id                      uuid.UUID
	connectionID, userID    pgtype.UUID
	providerAccountID, name string
	accountType, subtype    string
	last4, currency         string
	balance, available      *string
	balanceCurrency         *string
	balanceAt               *time.Time
	active                  bool
	lastSyncedAt, openedAt  *time.Time
	holdingsAt              *time.Time
	detailsVersion          int64
	activeVersion           int64
	balanceVersion          int64
	holdingsVersion         int64
	version                 int64
	updatedPosition         int64

	// ownerWas says the row had an owner before this batch: one that gains
	// it now passes it on to transactions recorded before it.
	ownerWas bool
	changed  bool
}

// accountFold is the batch's accounts: the rows it touches, read first,
// then folded event by event in log order.
type accountFold struct {
	ids      []uuid.UUID // accounts with events in the batch
	seenID   map[uuid.UUID]bool
	connIDs  []uuid.UUID // connections whose syncs completed in the batch
	seenConn map[uuid.UUID]bool
	rows     map[uuid.UUID]*accountRow
	order    []uuid.UUID // rows in the order first touched, for stable writes
	history  []balancePoint
	holdings map[uuid.UUID][]account.Holding // accounts whose holdings are replaced
}

// balancePoint is one recorded balance.
type balancePoint struct {
	accountID uuid.UUID
	version   int64
	at        time.Time
	balance   string
	available *string
	currency  string
	globalPos int64
}

func newAccountFold() *accountFold {
	return &accountFold{seenID: map[uuid.UUID]bool{}, seenConn: map[uuid.UUID]bool{}, rows: map[uuid.UUID]*accountRow{},
		holdings: map[uuid.UUID][]account.Holding{}}
}

// load reads the rows of the batch's accounts and of every account of the
// connections whose syncs completed in it.
func (f *accountFold) load(ctx context.Context, tx pgx.Tx, t TableNames) error {
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT id, connection_id, user_id, provider_account_id, name, account_type, subtype,
		account_number_last4, currency, balance::text, available_balance::text, balance_currency, balance_at, is_active,
		last_synced_at, opened_at, holdings_at, details_version, active_version, balance_version, holdings_version,
		version, updated_position
		FROM %s WHERE id = ANY($1) OR connection_id = ANY($2)`, t.Of(accountsTable)), f.ids, f.connIDs)
	if err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a := &accountRow{}
		if err := rows.Scan(&a.id, &a.connectionID, &a.userID, &a.providerAccountID, &a.name, &a.accountType, &a.subtype,
			&a.last4, &a.currency, &a.balance, &a.available, &a.balanceCurrency, &a.balanceAt, &a.active,
			&a.lastSyncedAt, &a.openedAt, &a.holdingsAt, &a.detailsVersion, &a.activeVersion, &a.balanceVersion,
			&a.holdingsVersion, &a.version, &a.updatedPosition); err != nil {
			return fmt.Errorf("read accounts: %w", err)
		}
		a.ownerWas = a.userID.Valid
		f.rows[a.id] = a
		f.order = append(f.order, a.id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	return nil
}

// row returns the account's row, creating an empty one (no owner yet).
func (f *accountFold) row(id uuid.UUID) *accountRow {
	a, ok := f.rows[id]
	if !ok {
		a = &accountRow{id: id}
		f.rows[id] = a
		f.order = append(f.order, id)
	}
	return a
}

// touch records that r changed a.
func (a *accountRow) touch(r eventstore.Record) {
	a.changed = true
	a.version = max(a.version, r.Version)
	a.updatedPosition = max(a.updatedPosition, r.GlobalPosition)
}

// synced moves last_synced_at forward to at.
func (a *accountRow) synced(at time.Time) {
	if a.lastSyncedAt == nil || at.After(*a.lastSyncedAt) {
		at := at.UTC()
		a.lastSyncedAt = &at
	}
}

// setDetails takes the details of an opening or an update.
func (a *accountRow) setDetails(v int64, d account.Details) {
	if v <= a.detailsVersion {
		return
	}
	a.detailsVersion = v
	a.providerAccountID, a.name, a.accountType, a.subtype = d.ProviderAccountID, d.Name, d.Type, d.Subtype
	a.last4, a.currency = lastFour(d.MaskedNumber), d.Currency
}

// setActive takes whether the account syncs, from its latest opening,
// update or closing.
func (a *accountRow) setActive(v int64, active bool) {
	if v > a.activeVersion {
		a.activeVersion, a.active = v, active
	}
}

// fold applies one account event.
func (f *accountFold) fold(r eventstore.Record) error {
	if !accountEvents[r.EventType] {
		return nil // of no interest to the read model
	}
	a := f.row(r.Stream.ID)
	switch r.EventType {
	case evAccountOpened:
		var e account.AccountOpened
		if err := decodeFinancial(r, &e); err != nil {
			return err
		}
		a.connectionID = pgtype.UUID{Bytes: e.ConnectionID, Valid: true}
		a.userID = pgtype.UUID{Bytes: e.UserID, Valid: e.UserID != uuid.Nil}
		at := e.At.UTC()
		a.openedAt = &at
		a.setDetails(r.Version, e.Details)
		a.setActive(r.Version, true)
		a.synced(e.At)
	case evAccountUpdated:
		var e account.AccountUpdated
		if err := decodeFinancial(r, &e); err != nil {
			return err
		}
		a.setDetails(r.Version, e.Details)
		a.setActive(r.Version, true)
		a.synced(e.At)
	case evAccountBalance:
		var e account.AccountBalanceRecorded
		if err := decodeFinancial(r, &e); err != nil {
			return err
		}
		b := balancePoint{accountID: r.Stream.ID, version: r.Version, at: e.At.UTC(), balance: e.Current.String(),
			available: decimalText(e.Available), currency: e.Currency, globalPos: r.GlobalPosition}
		f.history = append(f.history, b)
		if r.Version > a.balanceVersion {
			a.balanceVersion = r.Version
			cur, at := b.balance, b.at
			a.balance, a.available, a.balanceCurrency, a.balanceAt = &cur, b.available, &b.currency, &at
		}
		a.synced(e.At)
	case evAccountHoldings:
		var e account.AccountHoldingsRecorded
		if err := decodeFinancial(r, &e); err != nil {
			return err
		}
		if r.Version > a.holdingsVersion {
			at := e.At.UTC()
			a.holdingsVersion, a.holdingsAt = r.Version, &at
			f.holdings[a.id] = e.Holdings
		}
		a.synced(e.At)
	case evAccountClosed:
		var e account.AccountClosed
		if err := decodeFinancial(r, &e); err != nil {
			return err
		}
		a.setActive(r.Version, false)
	default:
		return nil // of no interest to the read model
	}
	a.touch(r)
	return nil
}

// foldSync moves last_synced_at of every active account of the connection
// that the sync did not report as failed: a sync that found nothing new
// records no account event, yet brought the account up to date.
func (f *accountFold) foldSync(r eventstore.Record) error {
	var e connection.SyncCompleted
	if err := decodeFinancial(r, &e); err != nil {
		return err
	}
	failed := make(map[uuid.UUID]bool, len(e.AccountErrors))
	for _, ae := range e.AccountErrors {
		failed[ae.AccountID] = true
	}
	for _, id := range f.order {
		a := f.rows[id]
		if !a.connectionID.Valid || uuid.UUID(a.connectionID.Bytes) != e.ConnectionID || !a.active || failed[id] {
			continue
		}
		if a.lastSyncedAt == nil || e.At.After(*a.lastSyncedAt) {
			a.synced(e.At)
			a.changed = true
			a.updatedPosition = max(a.updatedPosition, r.GlobalPosition)
		}
	}
	return nil
}

// decimalText renders an optional decimal as the text the NUMERIC column takes.
func decimalText(d *decimal.Decimal) *string {
	if d == nil {
		return nil
	}
	s := d.String()
	return &s
}

// lastFour keeps the last four letters or digits of a masked account
// number: whatever a provider sends, a read model never holds more.
func lastFour(masked string) string {
	rs := []rune(masked)
	out := make([]rune, 0, 4)
	for i := len(rs) - 1; i >= 0 && len(out) < 4; i-- {
		if unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) {
			out = append(out, rs[i])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// txDelta is what the batch says of one transaction: the latest data and
// state among its events here, each with the stream version it came from.
// Ids are raw bytes (uuid.Nil: unknown) so that the upsert's arrays take
// pgx's fast encoding path.
type txDelta struct {
	id                      [16]byte
	accountID, connectionID [16]byte
	data                    *txPayload
	dataVersion             int64
	removed                 bool
	stateVersion            int64
	minPos, maxPos          int64
	// created is set when the batch holds the stream's first event: a
	// stream's events are read in version order, so no earlier batch can
	// have written its row, and a rebuild COPYs it without asking.
	created bool
}

// transactionFold is the batch's transactions, in the order first seen.
type transactionFold struct {
	rows  map[uuid.UUID]*txDelta
	order []uuid.UUID
}

func newTransactionFold() *transactionFold { return &transactionFold{rows: map[uuid.UUID]*txDelta{}} }

// fold applies one transaction event to the batch's delta. Recorded and
// Updated carry the transaction's full data (the latest event alone
// describes it); Removed only its state.
func (f *transactionFold) fold(r eventstore.Record) error {
	if !transactionEvents[r.EventType] {
		return nil // of no interest to the read model
	}
	d, ok := f.rows[r.Stream.ID]
	if !ok {
		d = &txDelta{id: r.Stream.ID, minPos: r.GlobalPosition}
		f.rows[r.Stream.ID] = d
		f.order = append(f.order, r.Stream.ID)
	}
	if r.Version > d.stateVersion {
		d.stateVersion, d.removed = r.Version, r.EventType == evTxRemoved
	}
	if r.Version == 1 {
		d.created = true
	}
	if r.EventType == evTxRemoved {
		if r.SchemaVersion != financialSchemaKnown {
			return decodeFinancial(r, nil) // the error naming the version
		}
	} else {
		var e txPayload
		if err := decodeFinancial(r, &e); err != nil {
			return err
		}
		if r.EventType == evTxRecorded {
			d.accountID, d.connectionID = e.AccountID, e.ConnectionID
		}
		if r.Version > d.dataVersion {
			d.dataVersion, d.data = r.Version, &e
		}
	}
	d.minPos, d.maxPos = min(d.minPos, r.GlobalPosition), max(d.maxPos, r.GlobalPosition)
	return nil
}

// txPayload is what the projector reads of a TransactionRecorded or
// TransactionUpdated payload: the JSON names of transaction.Data and of
// the events' account and connection ids, with the decimals kept as the
// text the NUMERIC columns parse (decoding them into decimal.Decimal only to
// print them again cost a third of a rebuild's Go time).
// TestTransactionPayloadReadsTheAggregatesEvents keeps it in step with the
// aggregate's types.
type txPayload struct {
	AccountID             uuid.UUID      `json:"account_id"`
	ConnectionID          uuid.UUID      `json:"connection_id"`
	ProviderTransactionID string         `json:"provider_transaction_id"`
	Type                  string         `json:"transaction_type"`
	Subtype               string         `json:"subtype"`
	Pending               bool           `json:"pending"`
	Amount                payloadDecimal `json:"amount"`
	Currency              string         `json:"currency"`
	Description           string         `json:"description"`
	Date                  string         `json:"transaction_date"`
	SettlementDate        string         `json:"settlement_date"`
	Symbol                string         `json:"symbol"`
	Quantity              payloadDecimal `json:"quantity"`
	UnitPrice             payloadDecimal `json:"unit_price"`
	Commission            payloadDecimal `json:"commission"`
	Fees                  payloadDecimal `json:"fees"`
}

// payloadDecimal is a decimal as its payload wrote it: a JSON string (as
// shopspring/decimal writes one) or number; "" when absent or null.
type payloadDecimal string

// UnmarshalJSON keeps the decimal's text after checking that it is one, so
// that a malformed amount fails here, on its event, rather than as a cast
// error of the whole batch's statement.
func (d *payloadDecimal) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*d = ""
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if !isDecimal(s) {
		return fmt.Errorf("%q is not a decimal", s)
	}
	*d = payloadDecimal(s)
	return nil
}

// isDecimal reports whether s is [-+]digits[.digits], the form decimals
// are written in.
func isDecimal(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}
