package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/eventstore"
)

// Syncs projects the syncs of every connection (GET
// /api/v1/connections/{id}/syncs): one row per sync with its trigger,
// window, status (queued, running, completed, failed), counts and account
// errors; and one row per connection with its owner, whether it is active
// and when its last sync started, which the scheduler reads to find the
// connections due for a sync (docs/sync.md).
//
// It folds the connection streams only, in order: each connection row
// remembers the stream version it has folded up to, and an event at or
// below it changes nothing, so a batch applied again leaves the rows as
// they were. A parked event retried after later ones is skipped; `dashtam
// projections rebuild syncs` replays the log in order instead.
type Syncs struct{}

// Logical table names of Syncs.
const (
	syncsTable           = "syncs"
	syncConnectionsTable = "sync_connections"
)

// The statuses of a sync as the API shows them.
const (
	SyncQueued    = "queued"
	SyncRunning   = "running"
	SyncCompleted = "completed"
	SyncFailed    = "failed"
)

// Name identifies the projector.
func (Syncs) Name() string { return "syncs" }

// Tables lists the tables it owns.
func (Syncs) Tables() []string { return []string{syncsTable, syncConnectionsTable} }

// Schema creates the two tables under the given names.
func (Syncs) Schema(t TableNames) string {
	return fmt.Sprintf(`
CREATE TABLE %[1]s (
    id             uuid        PRIMARY KEY,
    connection_id  uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    status         text        NOT NULL,
    trigger        text        NOT NULL,
    force          boolean     NOT NULL,
    window_from    date        NOT NULL,
    window_to      date        NOT NULL,
    started_at     timestamptz NOT NULL,
    picked_up_at   timestamptz,
    finished_at    timestamptz,
    accounts       integer     NOT NULL,
    created        integer     NOT NULL,
    updated        integer     NOT NULL,
    unchanged      integer     NOT NULL,
    removed        integer     NOT NULL,
    account_errors jsonb       NOT NULL,
    failure_reason text,
    latest_posted  date
);
CREATE INDEX ON %[1]s (connection_id, started_at DESC, id DESC);
CREATE TABLE %[2]s (
    connection_id   uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    status          text        NOT NULL,
    reauthorizing   boolean     NOT NULL,
    syncing         uuid,
    last_started_at timestamptz,
    last_synced_at  timestamptz,
    version         bigint      NOT NULL
);
CREATE INDEX ON %[2]s (last_started_at NULLS FIRST) WHERE status = 'active';
`, t.Of(syncsTable), t.Of(syncConnectionsTable))
}

// syncConnRow is one connection as sync_connections holds it.
type syncConnRow struct {
	id, userID    uuid.UUID
	status        string
	reauthorizing bool
	syncing       *uuid.UUID
	lastStarted   *time.Time
	lastSynced    *time.Time
	version       int64
}

// syncRow is one sync as syncs holds it.
type syncRow struct {
	id, connectionID, userID uuid.UUID
	status, trigger          string
	force                    bool
	from, to                 string
	startedAt                time.Time
	pickedUpAt, finishedAt   *time.Time
	accounts                 int
	counts                   connection.SyncCounts
	accountErrors            []connection.AccountError
	failureReason            *string
	latestPosted             *string
}

// syncFolded are the connection event types that change either table; the
// others (refreshes, renames, attempts to disconnect) are passed over.
var syncFolded = map[string]bool{
	connection.ProviderConnectionAttempted{}.EventType():      true,
	connection.ProviderConnectionSucceeded{}.EventType():      true,
	connection.ProviderConnectionFailed{}.EventType():         true,
	connection.ProviderReauthenticationRequired{}.EventType(): true,
	connection.ProviderDisconnectionSucceeded{}.EventType():   true,
	connection.ProviderDisconnectionFailed{}.EventType():      true,
	connection.SyncStarted{}.EventType():                      true,
	connection.SyncPickedUp{}.EventType():                     true,
	connection.SyncCompleted{}.EventType():                    true,
	connection.SyncFailed{}.EventType():                       true,
}

// syncEventIDs are the event types that name an existing sync.
var syncEventIDs = map[string]bool{
	connection.SyncPickedUp{}.EventType():  true,
	connection.SyncCompleted{}.EventType(): true,
	connection.SyncFailed{}.EventType():    true,
}

