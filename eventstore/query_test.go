package eventstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// The query tests declare their own events (prefixed query*) so that they do
// not depend on the fixtures of the other test files in this package.
type queryConnected struct {
	Institution string `json:"institution"`
}

type queryAccountOpened struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Name         string    `json:"name"`
}

type queryBalanceRecorded struct {
	Amount string `json:"amount"`
	// Nested mentions a connection below the top level, which the connection
	// filter must not match.
	Nested map[string]string `json:"nested,omitempty"`
}

func (queryConnected) EventType() string       { return "QueryConnected" }
func (queryAccountOpened) EventType() string   { return "QueryAccountOpened" }
func (queryBalanceRecorded) EventType() string { return "QueryBalanceRecorded" }

// queryLog is a small log with known owners, streams, payloads and times.
type queryLog struct {
	store        *eventstore.Store
	userA, userB uuid.UUID
	connA, connB eventstore.Stream
	acctA, acctB eventstore.Stream
	day1, day2   time.Time
	day3         time.Time
	pos          map[string]int64 // label -> global position
	order        []string         // labels in append order
}

func newQueryLog(t *testing.T) *queryLog {
	t.Helper()
	reg := eventstore.NewRegistry()
	eventstore.Register[queryConnected](reg, 1)
	eventstore.Register[queryAccountOpened](reg, 1)
	eventstore.Register[queryBalanceRecorded](reg, 1)
	l := &queryLog{
		userA: uuid.New(), userB: uuid.New(),
		connA: eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()},
		connB: eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()},
		acctA: eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()},
		acctB: eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()},
		day1:  time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC),
		day2:  time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC),
		day3:  time.Date(2026, 1, 3, 10, 0, 0, 0, time.UTC),
		pos:   map[string]int64{},
	}
	now := l.day1
	store, err := eventstore.New(testdb.New(t), reg, eventstore.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	l.store = store
	ctx := context.Background()
	appendAt := func(label string, at time.Time, owner uuid.UUID, stream eventstore.Stream, version int64, e eventstore.Event) {
		t.Helper()
		now = at
		res, err := store.Append(eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "test"}), stream, version, e)
		if err != nil {
			t.Fatalf("append %s: %v", label, err)
		}
		l.pos[label] = res.LastPosition
		l.order = append(l.order, label)
	}
	appendAt("connA1", l.day1, l.userA, l.connA, 0, queryConnected{Institution: "sandbox"})
	appendAt("acctA1", l.day1, l.userA, l.acctA, 0, queryAccountOpened{ConnectionID: l.connA.ID, Name: "checking"})
	appendAt("acctA2", l.day2, l.userA, l.acctA, 1, queryBalanceRecorded{Amount: "1.00", Nested: map[string]string{"connection_id": l.connA.ID.String()}})
	appendAt("connB1", l.day2, l.userB, l.connB, 0, queryConnected{Institution: "schwab"})
	appendAt("acctB1", l.day3, l.userB, l.acctB, 0, queryAccountOpened{ConnectionID: l.connB.ID, Name: "brokerage"})
	appendAt("connA2", l.day3, l.userA, l.connA, 1, queryConnected{Institution: "sandbox again"})
	appendAt("ownerless", l.day3, uuid.Nil, eventstore.Stream{Type: eventstore.StreamUser, ID: uuid.New()}, 0, queryConnected{})
	return l
}

func TestQueryFilters(t *testing.T) {
	l := newQueryLog(t)
	ptr := func(u uuid.UUID) *uuid.UUID { return &u }
	at := func(tm time.Time) *time.Time { return &tm }
	wrongType := eventstore.Stream{Type: eventstore.StreamUser, ID: l.acctA.ID}
	tests := []struct {
		name   string
		filter eventstore.Filter
		want   []string
	}{
		{"everything", eventstore.Filter{}, l.order},
		{"owner", eventstore.Filter{OwnerID: ptr(l.userA)}, []string{"connA1", "acctA1", "acctA2", "connA2"}},
		{"unknown owner", eventstore.Filter{OwnerID: ptr(uuid.New())}, nil},
		{"stream", eventstore.Filter{Stream: &l.acctA}, []string{"acctA1", "acctA2"}},
		{"stream id under another type", eventstore.Filter{Stream: &wrongType}, nil},
		// The connection's own stream plus top-level connection_id in
		// payloads; not the balance that mentions it only in a nested object.
		{"connection", eventstore.Filter{ConnectionID: ptr(l.connA.ID)}, []string{"connA1", "acctA1", "connA2"}},
		{"event types", eventstore.Filter{EventTypes: []string{"QueryAccountOpened", "QueryBalanceRecorded"}}, []string{"acctA1", "acctA2", "acctB1"}},
		{"from is inclusive", eventstore.Filter{From: at(l.day2)}, []string{"acctA2", "connB1", "acctB1", "connA2", "ownerless"}},
		{"to is exclusive", eventstore.Filter{To: at(l.day2)}, []string{"connA1", "acctA1"}},
		{"from-to range", eventstore.Filter{From: at(l.day2), To: at(l.day3)}, []string{"acctA2", "connB1"}},
		{"as-of is inclusive", eventstore.Filter{AsOf: at(l.day2)}, []string{"connA1", "acctA1", "acctA2", "connB1"}},
		{"as-of before everything", eventstore.Filter{AsOf: at(l.day1.Add(-time.Microsecond))}, nil},
		// Stored instants are whole microseconds; finer bounds must not
		// move across them.
		{"sub-microsecond from", eventstore.Filter{From: at(l.day2.Add(-time.Nanosecond))}, []string{"acctA2", "connB1", "acctB1", "connA2", "ownerless"}},
		{"sub-microsecond to", eventstore.Filter{To: at(l.day2.Add(time.Nanosecond))}, []string{"connA1", "acctA1", "acctA2", "connB1"}},
		{"sub-microsecond as-of", eventstore.Filter{AsOf: at(l.day2.Add(999 * time.Nanosecond))}, []string{"connA1", "acctA1", "acctA2", "connB1"}},
		{"owner and time", eventstore.Filter{OwnerID: ptr(l.userA), From: at(l.day2)}, []string{"acctA2", "connA2"}},
		{"connection and as-of", eventstore.Filter{ConnectionID: ptr(l.connA.ID), AsOf: at(l.day2)}, []string{"connA1", "acctA1"}},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int64
			err := l.store.Query(ctx, tc.filter, func(r eventstore.Record) error {
				got = append(got, r.GlobalPosition)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for _, label := range tc.want {
				want = append(want, l.pos[label])
			}
			if !slices.Equal(got, want) {
				t.Errorf("positions = %v, want %v (%v)", got, want, tc.want)
			}
			// Pages of any size, ending on a boundary or not, read the same.
			for _, page := range []int{1, 2, 3} {
				var paged []int64
				err := eventstore.QueryPaged(ctx, l.store, tc.filter, func(r eventstore.Record) error {
					paged = append(paged, r.GlobalPosition)
					return nil
				}, page)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(paged, want) {
					t.Errorf("pages of %d: positions = %v, want %v", page, paged, want)
				}
			}
			n, err := l.store.Count(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(want)) {
				t.Errorf("Count = %d, want %d", n, len(want))
			}
		})
	}
}

