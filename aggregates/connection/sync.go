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

// Valid reports whether t is one of the triggers.
func (t SyncTrigger) Valid() bool {
	return t == SyncFirst || t == SyncManual || t == SyncScheduled
}

// SyncCounts are what a sync did to the transactions it saw.
type SyncCounts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// Add returns the sum of c and o.
func (c SyncCounts) Add(o SyncCounts) SyncCounts {
	return SyncCounts{Created: c.Created + o.Created, Updated: c.Updated + o.Updated,
		Unchanged: c.Unchanged + o.Unchanged, Removed: c.Removed + o.Removed}
}

// AccountError is one account a sync could not bring up to date.
type AccountError struct {
	AccountID uuid.UUID     `json:"account_id"`
	Reason    FailureReason `json:"reason"`
}

// SyncStarted records that a sync of the connection was decided (and its
// job enqueued in the same transaction), and the window of transaction
// dates it fetches, both inclusive.
type SyncStarted struct {
	ConnectionID uuid.UUID   `json:"connection_id"`
	SyncID       uuid.UUID   `json:"sync_id"`
	Trigger      SyncTrigger `json:"trigger"`
	Force        bool        `json:"force,omitempty"`
	From         string      `json:"from"`
	To           string      `json:"to"`
	At           time.Time   `json:"at"`
}

// SyncPickedUp records that a worker began the sync: until then it was
// queued. A retried job records it once.
type SyncPickedUp struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	SyncID       uuid.UUID `json:"sync_id"`
	At           time.Time `json:"at"`
}

// SyncCompleted records a sync's end: what it did, which accounts it could
// not bring up to date (the others were), and the latest date of a posted
// transaction it saw, from which the next sync's window starts.
type SyncCompleted struct {
	ConnectionID  uuid.UUID      `json:"connection_id"`
	SyncID        uuid.UUID      `json:"sync_id"`
	Accounts      int            `json:"accounts"`
	Counts        SyncCounts     `json:"counts"`
	AccountErrors []AccountError `json:"account_errors,omitempty"`
	// LatestPosted is the latest date (YYYY-MM-DD) of a posted transaction
	// the sync saw; empty when it saw none, or when an account failed (a
	// failed account's transactions were not seen, so the window must not
	// move past them).
	LatestPosted string    `json:"latest_posted,omitempty"`
	At           time.Time `json:"at"`
}

// SyncFailed records a sync that could not run at all (the provider
// refused the credentials or could not list the accounts), or one that
// was abandoned: its worker died and a later sync took its place.
type SyncFailed struct {
	ConnectionID uuid.UUID     `json:"connection_id"`
	SyncID       uuid.UUID     `json:"sync_id"`
	Reason       FailureReason `json:"reason"`
	At           time.Time     `json:"at"`
}

func (SyncStarted) EventType() string    { return "SyncStarted" }
func (SyncPickedUp) EventType() string   { return "SyncPickedUp" }
func (SyncCompleted) EventType() string  { return "SyncCompleted" }
func (SyncFailed) EventType() string     { return "SyncFailed" }
func (SyncStarted) isConnectionEvent()   {}
func (SyncPickedUp) isConnectionEvent()  {}
func (SyncCompleted) isConnectionEvent() {}
func (SyncFailed) isConnectionEvent()    {}

// The reasons a sync fails besides the provider's (FailureReason above).
const (
	// FailedSyncAbandoned means the sync ran longer than SyncStale and a
	// later sync took its place.
	FailedSyncAbandoned FailureReason = "abandoned"
	// FailedDisconnected means the connection was disconnected while the
	// sync was in progress.
	FailedDisconnected FailureReason = "disconnected"
	// FailedNotActive means the connection stopped being active (it needs
	// re-authorisation) before the sync could run.
	FailedNotActive FailureReason = "connection_not_active"
)

// Sync rules.
const (
	// MinSyncInterval is the least time between two syncs of a connection
	// that are not forced.
	MinSyncInterval = 5 * time.Minute
	// SyncStale is how long a sync may run before another may start in its
	// place: a worker that died mid-sync must not block the connection.
	SyncStale = 30 * time.Minute
	// FirstSyncYears is how far back the first sync of a connection (and
	// the first sight of an account) reaches.
	FirstSyncYears = 1
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
	// From and To bound the transaction dates fetched (YYYY-MM-DD, both
	// inclusive); Window computes them.
	From, To string
	At       time.Time
}

