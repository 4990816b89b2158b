package fanout

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// The integration event types: the public contract, described in
// web/openapi.yaml (its webhooks section) and docs/events.md. A type's
// meaning never changes; a change to its data that could break a consumer
// is a new Version of it.
const (
	TypeConnectionStatusChanged           = "connection.status_changed"
	TypeConnectionReauthorizationRequired = "connection.reauthorization_required"
	TypeSyncStarted                       = "sync.started"
	TypeSyncCompleted                     = "sync.completed"
	TypeSyncFailed                        = "sync.failed"
	TypeAccountUpdated                    = "account.updated"
	TypeTransactionsChanged               = "transactions.changed"
	TypeHoldingsChanged                   = "holdings.changed"
	// TypeWebhookTest is sent only by POST /webhooks/{id}/tests; it is never
	// derived from the log, published or streamed.
	TypeWebhookTest = "webhook.test"
)

// Types lists the event types derived from the log, the ones a webhook
// endpoint may subscribe to, in the order docs/events.md lists them.
var Types = []string{
	TypeConnectionStatusChanged, TypeConnectionReauthorizationRequired,
	TypeSyncStarted, TypeSyncCompleted, TypeSyncFailed,
	TypeAccountUpdated, TypeTransactionsChanged, TypeHoldingsChanged,
}

// KnownType reports whether t is one of Types.
func KnownType(t string) bool {
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Version is the schema version every event type is at today.
const Version = 1

// Event is one integration event: the envelope every sink, webhook and
// stream carries, and its type's data. Its JSON form (Marshal) is the
// wire format.
type Event struct {
	// ID is stable: UUIDv5 of the event that caused it, its type and, when
	// one domain event causes several of a type, what tells them apart. A
	// consumer deduplicates on it.
	ID uuid.UUID `json:"id"`
	// Type and Version name the data's schema.
	Type    string `json:"type"`
	Version int    `json:"version"`
	// UserID is the user the event belongs to: the owner of the stream
	// that caused it.
	UserID uuid.UUID `json:"user_id"`
	// Position is the causing event's global_position in the log. Events
	// are delivered in commit order, which may differ from position order
	// across streams; within one stream the two agree.
	Position int64 `json:"position"`
	// Timestamp is when the causing event was recorded.
	Timestamp time.Time `json:"timestamp"`
	// Data is the type's payload, one of the *Data types below.
	Data any `json:"data"`

	// TransactionID is the causing event's transaction id: with Position,
	// its place in commit order, which the live stream resumes from.
	TransactionID uint64 `json:"-"`
	// Seq tells apart the events one domain event causes, in the order
	// they are derived.
	Seq int `json:"-"`
}

// Marshal returns the wire form of e: compact JSON, the exact bytes a
// webhook signs and a broker carries.
func (e Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// ConnectionStatusChangedData is the data of connection.status_changed:
// the connection's status moved (created as pending, became active, failed,
// needs re-authorisation, disconnected).
type ConnectionStatusChangedData struct {
	ConnectionID   uuid.UUID `json:"connection_id"`
	ProviderSlug   string    `json:"provider_slug"`
	Status         string    `json:"status"`
	PreviousStatus string    `json:"previous_status,omitempty"`
	// Reason says why, for failed and needs_reauth.
	Reason string `json:"reason,omitempty"`
}

// ConnectionReauthorizationRequiredData is the data of
// connection.reauthorization_required: the provider refused the
// credentials or they reached their end; the user must authorise again.
type ConnectionReauthorizationRequiredData struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	ProviderSlug string    `json:"provider_slug"`
	Reason       string    `json:"reason"`
}

// SyncStartedData is the data of sync.started.
type SyncStartedData struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	SyncID       uuid.UUID `json:"sync_id"`
	Trigger      string    `json:"trigger"`
}

// SyncCounts are what a sync did to the transactions it saw.
type SyncCounts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// SyncAccountError is one account a sync could not bring up to date.
type SyncAccountError struct {
	AccountID uuid.UUID `json:"account_id"`
	Reason    string    `json:"reason"`
}

// SyncCompletedData is the data of sync.completed.
type SyncCompletedData struct {
	ConnectionID  uuid.UUID          `json:"connection_id"`
	SyncID        uuid.UUID          `json:"sync_id"`
	Accounts      int                `json:"accounts"`
	Counts        SyncCounts         `json:"counts"`
	AccountErrors []SyncAccountError `json:"account_errors"`
}

// SyncFailedData is the data of sync.failed.
type SyncFailedData struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	SyncID       uuid.UUID `json:"sync_id"`
	Reason       string    `json:"reason"`
}

// The changes account.updated reports.
const (
	AccountOpened          = "opened"
	AccountDetailsChanged  = "details_changed"
	AccountBalanceRecorded = "balance_recorded"
	AccountClosed          = "closed"
)

// AccountUpdatedData is the data of account.updated: an account was
// opened, its details changed (Changed names the fields, never their
// values), a new balance was recorded, or it was closed.
type AccountUpdatedData struct {
	AccountID    uuid.UUID `json:"account_id"`
	ConnectionID uuid.UUID `json:"connection_id"`
	Change       string    `json:"change"`
	Changed      []string  `json:"changed"`
	AccountType  string    `json:"account_type,omitempty"`
	IsActive     bool      `json:"is_active"`
}

// TransactionsChangedData is the data of transactions.changed: what a
// completed sync did to one account's transactions. Cursor is a change-feed
// cursor just past those changes: a client following the feed from its
// own cursor until has_more is false holds them.
type TransactionsChangedData struct {
	AccountID    uuid.UUID `json:"account_id"`
	ConnectionID uuid.UUID `json:"connection_id"`
	SyncID       uuid.UUID `json:"sync_id"`
	Added        int       `json:"added"`
	Modified     int       `json:"modified"`
	Removed      int       `json:"removed"`
	Cursor       string    `json:"cursor"`
}

// HoldingsChangedData is the data of holdings.changed: a sync recorded
// positions that differ from the last ones; Holdings counts them.
type HoldingsChangedData struct {
	AccountID    uuid.UUID `json:"account_id"`
	ConnectionID uuid.UUID `json:"connection_id"`
	SyncID       uuid.UUID `json:"sync_id"`
	Holdings     int       `json:"holdings"`
}

// WebhookTestData is the data of webhook.test.
type WebhookTestData struct {
	WebhookID uuid.UUID `json:"webhook_id"`
}

// idNamespace is the UUIDv5 namespace of integration event ids.
var idNamespace = uuid.MustParse("5f0c4d1e-3a52-4d87-9b0e-8a5e6f2b1c40")

// eventID derives an integration event's id from the id of the event that
// caused it, its type and a discriminator (empty, or what tells apart
// several events of one type from one domain event).
func eventID(cause uuid.UUID, typ, discriminator string) uuid.UUID {
	b := make([]byte, 0, 16+len(typ)+1+len(discriminator))
	b = append(b, cause[:]...)
	b = append(b, typ...)
	b = append(b, 0)
	b = append(b, discriminator...)
	return uuid.NewSHA1(idNamespace, b)
}
