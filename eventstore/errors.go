package eventstore

import (
	"errors"
	"fmt"
)

// ConflictError reports that a stream was not at the version the writer
// expected: another writer got there first. Nothing of the losing batch is stored.
type ConflictError struct {
	Stream   Stream
	Expected int64
}

// Error describes the conflict.
func (e *ConflictError) Error() string {
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
