package fanout

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
)

// Bounds of a change-feed page, counted in transactions.
const (
	DefaultFeedCount = 100
	MaxFeedCount     = 500
)

// FeedTransaction is a transaction as the change feed hands it out: its
// state after the page's events, as the log says it.
type FeedTransaction struct {
	ID           uuid.UUID
	AccountID    uuid.UUID
	ConnectionID uuid.UUID
	Status       transaction.Status
	Data         transaction.Data
}

// FeedPage is one answer of the change feed: what changed after the
// caller's cursor, folded per transaction, and where to go on from.
type FeedPage struct {
	// Added are transactions the client does not hold yet (new, or back
	// after a removal); Modified those it holds, in their new state.
	Added, Modified []FeedTransaction
	// Removed are ids of transactions the client holds and must drop.
	Removed []uuid.UUID
	// NextCursor is where the next call starts; HasMore says it would
	// answer something now.
	NextCursor string
	HasMore    bool
}

// Feed answers the transactions change feed from the log: the caller's
// transaction events behind the xid horizon, in commit order, after a
// cursor that is a log position. It reads no read model, so its cursors
// survive every rebuild, and each answer is a prefix of the commit-ordered
// log after the cursor: a client that starts with no cursor and follows
// NextCursor until HasMore is false holds exactly the transactions that
// are not removed, whatever syncs commit meanwhile.
type Feed struct {
	pool    *pgxpool.Pool
	store   *eventstore.Store
	cursors *Cursors
}

// NewFeed returns the feed over the store's database.
func NewFeed(store *eventstore.Store, cursors *Cursors) (*Feed, error) {
	if store == nil || cursors == nil {
		return nil, errors.New("fanout: feed needs a store and cursors")
	}
	return &Feed{pool: store.Pool(), store: store, cursors: cursors}, nil
}

// feedSQL reads the user's transaction events after a position, behind the
// horizon, in commit order: the events_owner_commit_order index (migration
// 00030) answers it as one range scan.
const feedSQL = `SELECT stream_id, version, event_type, schema_version, payload, event_id, transaction_id, global_position
	FROM events
	WHERE owner_id = $1 AND stream_type = 'transaction'
	  AND (transaction_id, global_position) > ($2::xid8, $3)
	  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY transaction_id, global_position
	LIMIT $4`

// Sync returns the page after cursor ("" for the start of the log) of at
// most count transactions (DefaultFeedCount when count is 0). A cursor
// that is not this user's is ErrInvalidCursor.
func (f *Feed) Sync(ctx context.Context, user uuid.UUID, cursor string, count int) (FeedPage, error) {
	if count == 0 {
		count = DefaultFeedCount
	}
	if count < 1 || count > MaxFeedCount {
		return FeedPage{}, fmt.Errorf("change feed: count %d is not between 1 and %d", count, MaxFeedCount)
	}
	var pos eventstore.Position
	if cursor != "" {
		p, err := f.cursors.Decode(user, cursor)
		if err != nil {
			return FeedPage{}, err
		}
		pos = p
	}
	recs, next, more, err := f.read(ctx, user, pos, count)
	if err != nil {
		return FeedPage{}, err
	}
	page, err := f.fold(ctx, recs)
	if err != nil {
		return FeedPage{}, err
	}
	page.NextCursor, page.HasMore = f.cursors.Encode(user, next), more
	return page, nil
}

// read returns the events of at most count transactions after pos, the
// position to go on from and whether more events wait behind it. A page
// ends before the first event of the (count+1)-th transaction, so every
// event of the page's transactions up to the cut is in it.
func (f *Feed) read(ctx context.Context, user uuid.UUID, pos eventstore.Position, count int) ([]eventstore.Record, eventstore.Position, bool, error) {
	chunk := 2*count + 16
	seen := make(map[uuid.UUID]bool, count)
	var out []eventstore.Record
	at := pos
	for {
		rows, err := f.pool.Query(ctx, feedSQL, user, at.TransactionID, at.GlobalPosition, chunk)
		if err != nil {
			return nil, pos, false, fmt.Errorf("read change feed: %w", err)
		}
		n := 0
		for rows.Next() {
			var r eventstore.Record
			var payload []byte
			if err := rows.Scan(&r.Stream.ID, &r.Version, &r.EventType, &r.SchemaVersion, &payload, &r.EventID,
				&r.TransactionID, &r.GlobalPosition); err != nil {
				rows.Close()
				return nil, pos, false, fmt.Errorf("read change feed: %w", err)
			}
			n++
			r.Stream.Type, r.Payload, r.OwnerID = eventstore.StreamTransaction, payload, user
			if !seen[r.Stream.ID] && len(seen) == count {
				rows.Close()
				return out, at, true, nil
			}
			seen[r.Stream.ID] = true
			out = append(out, r)
			at = r.Position()
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, pos, false, fmt.Errorf("read change feed: %w", err)
		}
		if n < chunk {
			return out, at, false, nil
		}
	}
}

