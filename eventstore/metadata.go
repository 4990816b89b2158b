package eventstore

import (
	"context"

	"github.com/google/uuid"
)

// Metadata explains who caused an event and why: it travels with every event
// so that the log alone answers compliance questions.
type Metadata struct {
	// OwnerID is the user the stream belongs to; it is stored in its own
	// indexed column so the audit trail can be filtered by user.
	OwnerID       uuid.UUID `json:"-"`
	Actor         string    `json:"actor,omitempty"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	RequestID     string    `json:"request_id,omitempty"`
	TraceID       string    `json:"trace_id,omitempty"`
	IP            string    `json:"ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	Command       string    `json:"command,omitempty"`
}

type metadataKey struct{}

// WithMetadata returns a context whose appends carry md; the web layer and
// command handlers set it once per request instead of threading it through
// every call.
func WithMetadata(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, md)
}

// MetadataFrom returns the metadata stored in ctx, or the zero value.
func MetadataFrom(ctx context.Context) Metadata {
	md, _ := ctx.Value(metadataKey{}).(Metadata)
	return md
}
