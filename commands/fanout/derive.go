package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
)

// Names of the domain events integration events are derived from.
var (
	evAttempted    = connection.ProviderConnectionAttempted{}.EventType()
	evSucceeded    = connection.ProviderConnectionSucceeded{}.EventType()
	evFailed       = connection.ProviderConnectionFailed{}.EventType()
	evReauth       = connection.ProviderReauthenticationRequired{}.EventType()
	evDisconnected = connection.ProviderDisconnectionSucceeded{}.EventType()
	evDisconnFail  = connection.ProviderDisconnectionFailed{}.EventType()
	evSyncStarted  = connection.SyncStarted{}.EventType()
	evSyncDone     = connection.SyncCompleted{}.EventType()
	evSyncFailed   = connection.SyncFailed{}.EventType()
	evOpened       = account.AccountOpened{}.EventType()
	evUpdated      = account.AccountUpdated{}.EventType()
	evBalance      = account.AccountBalanceRecorded{}.EventType()
	evHoldings     = account.AccountHoldingsRecorded{}.EventType()
	evClosed       = account.AccountClosed{}.EventType()
	evTxRecorded   = transaction.TransactionRecorded{}.EventType()
	evTxRemoved    = transaction.TransactionRemoved{}.EventType()
)

// statusEvents are the connection events that can move its status; the
// aggregate's fold of them alone gives the status (aggregates/connection).
var statusEvents = []string{evAttempted, evSucceeded, evFailed, evReauth, evDisconnected, evDisconnFail}

// SourceEventTypes are the domain event types integration events are
// derived from; every other event derives nothing. Readers filter on it
// to skip the rest of the log in SQL.
var SourceEventTypes = append(slices.Clone(statusEvents),
	evSyncStarted, evSyncDone, evSyncFailed, evOpened, evUpdated, evBalance, evHoldings, evClosed)

var sourceSet = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range SourceEventTypes {
		m[t] = true
	}
	return m
}()

// Deriver turns domain events into integration events. It is
// deterministic: an event of the log always derives the same integration
// events, with the same ids, whoever derives it (the relay, the webhook
// fan-out, every instance's stream tailer), because what it reads besides
// the event — earlier events of the same streams, the transactions a sync
// recorded — lies before the event in commit order, and so is final once
// the event is behind the horizon.
type Deriver struct {
	store   *eventstore.Store
	cursors *Cursors
}

// NewDeriver returns a deriver decoding through the store's registry (so
// upcasters apply) and issuing transactions.changed cursors with cursors.
func NewDeriver(store *eventstore.Store, cursors *Cursors) (*Deriver, error) {
	if store == nil || cursors == nil {
		return nil, errors.New("fanout: deriver needs a store and cursors")
	}
	return &Deriver{store: store, cursors: cursors}, nil
}

// DeriveError is a domain event the deriver could not turn into
// integration events: a payload that does not decode, an event without an
// owner. It fails on every attempt, so a reactor parks it.
type DeriveError struct {
	Record eventstore.Record
	Err    error
}

// Error names the event and the cause.
func (e *DeriveError) Error() string {
	return fmt.Sprintf("derive integration events from %s at %s v%d: %v", e.Record.EventType, e.Record.Stream, e.Record.Version, e.Err)
}

// Unwrap returns the cause.
func (e *DeriveError) Unwrap() error { return e.Err }

// Derive returns the integration events of recs, in their order, reading
// what it needs beside them through q (a pool or the caller's transaction).
// Events it cannot derive are returned as failures and left out; the error
// is the database's.
func (d *Deriver) Derive(ctx context.Context, q eventstore.Querier, recs []eventstore.Record) ([]Event, []*DeriveError, error) {
	var (
		out      []Event
		failures []*DeriveError
	)
	w := &derivation{d: d, q: q}
	if err := w.prefetch(ctx, recs); err != nil {
		return nil, nil, err
	}
	for _, r := range recs {
		if !sourceSet[r.EventType] {
			continue
		}
		evs, err := w.derive(ctx, r)
		if err != nil {
			var de *DeriveError
			if errors.As(err, &de) {
				failures = append(failures, de)
				continue
			}
			return nil, nil, err
		}
		out = append(out, evs...)
	}
	return out, failures, nil
}

