package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
)

// bank simulates syncs of one user's two accounts: each sync is one unit
// of work that records new transactions and updates, posts, removes or
// brings back known ones, through the aggregate's own decisions.
type bank struct {
	store    *eventstore.Store
	repo     *eventstore.Repository[*transaction.Transaction, transaction.Event]
	owner    uuid.UUID
	conn     uuid.UUID
	accounts []uuid.UUID

	mu   sync.Mutex
	next int
	ids  []uuid.UUID
	acct map[uuid.UUID]uuid.UUID
}

func newBank(t *testing.T, s *eventstore.Store) *bank {
	repo, err := eventstore.NewRepository(s, commands.TransactionAggregate())
	require.NoError(t, err)
	return &bank{store: s, repo: repo, owner: uuid.New(), conn: uuid.New(), accounts: []uuid.UUID{uuid.New(), uuid.New()},
		acct: map[uuid.UUID]uuid.UUID{}}
}

// op is what a sync does to one transaction.
type op int

const (
	opNew op = iota
	opPost
	opAmount
	opRemove
	opRestore
)

// plan picks what one sync does: a few new transactions and changes to
// known ones.
func (b *bank) plan(rng *rand.Rand) map[uuid.UUID]op {
	b.mu.Lock()
	defer b.mu.Unlock()
	ops := map[uuid.UUID]op{}
	for range rng.IntN(4) {
		a := b.accounts[rng.IntN(len(b.accounts))]
		id := eventstore.TransactionStreamID(a, fmt.Sprintf("p-%d", b.next))
		b.next++
		b.ids = append(b.ids, id)
		b.acct[id] = a
		ops[id] = opNew
	}
	for range rng.IntN(4) {
		if len(b.ids) == 0 {
			break
		}
		id := b.ids[rng.IntN(len(b.ids))]
		if _, dup := ops[id]; !dup {
			ops[id] = op(1 + rng.IntN(4))
		}
	}
	return ops
}

// data is a transaction's data for a decision.
func (b *bank) data(id uuid.UUID, t *transaction.Transaction, o op, rng *rand.Rand) transaction.Data {
	if o == opNew {
		return transaction.Data{ProviderTransactionID: id.String(), Type: "purchase", Pending: rng.IntN(2) == 0,
			Amount: decimal.New(int64(rng.IntN(100000)), -2), Currency: "USD", Description: "shop", Date: "2026-02-01"}
	}
	d := t.Data()
	switch o {
	case opPost:
		d.Pending = false
	case opAmount:
		d.Amount = d.Amount.Add(decimal.New(int64(1+rng.IntN(500)), -2))
	}
	return d
}

// sync runs one sync as one unit of work. When hold is not nil, the unit
// of work takes its transaction id first and waits for hold before it
// appends, so it commits after units of work that started later.
func (b *bank) sync(ctx context.Context, rng *rand.Rand, hold <-chan struct{}) error {
	ops := b.plan(rng)
	if len(ops) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(ops))
	for id := range ops {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	syncID := uuid.New()
	seed := rng.Uint64()
	ctx = eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: b.owner, Actor: "system"})
	return b.store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		r := rand.New(rand.NewPCG(seed, 1))
		if hold != nil {
			if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
				return err
			}
			<-hold
			hold = nil // a retry runs at once
		}
		_, err := b.repo.UpdateMany(ctx, tx, ids, func(id uuid.UUID, t *transaction.Transaction) ([]transaction.Event, error) {
			o := ops[id]
			if o != opNew && !t.Recorded() {
				return nil, nil // planned by a sync that has not committed yet
			}
			if o == opRemove {
				return t.Remove(syncID, time.Now())
			}
			b.mu.Lock()
			acct := b.acct[id]
			b.mu.Unlock()
			return t.Observe(transaction.Observation{AccountID: acct, ConnectionID: b.conn, SyncID: syncID, Data: b.data(id, t, o, r), At: time.Now()})
		})
		return err
	})
}