// foldState is what a page says of one transaction.
type foldState struct {
	id        uuid.UUID
	first     int64 // the first version in the page
	visible   bool  // after the page's events: recorded and not removed
	data      *transaction.Data
	account   uuid.UUID
	conn      uuid.UUID
	recorded  bool // version 1 is in the page
	hadBefore bool // the client holds it before the page
}

// fold turns a page of events into added, modified and removed.
func (f *Feed) fold(ctx context.Context, recs []eventstore.Record) (FeedPage, error) {
	states := map[uuid.UUID]*foldState{}
	var order []uuid.UUID
	for _, r := range recs {
		s := states[r.Stream.ID]
		if s == nil {
			s = &foldState{id: r.Stream.ID, first: r.Version}
			states[r.Stream.ID] = s
			order = append(order, r.Stream.ID)
		}
		e, err := f.store.Decode(r)
		if err != nil {
			return FeedPage{}, fmt.Errorf("change feed: %w", err)
		}
		switch e := e.(type) {
		case transaction.TransactionRecorded:
			d := e.Data
			s.data, s.visible, s.recorded, s.account, s.conn = &d, true, true, e.AccountID, e.ConnectionID
		case transaction.TransactionUpdated:
			d := e.Data
			s.data, s.visible = &d, true
		case transaction.TransactionRemoved:
			s.visible = false
		}
	}
	if err := f.before(ctx, states, order); err != nil {
		return FeedPage{}, err
	}
	if err := f.owners(ctx, states, order); err != nil {
		return FeedPage{}, err
	}
	page := FeedPage{Added: []FeedTransaction{}, Modified: []FeedTransaction{}, Removed: []uuid.UUID{}}
	for _, id := range order {
		s := states[id]
		switch {
		case s.visible && s.data != nil:
			t := FeedTransaction{ID: id, AccountID: s.account, ConnectionID: s.conn, Status: transaction.StatusPosted, Data: *s.data}
			if s.data.Pending {
				t.Status = transaction.StatusPending
			}
			t.Data.Raw = nil
			if s.hadBefore {
				page.Modified = append(page.Modified, t)
			} else {
				page.Added = append(page.Added, t)
			}
		case !s.visible && s.hadBefore:
			page.Removed = append(page.Removed, id)
		}
	}
	return page, nil
}

// before sets hadBefore from each transaction's last event before the
// page: the client holds the transaction when that event exists and is
// not a removal.
func (f *Feed) before(ctx context.Context, states map[uuid.UUID]*foldState, order []uuid.UUID) error {
	var ids []uuid.UUID
	var versions []int64
	for _, id := range order {
		if s := states[id]; s.first > 1 {
			ids, versions = append(ids, id), append(versions, s.first-1)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := f.pool.Query(ctx, `SELECT e.stream_id, e.event_type FROM unnest($1::uuid[], $2::bigint[]) AS s(id, v)
		JOIN events e ON e.stream_id = s.id AND e.version = s.v`, ids, versions)
	if err != nil {
		return fmt.Errorf("change feed: read the events before the page: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var typ string
		if err := rows.Scan(&id, &typ); err != nil {
			return fmt.Errorf("change feed: read the events before the page: %w", err)
		}
		states[id].hadBefore = typ != evTxRemoved
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("change feed: read the events before the page: %w", err)
	}
	return nil
}

// owners fills the account and connection of transactions the page holds
// no TransactionRecorded of, from the one that opened their stream.
func (f *Feed) owners(ctx context.Context, states map[uuid.UUID]*foldState, order []uuid.UUID) error {
	var ids []uuid.UUID
	for _, id := range order {
		if s := states[id]; s.visible && !s.recorded {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	w := &derivation{q: f.pool}
	return w.firstEvents(ctx, eventstore.StreamTransaction, ids, func(r eventstore.Record) {
		if e, err := f.store.Decode(r); err == nil {
			if rec, ok := e.(transaction.TransactionRecorded); ok {
				states[r.Stream.ID].account, states[r.Stream.ID].conn = rec.AccountID, rec.ConnectionID
			}
		}
	})
}