// derivation is one call of Derive: the lookups it prefetched.
type derivation struct {
	d *Deriver
	q eventstore.Querier
	// connections are the status folds of the batch's connection streams,
	// advanced event by event through the batch.
	connections map[uuid.UUID]*connection.Connection
	// accounts are the connection ids of the batch's account streams.
	accounts map[uuid.UUID]uuid.UUID
}

// prefetch reads, in one query each, the earlier status events of every
// connection whose status the batch may move, and the connection of every
// account the batch speaks of.
func (w *derivation) prefetch(ctx context.Context, recs []eventstore.Record) error {
	firstStatus := map[uuid.UUID]int64{}
	var accountIDs []uuid.UUID
	seenAccount := map[uuid.UUID]bool{}
	for _, r := range recs {
		switch {
		case r.Stream.Type == eventstore.StreamConnection && slices.Contains(statusEvents, r.EventType):
			if _, ok := firstStatus[r.Stream.ID]; !ok {
				firstStatus[r.Stream.ID] = r.Version
			}
		case r.Stream.Type == eventstore.StreamAccount && sourceSet[r.EventType] && !seenAccount[r.Stream.ID]:
			seenAccount[r.Stream.ID] = true
			accountIDs = append(accountIDs, r.Stream.ID)
		}
	}
	w.connections = make(map[uuid.UUID]*connection.Connection, len(firstStatus))
	if len(firstStatus) > 0 {
		ids := make([]uuid.UUID, 0, len(firstStatus))
		versions := make([]int64, 0, len(firstStatus))
		for id, v := range firstStatus {
			ids = append(ids, id)
			versions = append(versions, v)
			w.connections[id] = connection.New(id)
		}
		rows, err := w.q.Query(ctx, `SELECT e.stream_id, e.event_type, e.schema_version, e.payload, e.event_id, e.version
			FROM unnest($1::uuid[], $2::bigint[]) AS s(id, before)
			JOIN events e ON e.stream_id = s.id AND e.version < s.before
			WHERE e.stream_type = 'connection' AND e.event_type = ANY($3)
			ORDER BY e.stream_id, e.version`, ids, versions, statusEvents)
		if err != nil {
			return fmt.Errorf("read connection history: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r eventstore.Record
			var payload []byte
			if err := rows.Scan(&r.Stream.ID, &r.EventType, &r.SchemaVersion, &payload, &r.EventID, &r.Version); err != nil {
				return fmt.Errorf("read connection history: %w", err)
			}
			r.Stream.Type, r.Payload = eventstore.StreamConnection, payload
			e, err := w.d.store.Decode(r)
			if err != nil {
				// An earlier event that does not decode was parked where it
				// stood; the fold goes on without it.
				continue
			}
			if ce, ok := e.(connection.Event); ok {
				w.connections[r.Stream.ID].Apply(ce)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read connection history: %w", err)
		}
	}
	w.accounts = map[uuid.UUID]uuid.UUID{}
	if len(accountIDs) > 0 {
		if err := w.firstEvents(ctx, eventstore.StreamAccount, accountIDs, func(r eventstore.Record) {
			if e, err := w.d.store.Decode(r); err == nil {
				if opened, ok := e.(account.AccountOpened); ok {
					w.accounts[r.Stream.ID] = opened.ConnectionID
				}
			}
		}); err != nil {
			return err
		}
	}
	return nil
}

// firstEvents calls fn with version 1 of each stream, as a record
// Decode can read.
func (w *derivation) firstEvents(ctx context.Context, typ eventstore.StreamType, ids []uuid.UUID, fn func(eventstore.Record)) error {
	rows, err := w.q.Query(ctx, `SELECT stream_id, event_type, schema_version, payload, event_id FROM events
		WHERE stream_id = ANY($1::uuid[]) AND version = 1 AND stream_type = $2`, ids, string(typ))
	if err != nil {
		return fmt.Errorf("read first events of %d %s streams: %w", len(ids), typ, err)
	}
	defer rows.Close()
	for rows.Next() {
		r := eventstore.Record{Stream: eventstore.Stream{Type: typ}, Version: 1}
		var payload []byte
		if err := rows.Scan(&r.Stream.ID, &r.EventType, &r.SchemaVersion, &payload, &r.EventID); err != nil {
			return fmt.Errorf("read first events of %s streams: %w", typ, err)
		}
		r.Payload = payload
		fn(r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read first events of %s streams: %w", typ, err)
	}
	return nil
}

// derive returns the integration events of one source event.
func (w *derivation) derive(ctx context.Context, r eventstore.Record) ([]Event, error) {
	fail := func(err error) ([]Event, error) { return nil, &DeriveError{Record: r, Err: err} }
	if r.OwnerID == uuid.Nil {
		return fail(errors.New("the event has no owner to deliver to"))
	}
	e, err := w.d.store.Decode(r)
	if err != nil {
		return fail(err)
	}
	env := func(typ, discriminator string, seq int, data any) Event {
		return Event{
			ID: eventID(r.EventID, typ, discriminator), Type: typ, Version: Version, UserID: r.OwnerID,
			Position: r.GlobalPosition, Timestamp: r.RecordedAt.UTC(), Data: data,
			TransactionID: r.TransactionID, Seq: seq,
		}
	}
	switch e := e.(type) {
	case connection.Event:
		return w.connectionEvents(ctx, r, e, env)
	case account.AccountOpened:
		w.accounts[e.AccountID] = e.ConnectionID
		return []Event{env(TypeAccountUpdated, "", 0, AccountUpdatedData{AccountID: e.AccountID, ConnectionID: e.ConnectionID,
			Change: AccountOpened, Changed: []string{}, AccountType: e.Type, IsActive: true})}, nil
	case account.AccountUpdated:
		changed := e.Changed
		if changed == nil {
			changed = []string{}
		}
		return []Event{env(TypeAccountUpdated, "", 0, AccountUpdatedData{AccountID: e.AccountID, ConnectionID: w.accounts[r.Stream.ID],
			Change: AccountDetailsChanged, Changed: changed, AccountType: e.Type, IsActive: true})}, nil
	case account.AccountBalanceRecorded:
		return []Event{env(TypeAccountUpdated, "", 0, AccountUpdatedData{AccountID: e.AccountID, ConnectionID: w.accounts[r.Stream.ID],
			Change: AccountBalanceRecorded, Changed: []string{"balance"}, IsActive: true})}, nil
	case account.AccountClosed:
		return []Event{env(TypeAccountUpdated, "", 0, AccountUpdatedData{AccountID: e.AccountID, ConnectionID: w.accounts[r.Stream.ID],
			Change: AccountClosed, Changed: []string{"is_active"}, IsActive: false})}, nil
	case account.AccountHoldingsRecorded:
		return []Event{env(TypeHoldingsChanged, "", 0, HoldingsChangedData{AccountID: e.AccountID, ConnectionID: w.accounts[r.Stream.ID],
			SyncID: e.SyncID, Holdings: len(e.Holdings)})}, nil
	}
	return nil, nil
}

// connectionEvents derives status changes, re-authorisation requests and
// sync outcomes.
func (w *derivation) connectionEvents(ctx context.Context, r eventstore.Record, e connection.Event,
	env func(string, string, int, any) Event) ([]Event, error) {
	switch e := e.(type) {
	case connection.SyncStarted:
		return []Event{env(TypeSyncStarted, "", 0, SyncStartedData{ConnectionID: e.ConnectionID, SyncID: e.SyncID, Trigger: string(e.Trigger)})}, nil
	case connection.SyncFailed:
		return []Event{env(TypeSyncFailed, "", 0, SyncFailedData{ConnectionID: e.ConnectionID, SyncID: e.SyncID, Reason: string(e.Reason)})}, nil
	case connection.SyncCompleted:
		return w.syncCompleted(ctx, r, e, env)
	}
	c := w.connections[r.Stream.ID]
	if c == nil {
		return nil, nil
	}
	before := c.Status()
	c.Apply(e)
	var out []Event
	if after := c.Status(); after != before {
		d := ConnectionStatusChangedData{ConnectionID: r.Stream.ID, ProviderSlug: c.ProviderSlug(), Status: string(after), PreviousStatus: string(before)}
		switch e := e.(type) {
		case connection.ProviderConnectionFailed:
			d.Reason = string(e.Reason)
		case connection.ProviderReauthenticationRequired:
			d.Reason = string(e.Reason)
		}
		out = append(out, env(TypeConnectionStatusChanged, "", len(out), d))
	}
	if re, ok := e.(connection.ProviderReauthenticationRequired); ok {
		out = append(out, env(TypeConnectionReauthorizationRequired, "", len(out),
			ConnectionReauthorizationRequiredData{ConnectionID: r.Stream.ID, ProviderSlug: c.ProviderSlug(), Reason: string(re.Reason)}))
	}
	return out, nil
}

// syncCompleted derives one transactions.changed per account whose
// transactions the sync changed, then sync.completed. The sync's
// transaction events are the owner's transaction events between its
// SyncStarted and this event in commit order that carry its sync id.
func (w *derivation) syncCompleted(ctx context.Context, r eventstore.Record, e connection.SyncCompleted,
	env func(string, string, int, any) Event) ([]Event, error) {
	perAccount, err := w.syncChanges(ctx, r, e)
	if err != nil {
		return nil, err
	}
	accounts := make([]uuid.UUID, 0, len(perAccount))
	for id := range perAccount {
		accounts = append(accounts, id)
	}
	slices.SortFunc(accounts, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	out := make([]Event, 0, len(accounts)+1)
	cursor := w.d.cursors.Encode(r.OwnerID, r.Position())
	for _, id := range accounts {
		n := perAccount[id]
		out = append(out, env(TypeTransactionsChanged, id.String(), len(out), TransactionsChangedData{
			AccountID: id, ConnectionID: e.ConnectionID, SyncID: e.SyncID,
			Added: n.added, Modified: n.modified, Removed: n.removed, Cursor: cursor,
		}))
	}
	errs := make([]SyncAccountError, 0, len(e.AccountErrors))
	for _, ae := range e.AccountErrors {
		errs = append(errs, SyncAccountError{AccountID: ae.AccountID, Reason: string(ae.Reason)})
	}
	out = append(out, env(TypeSyncCompleted, "", len(out), SyncCompletedData{
		ConnectionID: e.ConnectionID, SyncID: e.SyncID, Accounts: e.Accounts,
		Counts:        SyncCounts{Created: e.Counts.Created, Updated: e.Counts.Updated, Unchanged: e.Counts.Unchanged, Removed: e.Counts.Removed},
		AccountErrors: errs,
	}))
	return out, nil
}

type changeCounts struct{ added, modified, removed int }

// syncChanges counts, per account, the transactions the sync added,
// modified and removed: a transaction the sync recorded is added (or
// nothing, if the same sync removed it again), one whose last event in the
// sync removes it is removed, any other it touched is modified.
func (w *derivation) syncChanges(ctx context.Context, r eventstore.Record, e connection.SyncCompleted) (map[uuid.UUID]*changeCounts, error) {
	var start eventstore.Position
	rows, err := w.q.Query(ctx, `SELECT transaction_id, global_position FROM events
		WHERE stream_id = $1 AND stream_type = 'connection' AND version < $2 AND event_type = $3
		  AND (payload::jsonb ->> 'sync_id') = $4
		ORDER BY version DESC LIMIT 1`, r.Stream.ID, r.Version, evSyncStarted, e.SyncID.String())
	if err != nil {
		return nil, fmt.Errorf("find the start of sync %s: %w", e.SyncID, err)
	}
	start, err = collectOnePosition(rows)
	if errors.Is(err, errNoRow) {
		return map[uuid.UUID]*changeCounts{}, nil // no start, no transactions of it
	}
	if err != nil {
		return nil, fmt.Errorf("find the start of sync %s: %w", e.SyncID, err)
	}
	rows, err = w.q.Query(ctx, `SELECT stream_id, event_type, payload FROM events
		WHERE owner_id = $1 AND stream_type = 'transaction'
		  AND (transaction_id, global_position) > ($2::xid8, $3)
		  AND (transaction_id, global_position) < ($4::xid8, $5)
		ORDER BY transaction_id, global_position`,
		r.OwnerID, start.TransactionID, start.GlobalPosition, r.TransactionID, r.GlobalPosition)
	if err != nil {
		return nil, fmt.Errorf("read the transactions of sync %s: %w", e.SyncID, err)
	}
	type touched struct {
		account  uuid.UUID
		recorded bool
		last     string
	}
	byStream := map[uuid.UUID]*touched{}
	var order []uuid.UUID
	for rows.Next() {
		var (
			id      uuid.UUID
			typ     string
			payload []byte
		)
		if err := rows.Scan(&id, &typ, &payload); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the transactions of sync %s: %w", e.SyncID, err)
		}
		var p struct {
			SyncID    uuid.UUID `json:"sync_id"`
			AccountID uuid.UUID `json:"account_id"`
		}
		if json.Unmarshal(payload, &p) != nil || p.SyncID != e.SyncID {
			continue
		}
		t := byStream[id]
		if t == nil {
			t = &touched{}
			byStream[id] = t
			order = append(order, id)
		}
		if typ == evTxRecorded {
			t.recorded, t.account = true, p.AccountID
		}
		t.last = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the transactions of sync %s: %w", e.SyncID, err)
	}
	var unknown []uuid.UUID
	for _, id := range order {
		if byStream[id].account == uuid.Nil {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		if err := w.firstEvents(ctx, eventstore.StreamTransaction, unknown, func(r eventstore.Record) {
			if e, err := w.d.store.Decode(r); err == nil {
				if rec, ok := e.(transaction.TransactionRecorded); ok {
					byStream[r.Stream.ID].account = rec.AccountID
				}
			}
		}); err != nil {
			return nil, err
		}
	}
	out := map[uuid.UUID]*changeCounts{}
	for _, id := range order {
		t := byStream[id]
		if t.account == uuid.Nil {
			continue
		}
		n := out[t.account]
		if n == nil {
			n = &changeCounts{}
			out[t.account] = n
		}
		switch {
		case t.recorded && t.last == evTxRemoved:
			// Recorded and removed by the same sync: nothing to tell.
			if n.added+n.modified+n.removed == 0 {
				delete(out, t.account)
			}
		case t.recorded:
			n.added++
		case t.last == evTxRemoved:
			n.removed++
		default:
			n.modified++
		}
	}
	return out, nil
}

// errNoRow is collectOnePosition's answer to an empty result.
var errNoRow = errors.New("no row")

// collectOnePosition reads the first row's (transaction id, position) and closes rows.
func collectOnePosition(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}) (eventstore.Position, error) {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return eventstore.Position{}, err
		}
		return eventstore.Position{}, errNoRow
	}
	var p eventstore.Position
	if err := rows.Scan(&p.TransactionID, &p.GlobalPosition); err != nil {
		return eventstore.Position{}, err
	}
	return p, nil
}
