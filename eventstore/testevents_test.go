package eventstore_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
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

// mustStoreConns is mustStore over a pool of up to n connections, for tests
// whose concurrency must reach the database rather than queue in the pool.
func mustStoreConns(tb testing.TB, n int32) *eventstore.Store {
	tb.Helper()
	s, err := eventstore.New(testdb.NewWithConns(tb, n), testRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newStream(t eventstore.StreamType) eventstore.Stream {
	return eventstore.Stream{Type: t, ID: uuid.New()}
}

// counter is the state of the test aggregate: which commands it applied.
type counter struct {
	id      uuid.UUID
	opened  bool
	applied map[string]bool
}

func newCounter(id uuid.UUID) *counter { return &counter{id: id, applied: map[string]bool{}} }

func (c *counter) apply(e counterEvent) {
	switch e := e.(type) {
	case counterOpened:
		c.opened = true
	case counterIncremented:
		c.applied[e.CommandID] = true
	}
}

// increment decides counterIncremented once per command id: idempotent.
func increment(cmd string) eventstore.DecideFunc[*counter, counterEvent] {
	return func(_ context.Context, _ *eventstore.Tx, c *counter) (eventstore.Decision[counterEvent], error) {
		if c.applied[cmd] {
			return eventstore.Decision[counterEvent]{}, nil
		}
		return eventstore.Decision[counterEvent]{Events: []counterEvent{counterIncremented{CommandID: cmd, Amount: "1"}}}, nil
	}
}

// counterAggregate describes the counter to the generic path.
func counterAggregate() eventstore.Aggregate[*counter, counterEvent] {
	return eventstore.Aggregate[*counter, counterEvent]{
		Type:  eventstore.StreamAccount,
		New:   newCounter,
		Apply: (*counter).apply,
	}
}

// mustCounters returns the counter repository over s, adjusted by opts.
func mustCounters(tb testing.TB, s *eventstore.Store, opts ...func(*eventstore.Aggregate[*counter, counterEvent])) *eventstore.Repository[*counter, counterEvent] {
	tb.Helper()
	agg := counterAggregate()
	for _, o := range opts {
		o(&agg)
	}
	r, err := eventstore.NewRepository(s, agg)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}
