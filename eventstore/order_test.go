package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// sideTable creates a table outside the log for transactions to write to
// before they append, which fixes their transaction id early.
func sideTable(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	// Created by the owner, whose default privileges give the application
	// role, which may create nothing, the right to write it.
	_, err := testdb.Owner(t, pool).Exec(context.Background(), `CREATE TABLE side_writes (note text NOT NULL)`)
	require.NoError(t, err)
}

// writeSide writes a row outside the log in tx, and returns tx's id.
func writeSide(ctx context.Context, tx pgx.Tx, note string) (uint64, error) {
	var xid uint64
	err := tx.QueryRow(ctx, `INSERT INTO side_writes (note) VALUES ($1) RETURNING pg_current_xact_id()`, note).Scan(&xid)
	return xid, err
}

// readAllInOrder reads the whole log in commit order once every transaction
// has ended, and checks that each stream's versions arrive as 1, 2, 3, ...
func readAllInOrder(t *testing.T, s *eventstore.Store, want int) []eventstore.Record {
	t.Helper()
	var got []eventstore.Record
	// The horizon is cluster-wide: wait for other packages' transactions too.
	require.Eventually(t, func() bool {
		var err error
		got, err = s.ReadAll(context.Background(), eventstore.Position{}, 10_000)
		require.NoError(t, err)
		return len(got) == want
	}, time.Minute, 5*time.Millisecond)
	last := map[uuid.UUID]int64{}
	for _, r := range got {
		require.Equal(t, last[r.Stream.ID]+1, r.Version, "%s delivered version %d after %d", r.Stream, r.Version, last[r.Stream.ID])
		last[r.Stream.ID] = r.Version
	}
	return got
}

// TestAppendTxAfterAnotherWriteRefusesANewerHead: a transaction that wrote
// before appending has an older id than a head committed meanwhile; its
// append would be delivered before that head, so it is refused as a conflict,
// and the same work in a new transaction goes through.
func TestAppendTxAfterAnotherWriteRefusesANewerHead(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	pool := s.Pool()
	sideTable(t, pool)
	st := newStream(eventstore.StreamAccount)
	_, err := s.Append(ctx, st, 0, counterOpened{})
	require.NoError(t, err)

	old, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer old.Rollback(ctx)
	oldXID, err := writeSide(ctx, old, "first")
	require.NoError(t, err)

	// Committed while old is open: version 2 has the newer transaction id.
	_, err = s.Append(ctx, st, 1, counterIncremented{CommandID: "meanwhile", Amount: "1"})
	require.NoError(t, err)
	recs, err := s.ReadStream(ctx, st, 1)
	require.NoError(t, err)
	require.Greater(t, recs[0].TransactionID, oldXID)

	_, err = s.AppendTx(ctx, old, st, 2, counterIncremented{CommandID: "late", Amount: "1"})
	var ce *eventstore.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, eventstore.ErrConflict)
	assert.True(t, ce.NewerHead, "the head is there, written by a newer transaction")
	assert.EqualValues(t, 2, ce.Expected)
	assert.Contains(t, err.Error(), "newer transaction")
	// The batch form refuses the same head.
	_, err = s.AppendTx(ctx, old, st, 2, counterIncremented{CommandID: "late-a"}, counterIncremented{CommandID: "late-b"})
	require.ErrorAs(t, err, &ce)
	assert.True(t, ce.NewerHead)
	require.NoError(t, old.Rollback(ctx))

	// A stale expected version is still the plain conflict, also in a transaction.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, tx, st, 5, counterIncremented{CommandID: "stale"})
	require.ErrorAs(t, err, &ce)
	assert.False(t, ce.NewerHead)
	require.NoError(t, tx.Rollback(ctx))

	// The retry, in a new transaction, is newer than the head.
	retry, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer retry.Rollback(ctx)
	_, err = writeSide(ctx, retry, "retry")
	require.NoError(t, err)
	res, err := s.AppendTx(ctx, retry, st, 2, counterIncremented{CommandID: "late", Amount: "1"})
	require.NoError(t, err)
	assert.EqualValues(t, 3, res.Version)
	require.NoError(t, retry.Commit(ctx))

	readAllInOrder(t, s, 3)
}

// TestAppendTxToTwoStreams: a transaction appending to two streams is
// refused when its second stream's head is newer than the transaction, and
// allowed otherwise.
func TestAppendTxToTwoStreams(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	pool := s.Pool()
	x, y := newStream(eventstore.StreamAccount), newStream(eventstore.StreamTransaction)
	_, err := s.Append(ctx, y, 0, counterOpened{})
	require.NoError(t, err)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = s.AppendTx(ctx, tx, x, 0, counterOpened{}) // takes tx's id
	require.NoError(t, err)
	_, err = s.Append(ctx, y, 1, counterIncremented{CommandID: "meanwhile"})
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, tx, y, 2, counterIncremented{CommandID: "late"})
	var ce *eventstore.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.True(t, ce.NewerHead)
	require.NoError(t, tx.Rollback(ctx))

	retry, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer retry.Rollback(ctx)
	_, err = s.AppendTx(ctx, retry, x, 0, counterOpened{})
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, retry, y, 2, counterIncremented{CommandID: "late"})
	require.NoError(t, err)
	require.NoError(t, retry.Commit(ctx))

	got := readAllInOrder(t, s, 4)
	assert.Equal(t, got[2].TransactionID, got[3].TransactionID, "one transaction wrote both streams")
}

