package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
)

// UserSnapshotInterval is how many events a user's stream grows by between
// two snapshots, so that a decision folds about that many events at most,
// however long the stream.
//
// A load costs one more round trip, for the snapshot, and then reads and
// decodes the events after it, UserSnapshotInterval/2 on average at ~15 µs
// each; a snapshot costs an upsert of the whole state, within the append's
// transaction, every UserSnapshotInterval events. Measured on a user with
// ten sessions and a 5,000-event stream (BenchmarkRefreshLongStream,
// docs/benchmarks.md), refreshes run at ~18/s replaying the stream; with
// snapshots every 10, 25, 50, 100 or 400 events at ~670-860, ~600-810,
// ~560-700, ~520-560 and ~240-310/s; the write-ahead log per refresh grows
// by 6-9%, 2-4% and 0.5-4% (10, 25, 100) over replay's, the snapshot's
// jsonb compressing well. 25 is the knee: within 5-10% of the fastest for
// less than half of its extra WAL.
const UserSnapshotInterval = 25

// UserAggregate describes the user aggregate to the generic path
// (eventstore.Repository): user streams, folded by user.User's Apply,
// snapshotted every UserSnapshotInterval events, and serialised per user,
// since one person's logins, refreshes and resets arrive concurrently and
// every attempt must be recorded rather than lost to a conflict.
func UserAggregate() eventstore.Aggregate[*user.User, user.Event] {
	return eventstore.Aggregate[*user.User, user.Event]{
		Type:  eventstore.StreamUser,
		New:   func(uuid.UUID) *user.User { return &user.User{} },
		Apply: func(u *user.User, e user.Event) { u.Apply(e) },
		Snapshots: &eventstore.Snapshots[*user.User]{
			Every:  UserSnapshotInterval,
			Schema: user.SnapshotSchema,
			Encode: func(u *user.User) ([]byte, error) { return json.Marshal(u.Snapshot()) },
			Decode: decodeUserSnapshot,
		},
		Serialize: true,
	}
}

// decodeUserSnapshot decodes a stored snapshot of user id strictly: a field
// it does not know means the row was not written by this schema's code, and
// a snapshot of another user is refused.
func decodeUserSnapshot(id uuid.UUID, state []byte) (*user.User, error) {
	var s user.Snapshot
	dec := json.NewDecoder(bytes.NewReader(state))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if s.ID != id {
		return nil, fmt.Errorf("snapshot is of user %s", s.ID)
	}
	return user.FromSnapshot(s)
}

// ConnectionAggregate describes the provider connection aggregate to the
// generic path: connection streams folded by connection.Connection's Apply.
// A connection's stream is written by its owner's requests and by one job
// at a time (refresh, sync), so decisions are not serialised; the rare
// conflict is retried.
func ConnectionAggregate() eventstore.Aggregate[*connection.Connection, connection.Event] {
	return eventstore.Aggregate[*connection.Connection, connection.Event]{
		Type:  eventstore.StreamConnection,
		New:   connection.New,
		Apply: func(c *connection.Connection, e connection.Event) { c.Apply(e) },
	}
}

// DescribedAggregates is the registry `audit state` and the audit API read
// states through: one line per aggregate, its description and the view
// that renders its state for auditors. A new aggregate plugs in with one
// more line here (TestStateAsOfEqualsLiveState then asks for its history,
// and TestEveryStreamTypeIsDescribed fails until it is here).
func DescribedAggregates(store *eventstore.Store) (*eventstore.Aggregates, error) {
	var errs []error
	add := func(r eventstore.StateReader, err error) eventstore.StateReader {
		errs = append(errs, err)
		return r
	}
	readers := []eventstore.StateReader{
		add(eventstore.Describe(store, UserAggregate(), UserStateView)),
		add(eventstore.Describe(store, ConnectionAggregate(), ConnectionStateView)),
		add(eventstore.Describe(store, AccountAggregate(), AccountStateView)),
		add(eventstore.Describe(store, TransactionAggregate(), TransactionStateView)),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return eventstore.NewAggregates(readers...)
}

// AccountAggregate describes the account aggregate to the generic path:
// account streams, written by one sync of its connection at a time.
func AccountAggregate() eventstore.Aggregate[*account.Account, account.Event] {
	return eventstore.Aggregate[*account.Account, account.Event]{
		Type:  eventstore.StreamAccount,
		New:   account.New,
		Apply: func(a *account.Account, e account.Event) { a.Apply(e) },
	}
}

// TransactionAggregate describes the transaction aggregate to the generic
// path: short streams written by syncs, loaded and appended in batches
// (eventstore.Repository.UpdateMany).
func TransactionAggregate() eventstore.Aggregate[*transaction.Transaction, transaction.Event] {
	return eventstore.Aggregate[*transaction.Transaction, transaction.Event]{
		Type:  eventstore.StreamTransaction,
		New:   transaction.New,
		Apply: func(t *transaction.Transaction, e transaction.Event) { t.Apply(e) },
	}
}