// Apply folds the batch's connection events: it reads the rows they touch,
// folds in Go and writes the changed rows back in one upsert per table.
// Events of other streams (a sync's thousands of transactions) are passed
// over without decoding.
func (Syncs) Apply(ctx context.Context, tx pgx.Tx, t TableNames, batch []eventstore.Record) error {
	var connIDs, syncIDs []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, r := range batch {
		if r.Stream.Type != eventstore.StreamConnection || !syncFolded[r.EventType] {
			continue
		}
		if !seen[r.Stream.ID] {
			seen[r.Stream.ID] = true
			connIDs = append(connIDs, r.Stream.ID)
		}
		if syncEventIDs[r.EventType] {
			var ref struct {
				SyncID uuid.UUID `json:"sync_id"`
			}
			if err := json.Unmarshal(r.Payload, &ref); err != nil {
				return fmt.Errorf("connection %s version %d (%s): decode payload: %w", r.Stream.ID, r.Version, r.EventType, err)
			}
			syncIDs = append(syncIDs, ref.SyncID)
		}
	}
	if len(connIDs) == 0 {
		return nil
	}
	conns, err := readSyncConnRows(ctx, tx, t, connIDs)
	if err != nil {
		return err
	}
	syncs, err := readSyncRows(ctx, tx, t, syncIDs)
	if err != nil {
		return err
	}
	changedConns := map[uuid.UUID]bool{}
	var changedSyncs []uuid.UUID
	changedSync := map[uuid.UUID]bool{}
	for _, r := range batch {
		if r.Stream.Type != eventstore.StreamConnection || !syncFolded[r.EventType] {
			continue
		}
		row := conns[r.Stream.ID]
		if row != nil && r.Version <= row.version {
			continue // applied before
		}
		next, touched, err := foldSyncEvent(row, syncs, r)
		if err != nil {
			return fmt.Errorf("connection %s version %d (%s): %w", r.Stream.ID, r.Version, r.EventType, err)
		}
		next.version = r.Version
		conns[r.Stream.ID] = next
		changedConns[r.Stream.ID] = true
		if touched != nil {
			syncs[touched.id] = touched
			if !changedSync[touched.id] {
				changedSync[touched.id] = true
				changedSyncs = append(changedSyncs, touched.id)
			}
		}
	}
	if err := upsertSyncConnRows(ctx, tx, t, conns, connIDs, changedConns); err != nil {
		return err
	}
	return upsertSyncRows(ctx, tx, t, syncs, changedSyncs)
}

// errSyncBeforeAttempt means a connection's event came before its
// ProviderConnectionAttempted: the row would have no owner.
var errSyncBeforeAttempt = errors.New("event before the connection was attempted")

// foldSyncEvent returns the connection row after r (a copy; row nil: none
// yet) and the sync row r created or changed, if any (a copy too), so a
// failed fold changes nothing.
func foldSyncEvent(row *syncConnRow, syncs map[uuid.UUID]*syncRow, r eventstore.Record) (*syncConnRow, *syncRow, error) {
	if r.SchemaVersion != 1 {
		return nil, nil, fmt.Errorf("schema version %d is unknown to the syncs projector", r.SchemaVersion)
	}
	var c syncConnRow
	switch {
	case row != nil:
		c = *row
	case r.EventType != (connection.ProviderConnectionAttempted{}).EventType():
		return nil, nil, errSyncBeforeAttempt
	}
	decode := func(v any) error {
		if err := json.Unmarshal(r.Payload, v); err != nil {
			return fmt.Errorf("decode payload: %w", err)
		}
		return nil
	}
	existing := func(id uuid.UUID) (*syncRow, error) {
		s, ok := syncs[id]
		if !ok || s.connectionID != r.Stream.ID {
			return nil, fmt.Errorf("sync %s is unknown on this connection", id)
		}
		cp := *s
		return &cp, nil
	}
	switch r.EventType {
	case connection.ProviderConnectionAttempted{}.EventType():
		var e connection.ProviderConnectionAttempted
		if err := decode(&e); err != nil {
			return nil, nil, err
		}
		if row == nil {
			c = syncConnRow{id: r.Stream.ID, userID: e.UserID, status: string(connection.StatusPending)}
		}
		c.reauthorizing = e.Reauthorization
	case connection.ProviderConnectionSucceeded{}.EventType():
		c.status, c.reauthorizing = string(connection.StatusActive), false
	case connection.ProviderConnectionFailed{}.EventType():
		if !c.reauthorizing && c.status == string(connection.StatusPending) {
			c.status = string(connection.StatusFailed)
		}
		c.reauthorizing = false
	case connection.ProviderReauthenticationRequired{}.EventType():
		if c.status == string(connection.StatusActive) {
			c.status = string(connection.StatusNeedsReauth)
		}
	case connection.ProviderDisconnectionSucceeded{}.EventType(), connection.ProviderDisconnectionFailed{}.EventType():
		c.status, c.reauthorizing = string(connection.StatusDisconnected), false
	case connection.SyncStarted{}.EventType():
		var e connection.SyncStarted
		if err := decode(&e); err != nil {
			return nil, nil, err
		}
		id, at := e.SyncID, e.At
		c.syncing, c.lastStarted = &id, &at
		return &c, &syncRow{id: e.SyncID, connectionID: r.Stream.ID, userID: c.userID, status: SyncQueued,
			trigger: string(e.Trigger), force: e.Force, from: e.From, to: e.To, startedAt: e.At,
			accountErrors: []connection.AccountError{}}, nil
	case connection.SyncPickedUp{}.EventType():
		var e connection.SyncPickedUp
		if err := decode(&e); err != nil {
			return nil, nil, err
		}
		s, err := existing(e.SyncID)
		if err != nil {
			return nil, nil, err
		}
		if s.status == SyncQueued {
			s.status = SyncRunning
		}
		at := e.At
		s.pickedUpAt = &at
		return &c, s, nil
	case connection.SyncCompleted{}.EventType():
		var e connection.SyncCompleted
		if err := decode(&e); err != nil {
			return nil, nil, err
		}
		s, err := existing(e.SyncID)
		if err != nil {
			return nil, nil, err
		}
		at := e.At
		s.status, s.finishedAt, s.accounts, s.counts = SyncCompleted, &at, e.Accounts, e.Counts
		s.accountErrors = e.AccountErrors
		if s.accountErrors == nil {
			s.accountErrors = []connection.AccountError{}
		}
		if e.LatestPosted != "" {
			latest := e.LatestPosted
			s.latestPosted = &latest
		}
		if c.syncing != nil && *c.syncing == e.SyncID {
			c.syncing = nil
		}
		c.lastSynced = &at
		return &c, s, nil
	case connection.SyncFailed{}.EventType():
		var e connection.SyncFailed
		if err := decode(&e); err != nil {
			return nil, nil, err
		}
		s, err := existing(e.SyncID)
		if err != nil {
			return nil, nil, err
		}
		at, reason := e.At, string(e.Reason)
		s.status, s.finishedAt, s.failureReason = SyncFailed, &at, &reason
		if c.syncing != nil && *c.syncing == e.SyncID {
			c.syncing = nil
		}
		return &c, s, nil
	default:
		return nil, nil, fmt.Errorf("event type %q is unknown to the syncs projector", r.EventType)
	}
	return &c, nil, nil
}

