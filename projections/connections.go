package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
)

// Connections projects one row per provider connection with what
// GET /api/v1/connections lists: owner, provider, alias, status and the
// times the API shows. It folds the connection events exactly as the
// aggregate (aggregates/connection) does, so a row shows what loading the
// stream would show once the projector has caught up.
//
// The alias is personal data, sealed in the log under its owner's key
// (docs/audit.md): a manager hands the projector its store, which opens it
// (an alias whose owner was erased reads eventstore.ErasedValue). A sealed
// alias the projector cannot open is an error, never a row showing
// ciphertext. A user's UserErased sets the alias of every row of theirs to
// eventstore.ErasedValue, in log order, so a rebuild erases it again.
//
// Event types that change nothing the list shows (the attempts, and the
// types later features add to the stream, such as syncs) are passed over:
// they are not foreign to the projector, only of no interest to it. An
// event of a type it folds that it cannot decode, or of a schema version
// it does not know, is an error, and so is one that comes before the
// stream's ProviderConnectionAttempted.
//
// Each row remembers the stream version it has folded up to, and an event
// at or below it changes nothing: a batch applied again (after a savepoint
// rollback the consumer's transaction undid, or a delivery repeated by
// anything else) leaves the rows as they were. The fold depends on the
// order of a stream's events, so a parked event retried after later ones
// is skipped; `dashtam projections rebuild connections` replays the log in
// order instead (docs/projections.md).
type Connections struct {
	// store opens sealed aliases; nil outside a manager (NewManager sets it).
	store *eventstore.Store
}

// withStore returns the projector opening sealed aliases through store.
func (c Connections) withStore(store *eventstore.Store) Projector {
	c.store = store
	return c
}

// connectionsTable is the logical name of the one table Connections owns.
const connectionsTable = "connections"

// Name identifies the projector.
func (Connections) Name() string { return "connections" }

// Tables lists the one table it owns.
func (Connections) Tables() []string { return []string{connectionsTable} }

// Schema creates the connections table under the given name. The
// credentials' expiries are kept as the events state them; the query shows
// them only while the connection is active, as the API does.
func (Connections) Schema(t TableNames) string {
	return fmt.Sprintf(`
CREATE TABLE %[1]s (
    id                 uuid        PRIMARY KEY,
    user_id            uuid        NOT NULL,
    provider_slug      text        NOT NULL,
    alias              text        NOT NULL,
    status             text        NOT NULL,
    created_at         timestamptz NOT NULL,
    connected_at       timestamptz,
    last_sync_at       timestamptz, -- the latest SyncCompleted's time
    access_expires_at  timestamptz,
    refresh_expires_at timestamptz,
    disconnected_at    timestamptz,
    reauthorizing      boolean     NOT NULL,
    version            bigint      NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX ON %[1]s (user_id, created_at, id);
`, t.Of(connectionsTable))
}

// connectionRow is one connection as the table holds it.
type connectionRow struct {
	id, userID                     uuid.UUID
	providerSlug, alias, status    string
	createdAt                      time.Time
	connectedAt, lastSyncAt        *time.Time
	accessExpiresAt, refreshExpiry *time.Time
	disconnectedAt                 *time.Time
	reauthorizing                  bool
	version                        int64
	updatedAt                      time.Time
}

// Apply folds the batch's connection events into their rows: it reads the
// rows the batch touches, folds in Go and writes them back in one upsert.
// Events of other stream types are not its concern.
func (c Connections) Apply(ctx context.Context, tx pgx.Tx, t TableNames, batch []eventstore.Record) error {
	var ids, erased []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, r := range batch {
		if r.Stream.Type == eventstore.StreamConnection && !seen[r.Stream.ID] {
			seen[r.Stream.ID] = true
			ids = append(ids, r.Stream.ID)
		}
		if r.Stream.Type == eventstore.StreamUser && r.EventType == (user.UserErased{}).EventType() {
			erased = append(erased, r.Stream.ID)
		}
	}
	if len(ids) > 0 {
		if err := c.fold(ctx, tx, t, batch, ids); err != nil {
			return err
		}
	}
	return eraseAliases(ctx, tx, t, erased)
}

