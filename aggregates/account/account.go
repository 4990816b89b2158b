// Package account is the Account aggregate: one account at one provider,
// reached through one connection — opened when a sync first sees it,
// updated when its name or type change, its balance and holdings recorded
// whenever they differ from the last ones (the balance history is these
// events), closed when its connection ends. Its stream id is derived from
// the connection and the provider's account id (UUIDv5), so syncing the
// same data twice decides nothing. Pure: no I/O, no clock, no randomness.
package account

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// Details are what a provider says of an account besides its money.
type Details struct {
	ProviderAccountID string `json:"provider_account_id"`
	Name              string `json:"name"`
	// Type is in Dashtam's vocabulary (checking, savings, brokerage, ...);
	// Subtype is the provider's own.
	Type         string          `json:"account_type"`
	Subtype      string          `json:"subtype,omitempty"`
	MaskedNumber string          `json:"account_number_masked,omitempty"`
	Currency     string          `json:"currency"`
	Raw          json.RawMessage `json:"raw,omitempty"`
}

// Balance is an account's balance at one moment.
type Balance struct {
	Current   decimal.Decimal  `json:"balance"`
	Available *decimal.Decimal `json:"available_balance,omitempty"`
	Currency  string           `json:"currency"`
}

// Holding is one position.
type Holding struct {
	Symbol       string           `json:"symbol"`
	Description  string           `json:"description,omitempty"`
	AssetType    string           `json:"asset_type,omitempty"`
	Quantity     decimal.Decimal  `json:"quantity"`
	AveragePrice *decimal.Decimal `json:"average_price,omitempty"`
	MarketValue  decimal.Decimal  `json:"market_value"`
	Currency     string           `json:"currency"`
}

// Event is one fact on an account's stream.
type Event interface {
	EventType() string
	isAccountEvent()
}

// AccountOpened records an account seen for the first time.
type AccountOpened struct {
	AccountID    uuid.UUID `json:"account_id"`
	ConnectionID uuid.UUID `json:"connection_id"`
	UserID       uuid.UUID `json:"user_id"`
	SyncID       uuid.UUID `json:"sync_id"`
	Details
	At time.Time `json:"at"`
}

// AccountUpdated records new details (all of them) and which changed; it
// also reopens an account a later sync sees again.
type AccountUpdated struct {
	AccountID uuid.UUID `json:"account_id"`
	SyncID    uuid.UUID `json:"sync_id"`
	Details
	Changed []string  `json:"changed"`
	At      time.Time `json:"at"`
}

// AccountBalanceRecorded records a balance that differs from the last one.
type AccountBalanceRecorded struct {
	AccountID uuid.UUID `json:"account_id"`
	SyncID    uuid.UUID `json:"sync_id"`
	Balance
	At time.Time `json:"at"`
}

// AccountHoldingsRecorded records positions that differ from the last ones
// (all of them, sorted by symbol).
type AccountHoldingsRecorded struct {
	AccountID uuid.UUID `json:"account_id"`
	SyncID    uuid.UUID `json:"sync_id"`
	Holdings  []Holding `json:"holdings"`
	At        time.Time `json:"at"`
}