// StartSync starts a sync of an active connection: one at a time (a sync
// older than SyncStale no longer counts as running, and is recorded as
// abandoned before the new one starts), and, unless forced, at least
// MinSyncInterval after the previous one started.
func (c *Connection) StartSync(r SyncRequest) ([]Event, error) {
	if err := c.mustBeActive(); err != nil {
		return nil, err
	}
	if r.SyncID == uuid.Nil || !r.Trigger.Valid() || !validDate(r.From) || !validDate(r.To) || r.From > r.To {
		return nil, fmt.Errorf("start sync: %w", ErrInvalidInput)
	}
	if c.syncing != uuid.Nil && r.At.Before(c.syncStartedAt.Add(SyncStale)) {
		return nil, ErrSyncRunning
	}
	if !r.Force && !c.syncStartedAt.IsZero() && r.At.Before(c.syncStartedAt.Add(MinSyncInterval)) {
		return nil, ErrSyncTooSoon
	}
	var events []Event
	if c.syncing != uuid.Nil {
		events = append(events, SyncFailed{ConnectionID: c.id, SyncID: c.syncing, Reason: FailedSyncAbandoned, At: r.At})
	}
	return append(events, SyncStarted{ConnectionID: c.id, SyncID: r.SyncID, Trigger: r.Trigger, Force: r.Force,
		From: r.From, To: r.To, At: r.At}), nil
}

// PickUpSync records that a worker began the sync in progress; a sync
// already picked up (a retried job) decides nothing.
func (c *Connection) PickUpSync(syncID uuid.UUID, at time.Time) ([]Event, error) {
	if c.syncing != syncID || syncID == uuid.Nil {
		return nil, ErrNoSuchSync
	}
	if c.syncPickedUp {
		return nil, nil
	}
	return []Event{SyncPickedUp{ConnectionID: c.id, SyncID: syncID, At: at}}, nil
}

// SyncResult is what a completed sync reports.
type SyncResult struct {
	Accounts      int
	Counts        SyncCounts
	AccountErrors []AccountError
	// LatestPosted is the latest posted transaction date seen (YYYY-MM-DD),
	// empty when none; it is dropped when AccountErrors is not empty.
	LatestPosted string
}

// CompleteSync records the end of the sync in progress.
func (c *Connection) CompleteSync(syncID uuid.UUID, r SyncResult, at time.Time) ([]Event, error) {
	if c.syncing != syncID || syncID == uuid.Nil {
		return nil, ErrNoSuchSync
	}
	if r.LatestPosted != "" && !validDate(r.LatestPosted) {
		return nil, fmt.Errorf("complete sync: %w", ErrInvalidInput)
	}
	latest := r.LatestPosted
	if len(r.AccountErrors) > 0 {
		latest = ""
	}
	return []Event{SyncCompleted{ConnectionID: c.id, SyncID: syncID, Accounts: r.Accounts, Counts: r.Counts,
		AccountErrors: r.AccountErrors, LatestPosted: latest, At: at}}, nil
}

// FailSync records that the sync in progress could not run.
func (c *Connection) FailSync(syncID uuid.UUID, reason FailureReason, at time.Time) ([]Event, error) {
	if c.syncing != syncID || syncID == uuid.Nil {
		return nil, ErrNoSuchSync
	}
	return []Event{SyncFailed{ConnectionID: c.id, SyncID: syncID, Reason: reason, At: at}}, nil
}

// Window returns the dates (YYYY-MM-DD, both inclusive) the next sync
// fetches, up to today: the first sync reaches FirstSyncYears back; later
// ones start overlapDays before the latest posted transaction date seen,
// to catch late postings, or earlier when a transaction still pending is
// older (oldestPending, empty when none), so that its posting is seen —
// but never before the first sync's reach.
func (c *Connection) Window(today time.Time, overlapDays int, oldestPending string) (from, to string) {
	day := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	floor := day.AddDate(-FirstSyncYears, 0, 0)
	start := floor
	if latest, err := time.Parse(time.DateOnly, c.latestPosted); err == nil {
		start = latest.AddDate(0, 0, -overlapDays)
		if pending, err := time.Parse(time.DateOnly, oldestPending); err == nil && pending.Before(start) {
			start = pending
		}
		start = maxTime(start, floor)
		if start.After(day) {
			start = day
		}
	}
	return start.Format(time.DateOnly), day.Format(time.DateOnly)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func validDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// Syncing returns the sync in progress (uuid.Nil: none) and when it started.
func (c *Connection) Syncing() (uuid.UUID, time.Time) { return c.syncing, c.syncStartedAt }

// SyncPicked reports whether a worker began the sync in progress.
func (c *Connection) SyncPicked() bool { return c.syncPickedUp }

// SyncTriggered returns the trigger and window of the sync in progress
// (or of the last one).
func (c *Connection) SyncTriggered() (SyncTrigger, string, string) {
	return c.syncTrigger, c.syncFrom, c.syncTo
}

// LastSyncAt returns when the last sync completed (zero: never).
func (c *Connection) LastSyncAt() time.Time { return c.lastSyncAt }

// LastSyncStartedAt returns when the last sync started (zero: never).
func (c *Connection) LastSyncStartedAt() time.Time { return c.syncStartedAt }

// LatestPosted returns the latest posted transaction date a completed sync
// saw (YYYY-MM-DD), empty when none yet.
func (c *Connection) LatestPosted() string { return c.latestPosted }