// eraseAliases replaces the alias of every connection of the erased users.
// It runs after the batch's rows are written: an alias a connection event
// later in the batch carries is the erased user's too.
func eraseAliases(ctx context.Context, tx pgx.Tx, t TableNames, users []uuid.UUID) error {
	if len(users) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET alias = $2 WHERE user_id = ANY($1) AND alias <> $2`,
		t.Of(connectionsTable)), users, eventstore.ErasedValue); err != nil {
		return fmt.Errorf("erase aliases: %w", err)
	}
	return nil
}

// fold folds the batch's events of connections ids into their rows.
func (c Connections) fold(ctx context.Context, tx pgx.Tx, t TableNames, batch []eventstore.Record, ids []uuid.UUID) error {
	rows, err := readConnectionRows(ctx, tx, t, ids)
	if err != nil {
		return err
	}
	changed := map[uuid.UUID]bool{}
	for _, r := range batch {
		if r.Stream.Type != eventstore.StreamConnection {
			continue
		}
		row := rows[r.Stream.ID]
		if (row != nil && r.Version <= row.version) || !foldedConnectionEvents[r.EventType] {
			continue // applied before, or of no interest
		}
		r, err := c.open(ctx, r)
		if err != nil {
			return fmt.Errorf("connection %s version %d (%s): %w", r.Stream.ID, r.Version, r.EventType, err)
		}
		next, err := foldConnection(row, r)
		if err != nil {
			return fmt.Errorf("connection %s version %d (%s): %w", r.Stream.ID, r.Version, r.EventType, err)
		}
		next.version, next.updatedAt = r.Version, r.RecordedAt
		rows[r.Stream.ID] = next
		changed[r.Stream.ID] = true
	}
	return upsertConnectionRows(ctx, tx, t, rows, ids, changed)
}

// errSealed means a connection event's alias is sealed and this projector
// has no store that can open it: folding it would show ciphertext.
var errSealed = errors.New("the alias is sealed personal data and this process cannot open it (the store has no personal-data keys: DASHTAM_ENCRYPTION_KEY)")

// personalConnectionEvents are the folded event types with personal fields.
var personalConnectionEvents = map[string]bool{
	connection.ProviderConnectionAttempted{}.EventType(): true,
	connection.ProviderConnectionRenamed{}.EventType():   true,
}

// open returns r with its alias opened by the store: the plaintext, or
// eventstore.ErasedValue once the owner was erased.
func (c Connections) open(ctx context.Context, r eventstore.Record) (eventstore.Record, error) {
	if !personalConnectionEvents[r.EventType] {
		return r, nil
	}
	if c.store != nil {
		payload, _, err := c.store.Reveal(ctx, r)
		if err != nil {
			return r, fmt.Errorf("open the alias: %w", err)
		}
		r.Payload = payload
	}
	if bytes.Contains(r.Payload, []byte(`"`+eventstore.SealedPrefix)) {
		return r, errSealed
	}
	return r, nil
}