// AccountClosed records that an account no longer syncs: its connection
// was disconnected, or the provider no longer lists it.
type AccountClosed struct {
	AccountID uuid.UUID `json:"account_id"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

func (AccountOpened) EventType() string           { return "AccountOpened" }
func (AccountUpdated) EventType() string          { return "AccountUpdated" }
func (AccountBalanceRecorded) EventType() string  { return "AccountBalanceRecorded" }
func (AccountHoldingsRecorded) EventType() string { return "AccountHoldingsRecorded" }
func (AccountClosed) EventType() string           { return "AccountClosed" }
func (AccountOpened) isAccountEvent()             {}
func (AccountUpdated) isAccountEvent()            {}
func (AccountBalanceRecorded) isAccountEvent()    {}
func (AccountHoldingsRecorded) isAccountEvent()   {}
func (AccountClosed) isAccountEvent()             {}

// AllEvents lists a zero value of every event type.
func AllEvents() []Event {
	return []Event{AccountOpened{}, AccountUpdated{}, AccountBalanceRecorded{}, AccountHoldingsRecorded{}, AccountClosed{}}
}

// Reasons an account closes.
const (
	ClosedDisconnected = "connection_disconnected"
	ClosedDisappeared  = "no_longer_listed"
)

// Errors of the account's commands.
var (
	// ErrInvalidDetails means details lack an id, a type or a currency.
	ErrInvalidDetails = errors.New("invalid account details")
	// ErrNotOpened means the stream holds no account.
	ErrNotOpened = errors.New("account not opened")
)

// Account is the state folded from a stream.
type Account struct {
	id           uuid.UUID
	connectionID uuid.UUID
	userID       uuid.UUID
	opened       bool
	closed       bool
	details      Details
	balance      *Balance
	holdings     []Holding
	// holdingsKnown is true once holdings were recorded (possibly none).
	holdingsKnown bool
	openedAt      time.Time
	syncedAt      time.Time
}

// New returns the state of stream id before any event.
func New(id uuid.UUID) *Account { return &Account{id: id} }

// Apply folds events; it never validates.
func (a *Account) Apply(events ...Event) {
	for _, e := range events {
		switch e := e.(type) {
		case AccountOpened:
			a.id, a.connectionID, a.userID = e.AccountID, e.ConnectionID, e.UserID
			a.opened, a.closed, a.details, a.openedAt, a.syncedAt = true, false, e.Details, e.At, e.At
		case AccountUpdated:
			a.closed, a.details, a.syncedAt = false, e.Details, e.At
		case AccountBalanceRecorded:
			b := e.Balance
			a.balance, a.syncedAt = &b, e.At
		case AccountHoldingsRecorded:
			a.holdings, a.holdingsKnown, a.syncedAt = e.Holdings, true, e.At
		case AccountClosed:
			a.closed = true
		}
	}
}

// Observation is one sync's view of the account.
type Observation struct {
	ConnectionID uuid.UUID
	UserID       uuid.UUID
	SyncID       uuid.UUID
	Details      Details
	// Balance and Holdings, when not nil, are recorded if they differ.
	Balance  *Balance
	Holdings []Holding
	// HoldingsKnown says Holdings was fetched (an account may hold none).
	HoldingsKnown bool
	At            time.Time
}

// Observe decides what a sync's view of the account means: opened the
// first time (or details updated, or reopened), then the balance and the
// holdings each recorded only when they differ from the last recorded.
// The same view twice decides nothing.
func (a *Account) Observe(o Observation) ([]Event, error) {
	d := o.Details
	if strings.TrimSpace(d.ProviderAccountID) == "" || d.Type == "" || len(d.Currency) != 3 {
		return nil, ErrInvalidDetails
	}
	var events []Event
	switch {
	case !a.opened:
		events = append(events, AccountOpened{AccountID: a.id, ConnectionID: o.ConnectionID, UserID: o.UserID, SyncID: o.SyncID, Details: d, At: o.At})
	default:
		changed := a.details.changes(d)
		if a.closed {
			changed = append(changed, "is_active")
		}
		if len(changed) > 0 {
			events = append(events, AccountUpdated{AccountID: a.id, SyncID: o.SyncID, Details: d, Changed: changed, At: o.At})
		}
	}
	if b := o.Balance; b != nil && !a.balance.equal(b) {
		events = append(events, AccountBalanceRecorded{AccountID: a.id, SyncID: o.SyncID, Balance: *b, At: o.At})
	}
	if o.HoldingsKnown {
		// An account that never held anything records nothing until it does.
		h := sortedHoldings(o.Holdings)
		if (a.holdingsKnown || len(h) > 0) && !(a.holdingsKnown && holdingsEqual(a.holdings, h)) {
			events = append(events, AccountHoldingsRecorded{AccountID: a.id, SyncID: o.SyncID, Holdings: h, At: o.At})
		}
	}
	return events, nil
}

// Close decides that the account no longer syncs; a closed one decides nothing.
func (a *Account) Close(reason string, at time.Time) ([]Event, error) {
	if !a.opened {
		return nil, ErrNotOpened
	}
	if a.closed {
		return nil, nil
	}
	return []Event{AccountClosed{AccountID: a.id, Reason: reason, At: at}}, nil
}

func (d Details) changes(n Details) []string {
	var out []string
	if d.Name != n.Name {
		out = append(out, "name")
	}
	if d.Type != n.Type || d.Subtype != n.Subtype {
		out = append(out, "account_type")
	}
	if d.MaskedNumber != n.MaskedNumber {
		out = append(out, "account_number_masked")
	}
	if d.Currency != n.Currency {
		out = append(out, "currency")
	}
	return out
}

func (b *Balance) equal(o *Balance) bool {
	if b == nil || o == nil {
		return b == nil && o == nil
	}
	if !b.Current.Equal(o.Current) || b.Currency != o.Currency {
		return false
	}
	if b.Available == nil || o.Available == nil {
		return b.Available == nil && o.Available == nil
	}
	return b.Available.Equal(*o.Available)
}

// sortedHoldings returns h sorted by symbol, then asset type, without
// changing the caller's slice.
func sortedHoldings(h []Holding) []Holding {
	out := slices.Clone(h)
	if out == nil {
		out = []Holding{}
	}
	slices.SortFunc(out, func(a, b Holding) int {
		if c := strings.Compare(a.Symbol, b.Symbol); c != 0 {
			return c
		}
		return strings.Compare(a.AssetType, b.AssetType)
	})
	return out
}

func holdingsEqual(a, b []Holding) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Symbol != y.Symbol || x.AssetType != y.AssetType || x.Description != y.Description || x.Currency != y.Currency ||
			!x.Quantity.Equal(y.Quantity) || !x.MarketValue.Equal(y.MarketValue) || !decimalPtrEqual(x.AveragePrice, y.AveragePrice) {
			return false
		}
	}
	return true
}

func decimalPtrEqual(a, b *decimal.Decimal) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// ID returns the account's id.
func (a *Account) ID() uuid.UUID { return a.id }

// ConnectionID returns the connection the account is reached through.
func (a *Account) ConnectionID() uuid.UUID { return a.connectionID }

// UserID returns the owner.
func (a *Account) UserID() uuid.UUID { return a.userID }

// Opened reports whether the stream holds an account.
func (a *Account) Opened() bool { return a.opened }

// Active reports whether the account still syncs.
func (a *Account) Active() bool { return a.opened && !a.closed }

// Details returns the latest details.
func (a *Account) Details() Details { return a.details }

// Balance returns the latest recorded balance, nil when none yet.
func (a *Account) Balance() *Balance { return a.balance }

// Holdings returns the latest recorded positions.
func (a *Account) Holdings() []Holding { return slices.Clone(a.holdings) }
