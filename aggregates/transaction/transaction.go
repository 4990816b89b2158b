// Package transaction is the Transaction aggregate: one transaction of one
// account as the provider reported it over successive syncs — recorded,
// updated when it posts or is corrected, removed when a pending one
// disappears. Its stream id is derived from the account and the provider's
// transaction id (UUIDv5), so syncing the same data twice finds the same
// stream and decides nothing. Pure: no I/O, no clock, no randomness.
package transaction

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// Status is a transaction's state in the API's vocabulary.
type Status string

// The statuses of a transaction.
const (
	StatusPending Status = "pending"
	StatusPosted  Status = "posted"
	StatusRemoved Status = "removed"
)

// Data is what a provider says of a transaction, mapped to Dashtam's
// vocabulary (commands' TransactionType* constants), with the provider's
// own record kept as Raw for later re-mapping.
type Data struct {
	ProviderTransactionID string           `json:"provider_transaction_id"`
	Type                  string           `json:"transaction_type"`
	Subtype               string           `json:"subtype,omitempty"`
	Pending               bool             `json:"pending"`
	Amount                decimal.Decimal  `json:"amount"`
	Currency              string           `json:"currency"`
	Description           string           `json:"description,omitempty"`
	Date                  string           `json:"transaction_date"`
	SettlementDate        string           `json:"settlement_date,omitempty"`
	Symbol                string           `json:"symbol,omitempty"`
	Quantity              *decimal.Decimal `json:"quantity,omitempty"`
	UnitPrice             *decimal.Decimal `json:"unit_price,omitempty"`
	Commission            *decimal.Decimal `json:"commission,omitempty"`
	Fees                  *decimal.Decimal `json:"fees,omitempty"`
	Raw                   json.RawMessage  `json:"raw,omitempty"`
}

// Event is one fact on a transaction's stream; it satisfies
// eventstore.Event structurally.
type Event interface {
	EventType() string
	isTransactionEvent()
}

// TransactionRecorded records a transaction seen for the first time.
type TransactionRecorded struct {
	TransactionID uuid.UUID `json:"transaction_id"`
	AccountID     uuid.UUID `json:"account_id"`
	ConnectionID  uuid.UUID `json:"connection_id"`
	SyncID        uuid.UUID `json:"sync_id"`
	Data
	At time.Time `json:"at"`
}

// TransactionUpdated records what a later sync found different: the full
// new data (so the latest event alone describes the transaction) and the
// names of the fields that changed. It also restores a removed transaction
// that reappears.
type TransactionUpdated struct {
	TransactionID uuid.UUID `json:"transaction_id"`
	SyncID        uuid.UUID `json:"sync_id"`
	Data
	Changed []string  `json:"changed"`
	At      time.Time `json:"at"`
}

// TransactionRemoved records that a pending transaction disappeared from
// the provider inside the window a sync looked at: cancelled before it posted.
type TransactionRemoved struct {
	TransactionID uuid.UUID `json:"transaction_id"`
	SyncID        uuid.UUID `json:"sync_id"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"at"`
}

func (TransactionRecorded) EventType() string   { return "TransactionRecorded" }
func (TransactionUpdated) EventType() string    { return "TransactionUpdated" }
func (TransactionRemoved) EventType() string    { return "TransactionRemoved" }
func (TransactionRecorded) isTransactionEvent() {}
func (TransactionUpdated) isTransactionEvent()  {}
func (TransactionRemoved) isTransactionEvent()  {}

// AllEvents lists a zero value of every event type.
func AllEvents() []Event {
	return []Event{TransactionRecorded{}, TransactionUpdated{}, TransactionRemoved{}}
}

// ReasonDisappeared is the reason of a pending transaction no longer reported.
const ReasonDisappeared = "disappeared_while_pending"

// Errors of the transaction's commands.
var (
	// ErrInvalidData means the provider's data lacks an id, a date, a type or a currency.
	ErrInvalidData = errors.New("invalid transaction data")
	// ErrNotRecorded means the stream holds no transaction.
	ErrNotRecorded = errors.New("transaction not recorded")
	// ErrWrongAccount means the data is offered to another account's transaction.
	ErrWrongAccount = errors.New("transaction belongs to another account")
)

// Transaction is the state folded from a stream.
type Transaction struct {
	id           uuid.UUID
	accountID    uuid.UUID
	connectionID uuid.UUID
	recorded     bool
	removed      bool
	data         Data
	recordedAt   time.Time
	updatedAt    time.Time
}

// New returns the state of stream id before any event.
func New(id uuid.UUID) *Transaction { return &Transaction{id: id} }

