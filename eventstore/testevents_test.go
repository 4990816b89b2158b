package eventstore_test

import (
	"testing"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/google/uuid"
)

// counterEvent is the event interface of a tiny test aggregate: a counter that
// may only be incremented by one known command id at a time.
type counterEvent interface {
	eventstore.Event
	isCounterEvent()
}

type counterOpened struct {
	Name string `json:"name"`
}

type counterIncremented struct {
	CommandID string `json:"command_id"`
	Amount    string `json:"amount"`
}

func (counterOpened) EventType() string      { return "CounterOpened" }
func (counterIncremented) EventType() string { return "CounterIncremented" }
func (counterOpened) isCounterEvent()        {}
func (counterIncremented) isCounterEvent()   {}

func testRegistry() *eventstore.Registry {
	r := eventstore.NewRegistry()
	eventstore.Register[counterOpened](r, 1)
	eventstore.Register[counterIncremented](r, 1)
	return r
}

// mustStore returns a store over a fresh, migrated database.
func mustStore(tb testing.TB, opts ...eventstore.Option) *eventstore.Store {
	tb.Helper()
	s, err := eventstore.New(testdb.New(tb), testRegistry(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newStream(t eventstore.StreamType) eventstore.Stream {
	return eventstore.Stream{Type: t, ID: uuid.New()}
}
