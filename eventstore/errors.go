package eventstore

import (
	"errors"
	"fmt"
)

// ConflictError reports that a stream was not at the version the writer
// expected: another writer got there first. Nothing of the losing batch is
// stored. Retry in a new transaction: load the stream again and decide again.
type ConflictError struct {
	Stream   Stream
	Expected int64
	// NewerHead is set when the stream was at the expected version but its
	// head was written by a transaction newer than the appender's: appended
	// after it, the new events would be delivered before it (docs/event-store.md,
	// "Per-stream order"). Only AppendTx meets this; a new transaction is newer
	// than every head it can see, so the retry's append goes through.
	NewerHead bool
}

// Error describes the conflict.
func (e *ConflictError) Error() string {
	if e.NewerHead {
		return fmt.Sprintf("append to %s: version %d was written by a newer transaction; retry in a new transaction", e.Stream, e.Expected)
	}
	return fmt.Sprintf("append to %s: stream is not at expected version %d", e.Stream, e.Expected)
}

// Is lets errors.Is(err, ErrConflict) match any ConflictError.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrConflict matches every ConflictError through errors.Is.
var ErrConflict = errors.New("eventstore: version conflict")

// ErrDuplicateEvent reports an event id that is already in the log.
var ErrDuplicateEvent = errors.New("eventstore: duplicate event id")

// ErrUnknownEventType reports a stored or appended event type the registry does not know.
var ErrUnknownEventType = errors.New("eventstore: unknown event type")