// Apply folds events; it never validates.
func (t *Transaction) Apply(events ...Event) {
	for _, e := range events {
		switch e := e.(type) {
		case TransactionRecorded:
			t.id, t.accountID, t.connectionID = e.TransactionID, e.AccountID, e.ConnectionID
			t.recorded, t.removed, t.data, t.recordedAt, t.updatedAt = true, false, e.Data, e.At, e.At
		case TransactionUpdated:
			t.removed, t.data, t.updatedAt = false, e.Data, e.At
		case TransactionRemoved:
			t.removed, t.updatedAt = true, e.At
		}
	}
}

// Observation is one sync's view of the transaction.
type Observation struct {
	AccountID    uuid.UUID
	ConnectionID uuid.UUID
	SyncID       uuid.UUID
	Data         Data
	At           time.Time
}

// Observe decides what a sync's view of the transaction means: recorded
// the first time, updated when any mapped field differs (pending → posted,
// a corrected amount or description; the raw record alone does not count,
// so a provider adding a field changes nothing), nothing when it is the
// same. A removed transaction that reappears is updated back.
func (t *Transaction) Observe(o Observation) ([]Event, error) {
	if err := o.Data.validate(); err != nil {
		return nil, err
	}
	if !t.recorded {
		return []Event{TransactionRecorded{TransactionID: t.id, AccountID: o.AccountID, ConnectionID: o.ConnectionID,
			SyncID: o.SyncID, Data: o.Data, At: o.At}}, nil
	}
	if o.AccountID != t.accountID {
		return nil, ErrWrongAccount
	}
	changed := t.data.changes(o.Data)
	if t.removed {
		changed = append(changed, "status")
	}
	if len(changed) == 0 {
		return nil, nil
	}
	return []Event{TransactionUpdated{TransactionID: t.id, SyncID: o.SyncID, Data: o.Data, Changed: changed, At: o.At}}, nil
}

// Remove decides that the transaction disappeared from the provider: only
// a pending one is removed (cancelled before posting); a posted one stays,
// as history does not change, and an already removed one decides nothing.
func (t *Transaction) Remove(syncID uuid.UUID, at time.Time) ([]Event, error) {
	if !t.recorded {
		return nil, ErrNotRecorded
	}
	if t.removed || !t.data.Pending {
		return nil, nil
	}
	return []Event{TransactionRemoved{TransactionID: t.id, SyncID: syncID, Reason: ReasonDisappeared, At: at}}, nil
}

func (d Data) validate() error {
	switch {
	case strings.TrimSpace(d.ProviderTransactionID) == "", d.Type == "", len(d.Currency) != 3:
		return ErrInvalidData
	}
	if _, err := time.Parse(time.DateOnly, d.Date); err != nil {
		return fmt.Errorf("%w: date %q", ErrInvalidData, d.Date)
	}
	if d.SettlementDate != "" {
		if _, err := time.Parse(time.DateOnly, d.SettlementDate); err != nil {
			return fmt.Errorf("%w: settlement date %q", ErrInvalidData, d.SettlementDate)
		}
	}
	return nil
}

// changes names the fields of n that differ from d, comparing amounts as
// numbers (1.50 equals 1.5).
func (d Data) changes(n Data) []string {
	var out []string
	diff := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	diff("status", d.Pending != n.Pending)
	diff("amount", !d.Amount.Equal(n.Amount) || d.Currency != n.Currency)
	diff("transaction_type", d.Type != n.Type || d.Subtype != n.Subtype)
	diff("description", d.Description != n.Description)
	diff("transaction_date", d.Date != n.Date)
	diff("settlement_date", d.SettlementDate != n.SettlementDate)
	diff("symbol", d.Symbol != n.Symbol)
	diff("quantity", !equalPtr(d.Quantity, n.Quantity))
	diff("unit_price", !equalPtr(d.UnitPrice, n.UnitPrice))
	diff("commission", !equalPtr(d.Commission, n.Commission))
	diff("fees", !equalPtr(d.Fees, n.Fees))
	return out
}

func equalPtr(a, b *decimal.Decimal) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// ID returns the transaction's id.
func (t *Transaction) ID() uuid.UUID { return t.id }

// AccountID returns the account the transaction belongs to.
func (t *Transaction) AccountID() uuid.UUID { return t.accountID }

// Recorded reports whether the stream holds a transaction.
func (t *Transaction) Recorded() bool { return t.recorded }

// Status returns the transaction's status.
func (t *Transaction) Status() Status {
	switch {
	case t.removed:
		return StatusRemoved
	case t.data.Pending:
		return StatusPending
	}
	return StatusPosted
}

// Data returns the latest data recorded.
func (t *Transaction) Data() Data { return t.data }