// truthAt folds the user's transaction streams up to pos in commit order
// (all of them when pos is nil): what the API shows, transactions not removed.
func truthAt(t *testing.T, s *eventstore.Store, owner uuid.UUID, pos *eventstore.Position) map[uuid.UUID]*transaction.Transaction {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT global_position FROM events
		WHERE owner_id = $1 AND stream_type = 'transaction'
		  AND ($2::boolean OR (transaction_id, global_position) <= ($3::xid8, $4))
		ORDER BY transaction_id, global_position`, owner, pos == nil, posTx(pos), posGP(pos))
	require.NoError(t, err)
	positions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	recs, err := eventstore.ReadPositions(context.Background(), s.Pool(), positions)
	require.NoError(t, err)
	all := map[uuid.UUID]*transaction.Transaction{}
	for _, r := range recs {
		e, err := s.Decode(r)
		require.NoError(t, err)
		tr := all[r.Stream.ID]
		if tr == nil {
			tr = transaction.New(r.Stream.ID)
			all[r.Stream.ID] = tr
		}
		tr.Apply(e.(transaction.Event))
	}
	out := map[uuid.UUID]*transaction.Transaction{}
	for id, tr := range all {
		if tr.Recorded() && tr.Status() != transaction.StatusRemoved {
			out[id] = tr
		}
	}
	return out
}

func posTx(p *eventstore.Position) uint64 {
	if p == nil {
		return 0
	}
	return p.TransactionID
}

func posGP(p *eventstore.Position) int64 {
	if p == nil {
		return 0
	}
	return p.GlobalPosition
}

// client is a change-feed client's copy of the transactions.
type client struct {
	t      *testing.T
	feed   *fanout.Feed
	user   uuid.UUID
	cursor string
	held   map[uuid.UUID]fanout.FeedTransaction
}

// follow reads pages until has_more is false, applying each; it fails the
// test when a page adds what the client holds or changes what it does not.
func (c *client) follow(ctx context.Context, rng *rand.Rand) {
	for {
		page, err := c.feed.Sync(ctx, c.user, c.cursor, 1+rng.IntN(7))
		require.NoError(c.t, err)
		for _, tr := range page.Added {
			_, had := c.held[tr.ID]
			require.False(c.t, had, "added %s, which the client holds", tr.ID)
			c.held[tr.ID] = tr
		}
		for _, tr := range page.Modified {
			_, had := c.held[tr.ID]
			require.True(c.t, had, "modified %s, which the client does not hold", tr.ID)
			c.held[tr.ID] = tr
		}
		for _, id := range page.Removed {
			_, had := c.held[id]
			require.True(c.t, had, "removed %s, which the client does not hold", id)
			delete(c.held, id)
		}
		require.NotEmpty(c.t, page.NextCursor)
		c.cursor = page.NextCursor
		if !page.HasMore {
			return
		}
	}
}

// equal checks the client's copy against the truth.
func (c *client) equal(truth map[uuid.UUID]*transaction.Transaction) {
	c.t.Helper()
	require.Len(c.t, c.held, len(truth))
	for id, tr := range truth {
		got, ok := c.held[id]
		require.True(c.t, ok, "the client lacks %s", id)
		assert.Equal(c.t, tr.AccountID(), got.AccountID)
		assert.Equal(c.t, tr.Status(), got.Status)
		want := tr.Data()
		assert.True(c.t, want.Amount.Equal(got.Data.Amount), "amount of %s", id)
		want.Amount, got.Data.Amount, want.Raw = decimal.Zero, decimal.Zero, nil
		assert.Equal(c.t, want, got.Data)
	}
}

// TestChangeFeedClientHoldsWhatTheAPIShows is the change feed's property:
// random syncs, some committing out of the order they began in, run while
// a client reads the feed in pages of random sizes. Whenever the client
// has followed next_cursor until has_more is false, its copy equals the
// user's transactions as of its cursor; at the end, as of now. Another
// user's writes never show, and a cursor of another user or a malformed
// one is refused.
func TestChangeFeedClientHoldsWhatTheAPIShows(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	s := mustStore(t)
	feed, err := fanout.NewFeed(s, mustCursors(t))
	require.NoError(t, err)
	ctx := context.Background()
	b, other := newBank(t, s), newBank(t, s)

	c := &client{t: t, feed: feed, user: b.owner, held: map[uuid.UUID]fanout.FeedTransaction{}}
	const writers, syncs = 3, 25
	reads := make(chan struct{}, 1000)
	errs := make(chan error, writers+1)
	var wg sync.WaitGroup
	for w := range writers {
		wr := rand.New(rand.NewPCG(seed, uint64(10+w)))
		wg.Go(func() {
			for i := range syncs {
				var hold chan struct{}
				if w == 0 && i%5 == 0 {
					// Held open until the client read twice more: commits
					// after syncs that began later.
					hold = make(chan struct{})
					go func() { <-reads; <-reads; close(hold) }()
				}
				if err := b.sync(ctx, wr, hold); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		or := rand.New(rand.NewPCG(seed, 99))
		for range syncs {
			if err := other.sync(ctx, or, nil); err != nil {
				errs <- err
				return
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	checks := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		c.follow(ctx, rng)
		pos, err := mustCursors(t).Decode(b.owner, c.cursor)
		require.NoError(t, err)
		c.equal(truthAt(t, s, b.owner, &pos))
		checks++
		select {
		case reads <- struct{}{}:
		default:
		}
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		c.follow(ctx, rng)
		return len(c.held) == len(truthAt(t, s, b.owner, nil))
	}, 10*time.Second, 5*time.Millisecond)
	c.equal(truthAt(t, s, b.owner, nil))
	t.Logf("%d checks at intermediate cursors; the client holds %d transactions", checks, len(c.held))
	require.NotEmpty(t, c.held)

	// A fresh client catches up in one go, to the same copy.
	fresh := &client{t: t, feed: feed, user: b.owner, held: map[uuid.UUID]fanout.FeedTransaction{}}
	fresh.follow(ctx, rng)
	fresh.equal(truthAt(t, s, b.owner, nil))

	// Cursors are bound to their user.
	_, err = feed.Sync(ctx, other.owner, c.cursor, 10)
	assert.True(t, errors.Is(err, fanout.ErrInvalidCursor), "another user's cursor: %v", err)
	for _, bad := range []string{"x", "AAAA", c.cursor[:len(c.cursor)-2] + "AA"} {
		_, err = feed.Sync(ctx, b.owner, bad, 10)
		assert.True(t, errors.Is(err, fanout.ErrInvalidCursor), "cursor %q: %v", bad, err)
	}
}