// readSyncConnRows returns the existing connection rows of ids.
func readSyncConnRows(ctx context.Context, tx pgx.Tx, t TableNames, ids []uuid.UUID) (map[uuid.UUID]*syncConnRow, error) {
	out := make(map[uuid.UUID]*syncConnRow, len(ids))
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT connection_id, user_id, status, reauthorizing, syncing,
		last_started_at, last_synced_at, version FROM %s WHERE connection_id = ANY($1)`, t.Of(syncConnectionsTable)), ids)
	if err != nil {
		return nil, fmt.Errorf("read sync connections: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c syncConnRow
		if err := rows.Scan(&c.id, &c.userID, &c.status, &c.reauthorizing, &c.syncing, &c.lastStarted, &c.lastSynced, &c.version); err != nil {
			return nil, fmt.Errorf("read sync connections: %w", err)
		}
		out[c.id] = &c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sync connections: %w", err)
	}
	return out, nil
}

// syncColumns are the columns of syncs in the order scanSyncRow reads them.
const syncColumns = `id, connection_id, user_id, status, trigger, force, to_char(window_from, 'YYYY-MM-DD'),
	to_char(window_to, 'YYYY-MM-DD'), started_at, picked_up_at, finished_at, accounts, created, updated, unchanged,
	removed, account_errors, failure_reason, to_char(latest_posted, 'YYYY-MM-DD')`

// scanSyncRow reads one row of syncColumns.
func scanSyncRow(r pgx.CollectableRow) (syncRow, error) {
	var s syncRow
	var errs []byte
	err := r.Scan(&s.id, &s.connectionID, &s.userID, &s.status, &s.trigger, &s.force, &s.from, &s.to, &s.startedAt,
		&s.pickedUpAt, &s.finishedAt, &s.accounts, &s.counts.Created, &s.counts.Updated, &s.counts.Unchanged,
		&s.counts.Removed, &errs, &s.failureReason, &s.latestPosted)
	if err != nil {
		return syncRow{}, err
	}
	if err := json.Unmarshal(errs, &s.accountErrors); err != nil {
		return syncRow{}, fmt.Errorf("decode account errors of sync %s: %w", s.id, err)
	}
	return s, nil
}

// readSyncRows returns the existing sync rows of ids.
func readSyncRows(ctx context.Context, tx pgx.Tx, t TableNames, ids []uuid.UUID) (map[uuid.UUID]*syncRow, error) {
	out := make(map[uuid.UUID]*syncRow, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE id = ANY($1)`, syncColumns, t.Of(syncsTable)), ids)
	if err != nil {
		return nil, fmt.Errorf("read syncs: %w", err)
	}
	got, err := pgx.CollectRows(rows, scanSyncRow)
	if err != nil {
		return nil, fmt.Errorf("read syncs: %w", err)
	}
	for i := range got {
		out[got[i].id] = &got[i]
	}
	return out, nil
}

