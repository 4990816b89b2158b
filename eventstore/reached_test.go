package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/eventstore"
)

// TestReachedNotesCommittedAppends: a request's context learns the highest
// position its committed appends reached, through Append and Transact
// alike, and nothing of a unit of work that failed.
func TestReachedNotesCommittedAppends(t *testing.T) {
	t.Parallel()
	s := mustStore(t)
	ctx, reached := eventstore.WithReached(context.Background())
	if reached.Position() != 0 {
		t.Fatalf("position %d before any append", reached.Position())
	}
	a := eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}
	res, err := s.Append(ctx, a, 0, counterOpened{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if reached.Position() != res.LastPosition {
		t.Fatalf("after Append: position %d, want %d", reached.Position(), res.LastPosition)
	}

	b := eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}
	var last int64
	err = s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		r1, err := tx.Append(ctx, b, 0, counterOpened{Name: "b"}, counterIncremented{CommandID: "1", Amount: "1"})
		if err != nil {
			return err
		}
		m, err := tx.AppendMany(ctx, []eventstore.StreamEvent{{Stream: eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()},
			Event: counterOpened{Name: "c"}}})
		last = max(r1.LastPosition, m)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if reached.Position() != last || last <= res.LastPosition {
		t.Fatalf("after Transact: position %d, want %d", reached.Position(), last)
	}

	errStop := errors.New("stop")
	err = s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		if _, err := tx.Append(ctx, eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}, 0, counterOpened{Name: "d"}); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	if reached.Position() != last {
		t.Fatalf("a rolled-back unit of work moved the position to %d", reached.Position())
	}
	// A context without Reached is simply not told.
	if _, err := s.Append(context.Background(), a, 1, counterIncremented{CommandID: "2", Amount: "1"}); err != nil {
		t.Fatal(err)
	}
	if reached.Position() != last {
		t.Fatalf("another context's append moved the position to %d", reached.Position())
	}
}
