// Package audit holds the use cases of the audit API: reading the log
// ("who did what to which connection"), each event with its chain hashes
// and its inclusion proof in a signed checkpoint, the checkpoints with
// their consistency proofs, and any aggregate's state as of a moment
// ("what did the account look like then"). Every use is itself recorded,
// before anything is shown, as a UserAuditTrailViewed event on the
// viewer's stream through the generic path: the audit of the auditors.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Service is the audit API the web layer consumes. Every method records the
// view on p's stream first and fails, showing nothing, if it cannot.
// Errors: *InvalidError (bad input, 422), ErrNotFound, user.ErrNotPermitted.
type Service interface {
	// Events lists the events matching q in log order, a page at a time.
	Events(ctx context.Context, p commands.Principal, q EventQuery, rc commands.RequestContext) (EventPage, error)
	// Event returns one event with its chain hashes and its inclusion proof
	// in the newest checkpoint, when one covers it.
	Event(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) (EventDetail, error)
	// Checkpoints lists the signed checkpoints, newest first.
	Checkpoints(ctx context.Context, p commands.Principal, q CheckpointQuery, rc commands.RequestContext) (CheckpointPage, error)
	// Checkpoint returns checkpoint seq with its consistency proof to the previous one.
	Checkpoint(ctx context.Context, p commands.Principal, seq int64, rc commands.RequestContext) (eventstore.Checkpoint, error)
	// StreamState returns an aggregate's state as of a moment (now when q.AsOf is nil).
	StreamState(ctx context.Context, p commands.Principal, q StateQuery, rc commands.RequestContext) (State, error)
}

// ErrNotFound means the event, checkpoint or stream (as of the moment) does not exist.
var ErrNotFound = errors.New("not found")

// InvalidError is input the API cannot answer: malformed or contradictory
// filters, an unknown stream type, a cursor of another query. Field names
// the parameter; Message says what is wrong without repeating the value.
type InvalidError struct {
	Field   string
	Message string
}

// Error renders the field and the message.
func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Page size limits of the list routes.
const (
	DefaultLimit = 50
	MaxLimit     = 100
)

// EventQuery is a list request as received: each filter nil when absent.
type EventQuery struct {
	UserID    *string
	Stream    *string
	EventType *string
	Actor     *string
	From      *string
	To        *string
	Cursor    *string
	Limit     int
}

// EventPage is one page of events and the cursor of the next ("" at the end).
type EventPage struct {
	Events     []Event
	NextCursor string
}

// Event is one event as auditors see it.
type Event struct {
	ID            uuid.UUID
	Position      int64
	TransactionID uint64
	Stream        eventstore.Stream
	Version       int64
	Type          string
	SchemaVersion int
	OwnerID       *uuid.UUID
	RecordedAt    time.Time
	Actor         string
	Metadata      json.RawMessage
	Payload       json.RawMessage
}

// EventDetail is an event with its place in the hash chain and in the
// signed checkpoints.
type EventDetail struct {
	Event
	PrevHash []byte
	Hash     []byte
	// Proof is nil when no checkpoint covers the event yet.
	Proof *eventstore.InclusionProof
	// ProofVerified says whether the proof folds the event's leaf to the
	// checkpoint's root here; false means the event changed after the
	// checkpoint covered it.
	ProofVerified bool
}

// CheckpointQuery is a checkpoint list request as received.
type CheckpointQuery struct {
	Cursor *string
	Limit  int
}

// CheckpointPage is one page of checkpoints, newest first.
type CheckpointPage struct {
	Checkpoints []eventstore.Checkpoint
	NextCursor  string
}

// StateQuery asks for one stream's state as received: the type as given
// in the path, the id, and the moment (nil: now).
type StateQuery struct {
	Type string
	ID   uuid.UUID
	AsOf *string
}

// State is an aggregate's state at a moment.
type State struct {
	eventstore.StateView
	AsOf time.Time
}
