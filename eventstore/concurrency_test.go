package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
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
// generic load-decide-append path, with and without per-stream
// serialisation, and through UpdateAlone (no transaction around the
// load and the append): every command is applied exactly once.
func TestUpdateAppliesEveryCommandOnce(t *testing.T) {
	for _, mode := range []string{"serialize=false", "serialize=true", "alone"} {
		serialize := mode == "serialize=true"
		t.Run(mode, func(t *testing.T) {
			const writers, perWriter = 8, 5
			s := mustStore(t)
			repo := mustCounters(t, s, func(a *eventstore.Aggregate[*counter, counterEvent]) { a.Serialize = serialize })
			ctx := context.Background()
			id := uuid.New()
			_, err := s.Append(ctx, repo.Stream(id), 0, counterOpened{})
			require.NoError(t, err)

			var wg sync.WaitGroup
			errs := make(chan error, writers*perWriter)
			for w := 0; w < writers; w++ {
				wg.Go(func() {
					for i := 0; i < perWriter; i++ {
						decide := increment(fmt.Sprintf("w%d-%d", w, i))
						var err error
						if mode == "alone" {
							_, err = repo.UpdateAlone(ctx, id, func(c *counter) (eventstore.Decision[counterEvent], error) {
								return decide(ctx, nil, c)
							})
						} else {
							_, err = repo.Update(ctx, id, decide)
						}
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			recs, err := s.ReadStream(ctx, repo.Stream(id), 0)
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
		})
	}
}

// TestUpdateDecidesNothing: a decision without events appends nothing, and
// an error aborts with that error.
func TestUpdateDecidesNothing(t *testing.T) {
	s := mustStore(t)
	repo := mustCounters(t, s)
	ctx := context.Background()
	id := uuid.New()
	res, err := repo.Update(ctx, id, func(context.Context, *eventstore.Tx, *counter) (eventstore.Decision[counterEvent], error) {
		return eventstore.Decision[counterEvent]{}, nil
	})
	require.NoError(t, err)
	assert.EqualValues(t, 0, res.Version)
	wantErr := errors.New("refused")
	_, err = repo.Update(ctx, id, func(context.Context, *eventstore.Tx, *counter) (eventstore.Decision[counterEvent], error) {
		return eventstore.Decision[counterEvent]{}, wantErr
	})
	assert.ErrorIs(t, err, wantErr)
	recs, err := s.ReadStream(ctx, repo.Stream(id), 0)
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// TestSerializedDecisionsNeverConflict: with Aggregate.Serialize, writers of
// one stream queue on its lock, so each decides exactly once, against the
// state every earlier writer left, instead of conflicting and deciding again.
func TestSerializedDecisionsNeverConflict(t *testing.T) {
	const writers = 24
	s := mustStoreConns(t, writers+2)
	repo := mustCounters(t, s, func(a *eventstore.Aggregate[*counter, counterEvent]) { a.Serialize = true })
	ctx := context.Background()
	id := uuid.New()
	var (
		mu        sync.Mutex
		decisions int
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			<-start
			inc := increment(fmt.Sprintf("w%d", w))
			_, errs[w] = repo.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *counter) (eventstore.Decision[counterEvent], error) {
				mu.Lock()
				decisions++
				mu.Unlock()
				return inc(ctx, tx, c)
			})
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, writers, decisions, "a serialised writer decided more than once")
	recs, err := s.ReadStream(ctx, repo.Stream(id), 0)
	require.NoError(t, err)
	assert.Len(t, recs, writers)
}
