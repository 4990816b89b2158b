package connection

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// SyncTrigger says what started a sync.
type SyncTrigger string

// The triggers of a sync.
const (
	// SyncFirst is the sync that follows a completed first authorisation.
	SyncFirst SyncTrigger = "first"
	// SyncManual is the user's POST /connections/{id}/syncs.
	SyncManual SyncTrigger = "manual"
	// SyncScheduled is the periodic sync of every active connection.
	SyncScheduled SyncTrigger = "scheduled"
)

// SyncCounts are what a sync did to the transactions it saw.
type SyncCounts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// AccountError is one account a sync could not bring up to date.
type AccountError struct {
	AccountID uuid.UUID     `json:"account_id"`
	Reason    FailureReason `json:"reason"`
}

// SyncStarted records that a sync of the connection began, and the window
// of transaction dates it fetches.
type SyncStarted struct {
	ConnectionID uuid.UUID   `json:"connection_id"`
	SyncID       uuid.UUID   `json:"sync_id"`
	Trigger      SyncTrigger `json:"trigger"`
	Force        bool        `json:"force,omitempty"`
	From         string      `json:"from"`
	To           string      `json:"to"`
	At           time.Time   `json:"at"`
}

// SyncCompleted records a sync's end: what it did and which accounts it
// could not bring up to date (the others were).
type SyncCompleted struct {
	ConnectionID  uuid.UUID      `json:"connection_id"`
	SyncID        uuid.UUID      `json:"sync_id"`
	Accounts      int            `json:"accounts"`
	Counts        SyncCounts     `json:"counts"`
	AccountErrors []AccountError `json:"account_errors,omitempty"`
	At            time.Time      `json:"at"`
}

// SyncFailed records a sync that could not run at all (the provider
// refused the credentials or could not list the accounts).
type SyncFailed struct {
	ConnectionID uuid.UUID     `json:"connection_id"`
	SyncID       uuid.UUID     `json:"sync_id"`
	Reason       FailureReason `json:"reason"`
	At           time.Time     `json:"at"`
}

func (SyncStarted) EventType() string    { return "SyncStarted" }
func (SyncCompleted) EventType() string  { return "SyncCompleted" }
func (SyncFailed) EventType() string     { return "SyncFailed" }
func (SyncStarted) isConnectionEvent()   {}
func (SyncCompleted) isConnectionEvent() {}
func (SyncFailed) isConnectionEvent()    {}

// Sync rules.
const (
	// MinSyncInterval is the least time between two syncs of a connection
	// that are not forced.
	MinSyncInterval = 5 * time.Minute
	// SyncStale is how long a sync may run before another may start in its
	// place: a worker that died mid-sync must not block the connection.
	SyncStale = 30 * time.Minute
)

// Errors of the sync commands.
var (
	// ErrSyncRunning means a sync of the connection is in progress.
	ErrSyncRunning = errors.New("a sync of the connection is running")
	// ErrSyncTooSoon means the last sync started less than MinSyncInterval ago.
	ErrSyncTooSoon = errors.New("the connection was synced moments ago")
	// ErrNoSuchSync means the sync named is not the one in progress.
	ErrNoSuchSync = errors.New("no such sync in progress")
)

// SyncRequest asks for a sync.
type SyncRequest struct {
	SyncID  uuid.UUID
	Trigger SyncTrigger
	Force   bool
	// From and To bound the transaction dates fetched (YYYY-MM-DD).
	From, To string
	At       time.Time
}

// StartSync starts a sync of an active connection: one at a time (a sync
// older than SyncStale no longer counts as running), and, unless forced,
// at least MinSyncInterval after the previous one started.
func (c *Connection) StartSync(r SyncRequest) ([]Event, error) {
	if err := c.mustBeActive(); err != nil {
		return nil, err
	}
	if r.SyncID == uuid.Nil || r.From == "" || r.To == "" || r.From > r.To {
		return nil, fmt.Errorf("start sync: %w", ErrInvalidInput)
	}
	if c.syncing != uuid.Nil && r.At.Before(c.syncStartedAt.Add(SyncStale)) {
		return nil, ErrSyncRunning
	}
	if !r.Force && !c.syncStartedAt.IsZero() && r.At.Before(c.syncStartedAt.Add(MinSyncInterval)) {
		return nil, ErrSyncTooSoon
	}
	return []Event{SyncStarted{ConnectionID: c.id, SyncID: r.SyncID, Trigger: r.Trigger, Force: r.Force, From: r.From, To: r.To, At: r.At}}, nil
}

// CompleteSync records the end of the sync in progress.
func (c *Connection) CompleteSync(syncID uuid.UUID, accounts int, counts SyncCounts, errs []AccountError, at time.Time) ([]Event, error) {
	if c.syncing != syncID || syncID == uuid.Nil {
		return nil, ErrNoSuchSync
	}
	return []Event{SyncCompleted{ConnectionID: c.id, SyncID: syncID, Accounts: accounts, Counts: counts, AccountErrors: errs, At: at}}, nil
}

// FailSync records that the sync in progress could not run.
func (c *Connection) FailSync(syncID uuid.UUID, reason FailureReason, at time.Time) ([]Event, error) {
	if c.syncing != syncID || syncID == uuid.Nil {
		return nil, ErrNoSuchSync
	}
	return []Event{SyncFailed{ConnectionID: c.id, SyncID: syncID, Reason: reason, At: at}}, nil
}

// Syncing returns the sync in progress (uuid.Nil: none) and when it started.
func (c *Connection) Syncing() (uuid.UUID, time.Time) { return c.syncing, c.syncStartedAt }

// LastSyncAt returns when the last sync completed (zero: never).
func (c *Connection) LastSyncAt() time.Time { return c.lastSyncAt }