// TestAppendTxTwiceToOneStream: a transaction may extend a stream it has
// already appended to. Its head then has the transaction's own id, which is
// not below it, yet it is no hazard: within one transaction the log is
// delivered in position order, which is the order of the appends.
func TestAppendTxTwiceToOneStream(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	fresh, existing := newStream(eventstore.StreamTransaction), newStream(eventstore.StreamAccount)
	_, err := s.Append(ctx, existing, 0, counterOpened{})
	require.NoError(t, err)

	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	for _, step := range []struct {
		stream   eventstore.Stream
		expected int64
		events   []eventstore.Event
	}{
		{fresh, 0, []eventstore.Event{counterOpened{}}},
		{existing, 1, []eventstore.Event{counterIncremented{CommandID: "a"}}},
		{fresh, 1, []eventstore.Event{counterIncremented{CommandID: "b"}}},
		{existing, 2, []eventstore.Event{counterIncremented{CommandID: "c"}, counterIncremented{CommandID: "d"}}},
		{fresh, 2, []eventstore.Event{counterIncremented{CommandID: "e"}, counterIncremented{CommandID: "f"}}},
		{existing, 4, []eventstore.Event{counterIncremented{CommandID: "g"}}},
	} {
		_, err := s.AppendTx(ctx, tx, step.stream, step.expected, step.events...)
		require.NoError(t, err, "%s at %d", step.stream, step.expected)
	}
	require.NoError(t, tx.Commit(ctx))

	got := readAllInOrder(t, s, 1+4+4)
	for _, r := range got[1:] {
		assert.Equal(t, got[1].TransactionID, r.TransactionID)
	}
	_, brk, err := s.VerifyChains(ctx, nil)
	require.NoError(t, err)
	assert.Nil(t, brk)
}

// orderWorkload is the shared state of TestPerStreamOrderUnderConcurrentWriters.
type orderWorkload struct {
	s       *eventstore.Store
	streams []eventstore.Stream

	mu         sync.Mutex
	committedC *sync.Cond
	newestXID  uint64            // the highest committed transaction id
	newest     eventstore.Stream // a stream that transaction wrote
	freeDone   int               // free writers that finished

	events       atomic.Int64 // events committed
	newerHead    atomic.Int64 // conflicts with a head of a newer transaction
	staleVersion atomic.Int64 // conflicts with a stream that moved
	outOfOrder   atomic.Int64 // commits after a newer transaction's commit
}

