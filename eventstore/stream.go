package eventstore

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// StreamType names the kind of aggregate a stream belongs to; the set is fixed
// by the schema's CHECK constraint.
type StreamType string

// The stream types of docs/event-store.md.
const (
	StreamConnection  StreamType = "connection"
	StreamAccount     StreamType = "account"
	StreamTransaction StreamType = "transaction"
	StreamUser        StreamType = "user"
)

// StreamTypes lists every valid stream type, for validation and help texts.
var StreamTypes = []StreamType{StreamConnection, StreamAccount, StreamTransaction, StreamUser}

// Valid reports whether t is one of the known stream types.
func (t StreamType) Valid() bool {
	for _, k := range StreamTypes {
		if t == k {
			return true
		}
	}
	return false
}

// streamTypeList renders StreamTypes for messages, so they follow the list.
func streamTypeList() string {
	names := make([]string, len(StreamTypes))
	for i, t := range StreamTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// Stream identifies one event stream: an aggregate instance.
type Stream struct {
	Type StreamType
	ID   uuid.UUID
}

// String renders the stream as TYPE:ID, the form the command line accepts.
func (s Stream) String() string { return string(s.Type) + ":" + s.ID.String() }

// ParseStream parses the TYPE:ID form, e.g. "connection:0190...".
func ParseStream(s string) (Stream, error) {
	typ, id, ok := strings.Cut(s, ":")
	if !ok {
		return Stream{}, fmt.Errorf("stream %q: want TYPE:ID", s)
	}
	t := StreamType(typ)
	if !t.Valid() {
		return Stream{}, fmt.Errorf("stream %q: unknown type %q (want one of %s)", s, typ, streamTypeList())
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return Stream{}, fmt.Errorf("stream %q: id is not a UUID", s)
	}
	return Stream{Type: t, ID: u}, nil
}