// upsertSyncConnRows writes the changed connection rows in one statement.
func upsertSyncConnRows(ctx context.Context, tx pgx.Tx, t TableNames, rows map[uuid.UUID]*syncConnRow, order []uuid.UUID, changed map[uuid.UUID]bool) error {
	var (
		ids, users        []uuid.UUID
		statuses          []string
		reauth            []bool
		syncing           []*uuid.UUID
		started, finished []*time.Time
		versions          []int64
	)
	for _, id := range order {
		if !changed[id] {
			continue
		}
		c := rows[id]
		ids, users, statuses, reauth = append(ids, c.id), append(users, c.userID), append(statuses, c.status), append(reauth, c.reauthorizing)
		syncing, started, finished = append(syncing, c.syncing), append(started, c.lastStarted), append(finished, c.lastSynced)
		versions = append(versions, c.version)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s (connection_id, user_id, status, reauthorizing, syncing, last_started_at, last_synced_at, version)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::boolean[], $5::uuid[], $6::timestamptz[], $7::timestamptz[], $8::bigint[])
ON CONFLICT (connection_id) DO UPDATE SET
    status = excluded.status, reauthorizing = excluded.reauthorizing, syncing = excluded.syncing,
    last_started_at = excluded.last_started_at, last_synced_at = excluded.last_synced_at, version = excluded.version`,
		t.Of(syncConnectionsTable)), ids, users, statuses, reauth, syncing, started, finished, versions)
	if err != nil {
		return fmt.Errorf("upsert sync connections: %w", err)
	}
	return nil
}

// upsertSyncRows writes the changed sync rows in one statement.
func upsertSyncRows(ctx context.Context, tx pgx.Tx, t TableNames, rows map[uuid.UUID]*syncRow, order []uuid.UUID) error {
	n := len(order)
	if n == 0 {
		return nil
	}
	var (
		ids, conns, users                = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		statuses, triggers, froms, tos   = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		forces                           = make([]bool, n)
		started                          = make([]time.Time, n)
		picked, finished                 = make([]*time.Time, n), make([]*time.Time, n)
		accounts, created, updated, same = make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
		removed                          = make([]int32, n)
		errs                             = make([]string, n)
		reasons, latest                  = make([]*string, n), make([]*string, n)
	)
	for i, id := range order {
		s := rows[id]
		b, err := json.Marshal(s.accountErrors)
		if err != nil {
			return fmt.Errorf("encode account errors of sync %s: %w", id, err)
		}
		ids[i], conns[i], users[i] = s.id, s.connectionID, s.userID
		statuses[i], triggers[i], froms[i], tos[i], forces[i] = s.status, s.trigger, s.from, s.to, s.force
		started[i], picked[i], finished[i] = s.startedAt, s.pickedUpAt, s.finishedAt
		accounts[i], created[i], updated[i] = int32(s.accounts), int32(s.counts.Created), int32(s.counts.Updated)
		same[i], removed[i], errs[i] = int32(s.counts.Unchanged), int32(s.counts.Removed), string(b)
		reasons[i], latest[i] = s.failureReason, s.latestPosted
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s (id, connection_id, user_id, status, trigger, force, window_from, window_to, started_at, picked_up_at,
    finished_at, accounts, created, updated, unchanged, removed, account_errors, failure_reason, latest_posted)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::boolean[], $7::date[], $8::date[],
    $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::int[], $13::int[], $14::int[], $15::int[], $16::int[],
    $17::jsonb[], $18::text[], $19::date[])
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, picked_up_at = excluded.picked_up_at, finished_at = excluded.finished_at,
    accounts = excluded.accounts, created = excluded.created, updated = excluded.updated, unchanged = excluded.unchanged,
    removed = excluded.removed, account_errors = excluded.account_errors, failure_reason = excluded.failure_reason,
    latest_posted = excluded.latest_posted`, t.Of(syncsTable)),
		ids, conns, users, statuses, triggers, forces, froms, tos, started, picked, finished,
		accounts, created, updated, same, removed, errs, reasons, latest)
	if err != nil {
		return fmt.Errorf("upsert syncs: %w", err)
	}
	return nil
}

// Reads selects the connection streams, the only ones Syncs folds.
func (Syncs) Reads() eventstore.Selection {
	return eventstore.Selection{StreamTypes: []eventstore.StreamType{eventstore.StreamConnection}}
}
