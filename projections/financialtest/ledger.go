// Package financialtest appends the events a provider sync would record —
// connections, accounts, balances, holdings, transactions, completed syncs
// — straight through the event store, so that tests and benchmarks of the
// financial read model and the data API need no provider. The store must
// know the domain's events (commands.RegisterEvents).
package financialtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
)

// Epoch is when a Ledger's clock starts unless told otherwise.
var Epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Ledger appends domain events to one store, keeping each stream's
// version, so a test writes what it means: "open this account", "record
// this transaction". Its methods fail the test on error and are safe for
// concurrent use (from the test's goroutine; the Try forms return errors
// for other goroutines).
type Ledger struct {
	tb    testing.TB
	store *eventstore.Store

	mu       sync.Mutex
	versions map[uuid.UUID]int64
	last     int64
}

// New returns a ledger appending to store.
func New(tb testing.TB, store *eventstore.Store) *Ledger {
	tb.Helper()
	return &Ledger{tb: tb, store: store, versions: map[uuid.UUID]int64{}}
}

// Store returns the store the ledger appends to.
func (l *Ledger) Store() *eventstore.Store { return l.store }

// LastPosition returns the global position of the last event the ledger
// appended.
func (l *Ledger) LastPosition() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// TryAppend appends events to stream at the version the ledger knows,
// with owner as the metadata's owner.
func (l *Ledger) TryAppend(owner uuid.UUID, stream eventstore.Stream, events ...eventstore.Event) (eventstore.AppendResult, error) {
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: owner, Actor: "financialtest"})
	l.mu.Lock()
	v := l.versions[stream.ID]
	l.mu.Unlock()
	res, err := l.store.Append(ctx, stream, v, events...)
	if err != nil {
		return res, err
	}
	l.mu.Lock()
	l.versions[stream.ID] = max(l.versions[stream.ID], res.Version)
	l.last = max(l.last, res.LastPosition)
	l.mu.Unlock()
	return res, nil
}

