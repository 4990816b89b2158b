package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// MaxMetadataFieldBytes bounds each metadata string. Values come from request
// headers and command handlers; the web layer already cuts the User-Agent to
// 512 bytes, so anything longer is a caller's bug, refused before it enters
// the immutable log for good.
const MaxMetadataFieldBytes = 1024

// ErrInvalidMetadata reports metadata an append refuses: a value too long or
// one jsonb cannot store.
var ErrInvalidMetadata = errors.New("eventstore: invalid metadata")

// validate checks md before it is encoded for an append. Every known key is a
// Go string, so its JSON type is right by construction (migration 00009 holds
// rows written by other means to the same shape); what is left to check is
// length and NUL, which jsonb rejects with an error far from its cause.
func (md Metadata) validate() error {
	for _, f := range []struct{ key, value string }{
		{"actor", md.Actor}, {"correlation_id", md.CorrelationID}, {"causation_id", md.CausationID},
		{"request_id", md.RequestID}, {"trace_id", md.TraceID}, {"ip", md.IP},
		{"user_agent", md.UserAgent}, {"command", md.Command},
	} {
		if len(f.value) > MaxMetadataFieldBytes {
			return fmt.Errorf("%w: %s is %d bytes (max %d)", ErrInvalidMetadata, f.key, len(f.value), MaxMetadataFieldBytes)
		}
		if strings.IndexByte(f.value, 0) >= 0 {
			return fmt.Errorf("%w: %s contains a NUL character", ErrInvalidMetadata, f.key)
		}
	}
	return nil
}