// attempt runs one transaction: optionally a write outside the log, then an
// append to each stream choose returns (choose runs with the transaction
// open, after the first write; it is given the transaction's id, 0 when it
// has none yet), in id order so that two transactions cannot deadlock, each
// at the version the transaction reads. It reports the streams and whether
// the transaction committed: false after a conflict.
func (w *orderWorkload) attempt(ctx context.Context, note string, writeFirst bool, choose func(xid uint64) []eventstore.Stream) ([]eventstore.Stream, bool, error) {
	tx, err := w.s.Pool().Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(ctx)
	var xid uint64
	if writeFirst {
		if xid, err = writeSide(ctx, tx, note); err != nil {
			return nil, false, err
		}
	}
	streams := slices.Clone(choose(xid))
	slices.SortFunc(streams, func(a, b eventstore.Stream) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	streams = slices.Compact(streams)
	for _, st := range streams {
		var version int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1`, st.ID).Scan(&version); err != nil {
			return nil, false, err
		}
		_, err := w.s.AppendTx(ctx, tx, st, version, counterIncremented{CommandID: note, Amount: "1"})
		var ce *eventstore.ConflictError
		switch {
		case errors.As(err, &ce) && ce.NewerHead:
			w.newerHead.Add(1)
			return streams, false, nil
		case errors.As(err, &ce):
			w.staleVersion.Add(1)
			return streams, false, nil
		case err != nil:
			return nil, false, err
		}
	}
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()`).Scan(&xid); err != nil {
		return nil, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, err
	}
	w.s.Committed()
	w.events.Add(int64(len(streams)))
	w.mu.Lock()
	if xid < w.newestXID {
		w.outOfOrder.Add(1)
	} else {
		w.newestXID, w.newest = xid, streams[len(streams)-1]
	}
	w.committedC.Broadcast()
	w.mu.Unlock()
	return streams, true, nil
}

// waitForNewer blocks until a transaction newer than xid has committed, and
// returns a stream it wrote; or, once every free writer has finished (holders
// never wait for each other), returns the zero Stream.
func (w *orderWorkload) waitForNewer(xid uint64, freeWriters int) eventstore.Stream {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.newestXID <= xid {
		if w.freeDone == freeWriters {
			return eventstore.Stream{}
		}
		w.committedC.Wait()
	}
	return w.newest
}

// TestPerStreamOrderUnderConcurrentWriters runs free writers (write then
// append, or append to two streams) beside holders that take their
// transaction id, keep the transaction open until a newer transaction has
// committed, and then append: in even rounds to a stream that newer
// transaction wrote (refused, retried in a new transaction), in odd rounds
// elsewhere (committed out of id order, unless the stream moved). A
// subscriber reading with ReadAll from the start meanwhile must see every
// stream's versions as 1, 2, 3, ... with no gap, repetition or inversion.
func TestPerStreamOrderUnderConcurrentWriters(t *testing.T) {
	const (
		nStreams    = 5
		freeWriters = 4
		holders     = 2
		perWriter   = 12 // committed transactions per writer, at least
	)
	s := mustStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sideTable(t, s.Pool())
	w := &orderWorkload{s: s}
	w.committedC = sync.NewCond(&w.mu)
	for range nStreams {
		st := newStream(eventstore.StreamTransaction)
		_, err := s.Append(ctx, st, 0, counterOpened{})
		require.NoError(t, err)
		w.events.Add(1)
		w.streams = append(w.streams, st)
	}

	// The subscriber reads in commit order, as projectors do, from the start.
	var (
		subMu      sync.Mutex
		delivered  int64
		violations []string
	)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		last := map[uuid.UUID]int64{}
		var pos eventstore.Position
		for ctx.Err() == nil {
			wake := s.Appended().C()
			batch, err := s.ReadAll(ctx, pos, 100)
			if err != nil {
				return
			}
			subMu.Lock()
			for _, r := range batch {
				if r.Version != last[r.Stream.ID]+1 {
					violations = append(violations, fmt.Sprintf("%s: version %d after %d", r.Stream, r.Version, last[r.Stream.ID]))
				}
				last[r.Stream.ID] = max(last[r.Stream.ID], r.Version)
				pos = r.Position()
				delivered++
			}
			subMu.Unlock()
			if len(batch) == 0 {
				// Poll as well: the horizon also moves when a transaction
				// that raises no signal ends (a rollback, another test's).
				select {
				case <-wake:
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}()

	pick := func(writer, i, k int) eventstore.Stream { return w.streams[(writer*7+i*3+k)%nStreams] }
	retry := func(note string, streams []eventstore.Stream) error {
		for {
			_, ok, err := w.attempt(ctx, note, true, func(uint64) []eventstore.Stream { return streams })
			if ok || err != nil {
				return err
			}
		}
	}
	var (
		wg, holdersWG sync.WaitGroup
		holdersDone   = make(chan struct{})
	)
	errs := make(chan error, freeWriters+holders)
	for writer := range freeWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				w.mu.Lock()
				w.freeDone++
				w.committedC.Broadcast()
				w.mu.Unlock()
			}()
			// Free writers go on while holders run, so that holders always
			// have newer transactions to wait for.
			for i := 0; ; i++ {
				if i >= perWriter {
					select {
					case <-holdersDone:
						return
					default:
					}
				}
				note := fmt.Sprintf("free-%d-%d", writer, i)
				twoStreams := i%2 == 1
				streams := []eventstore.Stream{pick(writer, i, 0)}
				if twoStreams {
					streams = append(streams, pick(writer, i, 1))
				}
				var err error
				for ok := false; !ok && err == nil; {
					_, ok, err = w.attempt(ctx, note, !twoStreams, func(uint64) []eventstore.Stream { return streams })
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", note, err)
					return
				}
			}
		}()
	}
	for h := range holders {
		holdersWG.Add(1)
		go func() {
			defer holdersWG.Done()
			for i := range perWriter {
				note := fmt.Sprintf("holder-%d-%d", h, i)
				streams, ok, err := w.attempt(ctx, note, true, func(xid uint64) []eventstore.Stream {
					newer := w.waitForNewer(xid, freeWriters)
					other := pick(freeWriters+h, i, 0)
					if i%2 == 0 && newer != (eventstore.Stream{}) {
						return []eventstore.Stream{newer, other}
					}
					return []eventstore.Stream{other}
				})
				if err == nil && !ok {
					err = retry(note, streams)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", note, err)
					return
				}
			}
		}()
	}
	holdersWG.Wait()
	close(holdersDone)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	want := w.events.Load()
	require.Eventually(t, func() bool {
		subMu.Lock()
		defer subMu.Unlock()
		return delivered >= want
	}, time.Minute, 5*time.Millisecond, "the subscriber must catch up with every committed event")
	cancel()
	<-subDone
	assert.Equal(t, want, delivered, "nothing delivered twice")
	assert.Empty(t, violations, "per-stream order as delivered")
	assert.Positive(t, w.newerHead.Load(), "holders must meet heads of newer transactions")
	assert.Positive(t, w.outOfOrder.Load(), "transactions must commit out of id order")
	t.Logf("events %d; conflicts: newer head %d, stale version %d; out-of-order commits %d",
		want, w.newerHead.Load(), w.staleVersion.Load(), w.outOfOrder.Load())

	_, brk, err := s.VerifyChains(context.Background(), nil)
	require.NoError(t, err)
	assert.Nil(t, brk)
}