// Append is TryAppend failing the test on error.
func (l *Ledger) Append(owner uuid.UUID, stream eventstore.Stream, events ...eventstore.Event) eventstore.AppendResult {
	l.tb.Helper()
	res, err := l.TryAppend(owner, stream, events...)
	if err != nil {
		l.tb.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

// Connection records an active connection of user's and returns its id.
func (l *Ledger) Connection(user uuid.UUID) uuid.UUID {
	l.tb.Helper()
	id := uuid.New()
	l.Append(user, eventstore.Stream{Type: eventstore.StreamConnection, ID: id},
		connection.ProviderConnectionAttempted{ConnectionID: id, UserID: user, ProviderSlug: "sandbox", Alias: "Test " + id.String()[:8],
			ExpiresAt: Epoch.Add(10 * time.Minute), At: Epoch},
		connection.ProviderConnectionSucceeded{ConnectionID: id, At: Epoch,
			Credentials: connection.Credentials{KeyID: "k1", Fingerprint: "f", AccessExpiresAt: Epoch.Add(time.Hour)}})
	return id
}

// Details returns account details with the given provider id and type in USD.
func Details(providerID, accountType string) account.Details {
	return account.Details{ProviderAccountID: providerID, Name: "Account " + providerID, Type: accountType,
		Subtype: "sandbox_" + accountType, MaskedNumber: "****" + fmt.Sprintf("%04d", len(providerID)*97%10000), Currency: "USD"}
}

// Account records the opening of an account of user's on connection conn
// at `at` and returns its id (derived as a sync would derive it).
func (l *Ledger) Account(conn, user uuid.UUID, d account.Details, at time.Time) uuid.UUID {
	l.tb.Helper()
	id := eventstore.AccountStreamID(conn, d.ProviderAccountID)
	l.Append(user, AccountStream(id), account.AccountOpened{AccountID: id, ConnectionID: conn, UserID: user, SyncID: uuid.New(), Details: d, At: at})
	return id
}

// AccountStream is the stream of account id.
func AccountStream(id uuid.UUID) eventstore.Stream {
	return eventstore.Stream{Type: eventstore.StreamAccount, ID: id}
}

// TransactionStream is the stream of transaction id.
func TransactionStream(id uuid.UUID) eventstore.Stream {
	return eventstore.Stream{Type: eventstore.StreamTransaction, ID: id}
}

// Dec parses a decimal literal, panicking on a typo in a test.
func Dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// DecPtr is Dec behind a pointer; "" is nil.
func DecPtr(s string) *decimal.Decimal {
	if s == "" {
		return nil
	}
	d := Dec(s)
	return &d
}

// Balance records a balance of account id (available "" for none).
func (l *Ledger) Balance(user, id uuid.UUID, current, available, currency string, at time.Time) {
	l.tb.Helper()
	l.Append(user, AccountStream(id), account.AccountBalanceRecorded{AccountID: id, SyncID: uuid.New(),
		Balance: account.Balance{Current: Dec(current), Available: DecPtr(available), Currency: currency}, At: at})
}

// Holdings records the positions of account id.
func (l *Ledger) Holdings(user, id uuid.UUID, hs []account.Holding, at time.Time) {
	l.tb.Helper()
	l.Append(user, AccountStream(id), account.AccountHoldingsRecorded{AccountID: id, SyncID: uuid.New(), Holdings: hs, At: at})
}

// Update records new details of account id (which also reopens it).
func (l *Ledger) Update(user, id uuid.UUID, d account.Details, at time.Time) {
	l.tb.Helper()
	l.Append(user, AccountStream(id), account.AccountUpdated{AccountID: id, SyncID: uuid.New(), Details: d, Changed: []string{"name"}, At: at})
}

// Close records that account id no longer syncs.
func (l *Ledger) Close(user, id uuid.UUID, at time.Time) {
	l.tb.Helper()
	l.Append(user, AccountStream(id), account.AccountClosed{AccountID: id, Reason: account.ClosedDisappeared, At: at})
}

// Tx returns transaction data: a posted transaction of type typ on date
// (YYYY-MM-DD) for amount in USD.
func Tx(providerID, date, typ, amount string) transaction.Data {
	return transaction.Data{ProviderTransactionID: providerID, Type: typ, Subtype: "sandbox_" + typ, Amount: Dec(amount),
		Currency: "USD", Description: "Transaction " + providerID, Date: date}
}

// TransactionRecorded returns the event recording d on account acct.
func TransactionRecorded(acct, conn uuid.UUID, d transaction.Data, at time.Time) (uuid.UUID, transaction.TransactionRecorded) {
	id := eventstore.TransactionStreamID(acct, d.ProviderTransactionID)
	return id, transaction.TransactionRecorded{TransactionID: id, AccountID: acct, ConnectionID: conn, SyncID: uuid.New(), Data: d, At: at}
}

// Transaction records d on account acct and returns the transaction's id.
func (l *Ledger) Transaction(user, acct, conn uuid.UUID, d transaction.Data, at time.Time) uuid.UUID {
	l.tb.Helper()
	id, e := TransactionRecorded(acct, conn, d, at)
	l.Append(user, TransactionStream(id), e)
	return id
}

// TryTransaction is Transaction returning the error, for other goroutines.
func (l *Ledger) TryTransaction(user, acct, conn uuid.UUID, d transaction.Data, at time.Time) (uuid.UUID, error) {
	id, e := TransactionRecorded(acct, conn, d, at)
	_, err := l.TryAppend(user, TransactionStream(id), e)
	return id, err
}

// UpdateTransaction records new data of transaction id.
func (l *Ledger) UpdateTransaction(user, id uuid.UUID, d transaction.Data, at time.Time) {
	l.tb.Helper()
	l.Append(user, TransactionStream(id), transaction.TransactionUpdated{TransactionID: id, SyncID: uuid.New(), Data: d,
		Changed: []string{"status"}, At: at})
}

// BulkUpdateTransactions records that each transaction ids[i] now reads
// data[i], as a sync that sees many pending transactions post does: one
// unit of work per 5,000, each stream at the version the ledger last gave
// it.
func (l *Ledger) BulkUpdateTransactions(user uuid.UUID, ids []uuid.UUID, data []transaction.Data, at time.Time) {
	l.tb.Helper()
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: user, Actor: "financialtest"})
	const unit = 5000
	for start := 0; start < len(ids); start += unit {
		end := min(start+unit, len(ids))
		batch := make([]eventstore.StreamEvent, 0, end-start)
		l.mu.Lock()
		for i := start; i < end; i++ {
			batch = append(batch, eventstore.StreamEvent{Stream: TransactionStream(ids[i]), ExpectedVersion: l.versions[ids[i]],
				Event: transaction.TransactionUpdated{TransactionID: ids[i], SyncID: uuid.New(), Data: data[i],
					Changed: []string{"status"}, At: at}})
		}
		l.mu.Unlock()
		var last int64
		err := l.store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			var err error
			last, err = tx.AppendMany(ctx, batch)
			return err
		})
		if err != nil {
			l.tb.Fatalf("update %d transactions: %v", len(batch), err)
		}
		l.mu.Lock()
		for _, se := range batch {
			l.versions[se.Stream.ID] = se.ExpectedVersion + 1
		}
		l.last = max(l.last, last)
		l.mu.Unlock()
	}
}