// readConnectionRows returns the existing rows of ids.
func readConnectionRows(ctx context.Context, tx pgx.Tx, t TableNames, ids []uuid.UUID) (map[uuid.UUID]*connectionRow, error) {
	out := make(map[uuid.UUID]*connectionRow, len(ids))
	rs, err := tx.Query(ctx, fmt.Sprintf(`SELECT id, user_id, provider_slug, alias, status, created_at, connected_at,
		last_sync_at, access_expires_at, refresh_expires_at, disconnected_at, reauthorizing, version, updated_at
		FROM %s WHERE id = ANY($1)`, t.Of(connectionsTable)), ids)
	if err != nil {
		return nil, fmt.Errorf("read connections: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var c connectionRow
		if err := rs.Scan(&c.id, &c.userID, &c.providerSlug, &c.alias, &c.status, &c.createdAt, &c.connectedAt,
			&c.lastSyncAt, &c.accessExpiresAt, &c.refreshExpiry, &c.disconnectedAt, &c.reauthorizing, &c.version, &c.updatedAt); err != nil {
			return nil, fmt.Errorf("read connections: %w", err)
		}
		out[c.id] = &c
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read connections: %w", err)
	}
	return out, nil
}

// foldedConnectionEvents are the event types that change what the list
// shows; the attempts of refreshes and disconnections change nothing until
// their outcome, and of a sync only its completion shows (last_sync_at).
var foldedConnectionEvents = map[string]bool{
	connection.ProviderConnectionAttempted{}.EventType():      true,
	connection.ProviderConnectionSucceeded{}.EventType():      true,
	connection.ProviderConnectionFailed{}.EventType():         true,
	connection.ProviderTokenRefreshSucceeded{}.EventType():    true,
	connection.ProviderReauthenticationRequired{}.EventType(): true,
	connection.ProviderConnectionRenamed{}.EventType():        true,
	connection.ProviderDisconnectionSucceeded{}.EventType():   true,
	connection.ProviderDisconnectionFailed{}.EventType():      true,
	connection.SyncCompleted{}.EventType():                    true,
}

// errBeforeAttempt means a stream's event came before any
// ProviderConnectionAttempted: the row has no owner to belong to.
var errBeforeAttempt = errors.New("event before the connection was attempted")

// foldConnection returns row (nil: none yet) after record r, as a copy:
// the caller's row is left alone, so a failed fold changes nothing.
func foldConnection(row *connectionRow, r eventstore.Record) (*connectionRow, error) {
	if r.SchemaVersion != 1 {
		return nil, fmt.Errorf("schema version %d is unknown to the connections projector", r.SchemaVersion)
	}
	var c connectionRow
	if row != nil {
		c = *row
	} else if r.EventType != (connection.ProviderConnectionAttempted{}).EventType() {
		return nil, errBeforeAttempt
	}
	switch r.EventType {
	case connection.ProviderConnectionAttempted{}.EventType():
		var e connection.ProviderConnectionAttempted
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		if row == nil {
			c = connectionRow{id: r.Stream.ID, userID: e.UserID, providerSlug: e.ProviderSlug, alias: e.Alias,
				status: string(connection.StatusPending), createdAt: e.At}
		}
		c.reauthorizing = e.Reauthorization
	case connection.ProviderConnectionSucceeded{}.EventType():
		var e connection.ProviderConnectionSucceeded
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		c.status = string(connection.StatusActive)
		if c.connectedAt == nil {
			c.connectedAt = timeOrNil(e.At)
		}
		c.accessExpiresAt, c.refreshExpiry = timeOrNil(e.Credentials.AccessExpiresAt), timeOrNil(e.Credentials.RefreshExpiresAt)
		c.reauthorizing = false
	case connection.ProviderConnectionFailed{}.EventType():
		var e connection.ProviderConnectionFailed
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		if !c.reauthorizing && c.status == string(connection.StatusPending) {
			c.status = string(connection.StatusFailed)
		}
		c.reauthorizing = false
	case connection.ProviderTokenRefreshSucceeded{}.EventType():
		var e connection.ProviderTokenRefreshSucceeded
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		c.accessExpiresAt, c.refreshExpiry = timeOrNil(e.Credentials.AccessExpiresAt), timeOrNil(e.Credentials.RefreshExpiresAt)
	case connection.ProviderReauthenticationRequired{}.EventType():
		var e connection.ProviderReauthenticationRequired
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		if c.status == string(connection.StatusActive) {
			c.status = string(connection.StatusNeedsReauth)
		}
	case connection.SyncCompleted{}.EventType():
		var e connection.SyncCompleted
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		at := e.At
		c.lastSyncAt = &at
	case connection.ProviderConnectionRenamed{}.EventType():
		var e connection.ProviderConnectionRenamed
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		c.alias = e.Alias
	case connection.ProviderDisconnectionSucceeded{}.EventType():
		var e connection.ProviderDisconnectionSucceeded
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		c.disconnect(e.At)
	case connection.ProviderDisconnectionFailed{}.EventType():
		var e connection.ProviderDisconnectionFailed
		if err := decodePayload(r, &e); err != nil {
			return nil, err
		}
		c.disconnect(e.At)
	default:
		return nil, fmt.Errorf("event type %q is unknown to the connections projector", r.EventType)
	}
	return &c, nil
}

// disconnect records the end of the connection, whose credentials are gone.
func (c *connectionRow) disconnect(at time.Time) {
	c.status, c.disconnectedAt = string(connection.StatusDisconnected), timeOrNil(at)
	c.accessExpiresAt, c.refreshExpiry, c.reauthorizing = nil, nil, false
}

// decodePayload decodes r's payload into v.
func decodePayload(r eventstore.Record, v any) error {
	if err := json.Unmarshal(r.Payload, v); err != nil {
		return fmt.Errorf("decode payload: %w", err)
	}
	return nil
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// upsertConnectionRows writes the changed rows, in the batch's order of
// first appearance, in one statement.
func upsertConnectionRows(ctx context.Context, tx pgx.Tx, t TableNames, rows map[uuid.UUID]*connectionRow, order []uuid.UUID, changed map[uuid.UUID]bool) error {
	n := len(changed)
	if n == 0 {
		return nil
	}
	var (
		ids, users                               = make([]uuid.UUID, 0, n), make([]uuid.UUID, 0, n)
		slugs, aliases, statuses                 = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		created, updated                         = make([]time.Time, 0, n), make([]time.Time, 0, n)
		connected, synced, access, refresh, gone = make([]*time.Time, 0, n), make([]*time.Time, 0, n), make([]*time.Time, 0, n), make([]*time.Time, 0, n), make([]*time.Time, 0, n)
		reauth                                   = make([]bool, 0, n)
		versions                                 = make([]int64, 0, n)
	)
	for _, id := range order {
		if !changed[id] {
			continue
		}
		c := rows[id]
		ids, users = append(ids, c.id), append(users, c.userID)
		slugs, aliases, statuses = append(slugs, c.providerSlug), append(aliases, c.alias), append(statuses, c.status)
		created, updated = append(created, c.createdAt), append(updated, c.updatedAt)
		connected, synced = append(connected, c.connectedAt), append(synced, c.lastSyncAt)
		access, refresh, gone = append(access, c.accessExpiresAt), append(refresh, c.refreshExpiry), append(gone, c.disconnectedAt)
		reauth, versions = append(reauth, c.reauthorizing), append(versions, c.version)
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s (id, user_id, provider_slug, alias, status, created_at, connected_at, last_sync_at,
    access_expires_at, refresh_expires_at, disconnected_at, reauthorizing, version, updated_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[],
    $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::boolean[], $13::bigint[], $14::timestamptz[])
ON CONFLICT (id) DO UPDATE SET
    alias = excluded.alias, status = excluded.status, connected_at = excluded.connected_at,
    last_sync_at = excluded.last_sync_at, access_expires_at = excluded.access_expires_at,
    refresh_expires_at = excluded.refresh_expires_at, disconnected_at = excluded.disconnected_at,
    reauthorizing = excluded.reauthorizing, version = excluded.version, updated_at = excluded.updated_at`, t.Of(connectionsTable)),
		ids, users, slugs, aliases, statuses, created, connected, synced, access, refresh, gone, reauth, versions, updated)
	if err != nil {
		return fmt.Errorf("upsert connections: %w", err)
	}
	return nil
}

// Reads selects the connection streams it folds and the user streams, whose
// erasure replaces the aliases.
func (Connections) Reads() eventstore.Selection {
	return eventstore.Selection{StreamTypes: []eventstore.StreamType{eventstore.StreamConnection, eventstore.StreamUser}}
}
