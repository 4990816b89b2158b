package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentWritersOneWinnerPerVersion races many writers at the same
// expected version, round after round, starting with the stream's creation:
// exactly one wins each round, the others get the typed conflict, and the
// stream stays contiguous.
func TestConcurrentWritersOneWinnerPerVersion(t *testing.T) {
	const writers, rounds = 16, 11
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamAccount)

	for round := 0; round < rounds; round++ {
		expected := int64(round)
		start := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, results[w] = s.Append(ctx, st, expected,
					counterIncremented{CommandID: fmt.Sprintf("r%d-w%d", round, w)})
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range results {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, eventstore.ErrConflict):
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		require.Equal(t, 1, wins, "round %d", round)
	}
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	require.Len(t, recs, rounds)
	for i, r := range recs {
		assert.EqualValues(t, i+1, r.Version)
		if i > 0 {
			assert.Equal(t, recs[i-1].Hash, r.PrevHash)
		}
	}
	_, brk, err := s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	assert.Nil(t, brk)
}

// TestUpdateAppliesEveryCommandOnce sends commands concurrently through the
// load-decide-append helper: every command is applied exactly once.
func TestUpdateAppliesEveryCommandOnce(t *testing.T) {
	const writers, perWriter = 8, 5
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamAccount)
	_, err := s.Append(ctx, st, 0, counterOpened{})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				cmd := fmt.Sprintf("w%d-%d", w, i)
				_, err := eventstore.Update(ctx, s, st, func(history []counterEvent) ([]counterEvent, error) {
					for _, e := range history {
						if inc, ok := e.(counterIncremented); ok && inc.CommandID == cmd {
							return nil, nil // already applied: idempotent
						}
					}
					return []counterEvent{counterIncremented{CommandID: cmd, Amount: "1"}}, nil
				})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	require.Len(t, recs, 1+writers*perWriter)
	seen := map[string]int{}
	for i, r := range recs {
		assert.EqualValues(t, i+1, r.Version)
		e, err := s.Decode(r)
		require.NoError(t, err)
		if inc, ok := e.(counterIncremented); ok {
			seen[inc.CommandID]++
		}
	}
	assert.Len(t, seen, writers*perWriter)
	for cmd, n := range seen {
		assert.Equal(t, 1, n, cmd)
	}
}

func TestUpdateDecidesNothing(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamUser)
	res, err := eventstore.Update(ctx, s, st, func(h []counterEvent) ([]counterEvent, error) { return nil, nil })
	require.NoError(t, err)
	assert.EqualValues(t, 0, res.Version)
	wantErr := errors.New("refused")
	_, err = eventstore.Update(ctx, s, st, func(h []counterEvent) ([]counterEvent, error) { return nil, wantErr })
	assert.ErrorIs(t, err, wantErr)
}