func TestQueryReturnsFullRecords(t *testing.T) {
	l := newQueryLog(t)
	var got []eventstore.Record
	err := l.store.Query(context.Background(), eventstore.Filter{Stream: &l.acctA}, func(r eventstore.Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2", len(got))
	}
	r := got[0]
	if r.Stream != l.acctA || r.Version != 1 || r.EventType != "QueryAccountOpened" || r.OwnerID != l.userA ||
		!r.RecordedAt.Equal(l.day1) || r.Metadata.Actor != "test" || len(r.Hash) != 32 || len(r.PrevHash) != 32 {
		t.Errorf("record = %+v", r)
	}
	if !slices.Equal(got[1].PrevHash, r.Hash) {
		t.Errorf("second record's prev_hash is not the first one's hash")
	}
	e, err := l.store.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if opened, ok := e.(queryAccountOpened); !ok || opened.ConnectionID != l.connA.ID {
		t.Errorf("decoded %#v", e)
	}
}

func TestQueryStopsAtCallbackError(t *testing.T) {
	l := newQueryLog(t)
	stop := errors.New("stop")
	calls := 0
	err := l.store.Query(context.Background(), eventstore.Filter{}, func(eventstore.Record) error {
		calls++
		return stop
	})
	if err != stop {
		t.Errorf("err = %v, want the callback's error unwrapped", err)
	}
	if calls != 1 {
		t.Errorf("callback ran %d times after returning an error, want 1", calls)
	}
}

func TestQueryHonoursCancellation(t *testing.T) {
	l := newQueryLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := l.store.Query(ctx, eventstore.Filter{}, func(eventstore.Record) error {
		cancel()
		return nil
	})
	// Rows already buffered may still be delivered; what matters is that the
	// cancellation surfaces as an error rather than a silently short replay.
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled or nil", err)
	}
	if err := l.store.Query(ctx, eventstore.Filter{}, func(eventstore.Record) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("query on a cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestQueryRefusesImpossibleFilters(t *testing.T) {
	store, err := eventstore.New(testdb.New(t), eventstore.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	later := day.Add(time.Hour)
	bad := eventstore.Stream{Type: "ledger", ID: uuid.New()}
	for name, f := range map[string]eventstore.Filter{
		"from equals to":   {From: &day, To: &day},
		"from after to":    {From: &later, To: &day},
		"from after as-of": {From: &later, AsOf: &day},
		"invalid stream":   {Stream: &bad},
		"empty event type": {EventTypes: []string{""}},
	} {
		t.Run(name, func(t *testing.T) {
			called := false
			err := store.Query(context.Background(), f, func(eventstore.Record) error { called = true; return nil })
			if err == nil || called {
				t.Errorf("Query err = %v, called = %v; want an error before any query", err, called)
			}
			if _, err := store.Count(context.Background(), f); err == nil {
				t.Errorf("Count accepted %+v", f)
			}
		})
	}
}

// TestVerifyInPagesMatchesOneQuery verifies a log of several streams in pages
// of every small size, across stream boundaries, with the same outcome.
func TestVerifyInPagesMatchesOneQuery(t *testing.T) {
	l := newQueryLog(t)
	ctx := context.Background()
	want, brk, err := l.store.VerifyChains(ctx, nil)
	if err != nil || brk != nil || want.Events != int64(len(l.order)) || want.Streams != 5 {
		t.Fatalf("verify: %+v, %v, %v", want, brk, err)
	}
	for _, page := range []int{1, 2, 3, 7} {
		got, brk, err := eventstore.VerifyChainsPaged(ctx, l.store, page)
		if err != nil || brk != nil || got.Events != want.Events || got.Streams != want.Streams || got.MalformedCount != 0 {
			t.Errorf("pages of %d: %+v, %v, %v; want %+v", page, got, brk, err, want)
		}
	}
}