// RemoveTransaction records that pending transaction id disappeared.
func (l *Ledger) RemoveTransaction(user, id uuid.UUID, at time.Time) {
	l.tb.Helper()
	l.Append(user, TransactionStream(id), transaction.TransactionRemoved{TransactionID: id, SyncID: uuid.New(),
		Reason: transaction.ReasonDisappeared, At: at})
}

// SyncCompleted records the end of a sync of connection conn; failed are
// the accounts it could not bring up to date.
func (l *Ledger) SyncCompleted(user, conn uuid.UUID, at time.Time, failed ...uuid.UUID) {
	l.tb.Helper()
	syncID := uuid.New()
	errs := make([]connection.AccountError, len(failed))
	for i, id := range failed {
		errs[i] = connection.AccountError{AccountID: id, Reason: connection.FailedProviderUnavailable}
	}
	l.Append(user, eventstore.Stream{Type: eventstore.StreamConnection, ID: conn},
		connection.SyncStarted{ConnectionID: conn, SyncID: syncID, Trigger: connection.SyncManual, From: "2000-01-01", To: "2100-01-01", At: at},
		connection.SyncCompleted{ConnectionID: conn, SyncID: syncID, AccountErrors: errs, At: at})
}

// BulkTransactions records many new transactions of account acct, in units
// of work of up to 5,000 appended with AppendMany: how a benchmark stores a
// million transactions in minutes rather than hours. It returns their ids.
func (l *Ledger) BulkTransactions(user, acct, conn uuid.UUID, data []transaction.Data, at time.Time) []uuid.UUID {
	l.tb.Helper()
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: user, Actor: "financialtest"})
	ids := make([]uuid.UUID, 0, len(data))
	const unit = 5000
	for start := 0; start < len(data); start += unit {
		part := data[start:min(start+unit, len(data))]
		batch := make([]eventstore.StreamEvent, len(part))
		for i, d := range part {
			id, e := TransactionRecorded(acct, conn, d, at)
			batch[i] = eventstore.StreamEvent{Stream: TransactionStream(id), Event: e}
			ids = append(ids, id)
		}
		var last int64
		err := l.store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			var err error
			last, err = tx.AppendMany(ctx, batch)
			return err
		})
		if err != nil {
			l.tb.Fatalf("append %d transactions: %v", len(batch), err)
		}
		l.mu.Lock()
		for _, se := range batch {
			l.versions[se.Stream.ID] = 1
		}
		l.last = max(l.last, last)
		l.mu.Unlock()
	}
	return ids
}
