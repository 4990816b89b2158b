package connections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The row access of the connection use cases (migration 00014): OAuth
// states, live aliases and the vault table. Use-case files hold no SQL.

// querier reads rows: the pool, or a unit of work's transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// aliasKey is how aliases compare: case-insensitively.
func aliasKey(alias string) string { return strings.ToLower(alias) }

// insertAlias claims alias for the new connection among the user's live
// connections of the provider, or returns ErrAliasTaken.
func insertAlias(ctx context.Context, tx pgx.Tx, connectionID, userID uuid.UUID, slug, alias string) error {
	_, err := tx.Exec(ctx, `INSERT INTO connection_aliases (connection_id, user_id, provider_slug, alias_key, live)
		VALUES ($1, $2, $3, $4, true)`, connectionID, userID, slug, aliasKey(alias))
	return aliasError(err)
}

// renameAlias moves the connection's claim to alias, or returns ErrAliasTaken.
func renameAlias(ctx context.Context, tx pgx.Tx, connectionID uuid.UUID, alias string) error {
	_, err := tx.Exec(ctx, `UPDATE connection_aliases SET alias_key = $2 WHERE connection_id = $1`, connectionID, aliasKey(alias))
	return aliasError(err)
}

// releaseAlias frees the connection's alias: it failed or was disconnected.
func releaseAlias(ctx context.Context, tx pgx.Tx, connectionID uuid.UUID) error {
	if _, err := tx.Exec(ctx, `UPDATE connection_aliases SET live = false WHERE connection_id = $1`, connectionID); err != nil {
		return fmt.Errorf("release alias: %w", err)
	}
	return nil
}

func aliasError(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "connection_aliases_live":
		return ErrAliasTaken
	}
	return fmt.Errorf("claim alias: %w", err)
}

// insertState stores an authorisation in flight by its state's digest.
func insertState(ctx context.Context, tx pgx.Tx, digest []byte, connectionID, userID uuid.UUID, slug string, verifierBlob []byte, expires time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO oauth_states (state_digest, connection_id, user_id, provider_slug, verifier_blob, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, digest, connectionID, userID, slug, verifierBlob, expires); err != nil {
		return fmt.Errorf("store oauth state: %w", err)
	}
	return nil
}

// stateRow is an authorisation in flight as its state found it.
type stateRow struct {
	connectionID, userID uuid.UUID
	providerSlug         string
	verifierBlob         []byte
	expiresAt            time.Time
	// used is true when the state had been spent before (a replay).
	used bool
}

// errStateUnknown means no authorisation ever had the state.
var errStateUnknown = errors.New("unknown oauth state")

// spendState marks the state with digest used, once: it returns the row as
// it was, with used true when an earlier callback spent it (a replay), or
// errStateUnknown.
func spendState(ctx context.Context, q querier, digest []byte, now time.Time) (stateRow, error) {
	var r stateRow
	err := q.QueryRow(ctx, `UPDATE oauth_states s SET used_at = coalesce(s.used_at, $2)
		FROM (SELECT state_digest, used_at IS NOT NULL AS was_used FROM oauth_states WHERE state_digest = $1 FOR UPDATE) old
		WHERE s.state_digest = old.state_digest
		RETURNING s.connection_id, s.user_id, s.provider_slug, s.verifier_blob, s.expires_at, old.was_used`,
		digest, now).Scan(&r.connectionID, &r.userID, &r.providerSlug, &r.verifierBlob, &r.expiresAt, &r.used)
	if errors.Is(err, pgx.ErrNoRows) {
		return stateRow{}, errStateUnknown
	}
	if err != nil {
		return stateRow{}, fmt.Errorf("spend oauth state: %w", err)
	}
	return r, nil
}

// sweepStates deletes states that expired before cutoff; nothing reads them.
func sweepStates(ctx context.Context, q querier, cutoff time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM oauth_states WHERE expires_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("sweep oauth states: %w", err)
	}
	return tag.RowsAffected(), nil
}

// deleteStates deletes the authorisations in flight of a connection.
func deleteStates(ctx context.Context, tx pgx.Tx, connectionID uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM oauth_states WHERE connection_id = $1`, connectionID); err != nil {
		return fmt.Errorf("delete oauth states: %w", err)
	}
	return nil
}

// vaultRow is a connection's sealed credentials and what is known of them
// without opening the blob.
type vaultRow struct {
	keyID            string
	blob             []byte
	fingerprint      string
	accessExpiresAt  time.Time
	refreshExpiresAt *time.Time
	generation       int64
	// updatedAt is when the credentials were stored.
	updatedAt time.Time
	// refreshingUntil is the end of the refresh lease in force, if any.
	refreshingUntil *time.Time
}

// storeCredentials stores (or replaces) a connection's sealed credentials.
func storeCredentials(ctx context.Context, tx pgx.Tx, connectionID uuid.UUID, r vaultRow, now time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO provider_credentials (connection_id, key_id, blob, fingerprint,
			access_expires_at, refresh_expires_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (connection_id) DO UPDATE SET key_id = excluded.key_id, blob = excluded.blob,
			fingerprint = excluded.fingerprint, access_expires_at = excluded.access_expires_at,
			refresh_expires_at = excluded.refresh_expires_at, generation = provider_credentials.generation + 1,
			refreshing_until = NULL, updated_at = excluded.updated_at`,
		connectionID, r.keyID, r.blob, r.fingerprint, r.accessExpiresAt, r.refreshExpiresAt, now); err != nil {
		return fmt.Errorf("store credentials: %w", err)
	}
	return nil
}

// readCredentials returns a connection's sealed credentials, or pgx.ErrNoRows.
func readCredentials(ctx context.Context, q querier, connectionID uuid.UUID) (vaultRow, error) {
	var r vaultRow
	err := q.QueryRow(ctx, `SELECT key_id, blob, fingerprint, access_expires_at, refresh_expires_at, generation,
			updated_at, refreshing_until
		FROM provider_credentials WHERE connection_id = $1`, connectionID).
		Scan(&r.keyID, &r.blob, &r.fingerprint, &r.accessExpiresAt, &r.refreshExpiresAt, &r.generation, &r.updatedAt, &r.refreshingUntil)
	if err != nil {
		return vaultRow{}, err
	}
	return r, nil
}

// takeRefreshLease claims the one refresh of a connection until until and
// returns its credentials; ok is false when another refresh holds an
// unexpired lease, and the error pgx.ErrNoRows when there are none.
// Committed at once, so the lease holds across instances while the
// provider is called with no transaction open.
func takeRefreshLease(ctx context.Context, q querier, connectionID uuid.UUID, now, until time.Time) (vaultRow, bool, error) {
	var r vaultRow
	err := q.QueryRow(ctx, `UPDATE provider_credentials SET refreshing_until = $3
		WHERE connection_id = $1 AND (refreshing_until IS NULL OR refreshing_until <= $2)
		RETURNING key_id, blob, fingerprint, access_expires_at, refresh_expires_at, generation, updated_at, refreshing_until`,
		connectionID, now, until).Scan(&r.keyID, &r.blob, &r.fingerprint, &r.accessExpiresAt, &r.refreshExpiresAt, &r.generation,
		&r.updatedAt, &r.refreshingUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		// Held by another refresh, or no credentials at all: tell which.
		if _, err := readCredentials(ctx, q, connectionID); err != nil {
			return vaultRow{}, false, err
		}
		return vaultRow{}, false, nil
	}
	if err != nil {
		return vaultRow{}, false, fmt.Errorf("take refresh lease: %w", err)
	}
	return r, true, nil
}

// replaceCredentials stores refreshed credentials over the generation the
// refresh started from and ends the lease; it returns false when the row
// moved on meanwhile (a re-authorisation stored newer ones, or the
// connection was disconnected), in which case nothing is written.
func replaceCredentials(ctx context.Context, tx pgx.Tx, connectionID uuid.UUID, generation int64, r vaultRow, now time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE provider_credentials SET key_id = $3, blob = $4, fingerprint = $5,
			access_expires_at = $6, refresh_expires_at = $7, generation = generation + 1, refreshing_until = NULL, updated_at = $8
		WHERE connection_id = $1 AND generation = $2`,
		connectionID, generation, r.keyID, r.blob, r.fingerprint, r.accessExpiresAt, r.refreshExpiresAt, now)
	if err != nil {
		return false, fmt.Errorf("store refreshed credentials: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// releaseLease ends a refresh lease without new credentials.
func releaseLease(ctx context.Context, q querier, connectionID uuid.UUID, generation int64) error {
	if _, err := q.Exec(ctx, `UPDATE provider_credentials SET refreshing_until = NULL
		WHERE connection_id = $1 AND generation = $2`, connectionID, generation); err != nil {
		return fmt.Errorf("release refresh lease: %w", err)
	}
	return nil
}

// destroyCredentials deletes a connection's credentials.
func destroyCredentials(ctx context.Context, tx pgx.Tx, connectionID uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM provider_credentials WHERE connection_id = $1`, connectionID); err != nil {
		return fmt.Errorf("destroy credentials: %w", err)
	}
	return nil
}

// staleRow is a sealed blob under an old key, as the rotation read it.
type staleRow struct {
	connectionID uuid.UUID
	generation   int64
	digest       []byte // the state's, for a verifier
	blob         []byte
}

// sealedRow is credentials re-sealed over the generation they were read at.
type sealedRow struct {
	connectionID uuid.UUID
	generation   int64
	blob         []byte
}

// sealedVerifier is a PKCE verifier re-sealed in place of old.
type sealedVerifier struct {
	digest, old, blob []byte
}

// blobKeyIDSQL is the key id a sealed blob names, as bytes (the vault's
// layout, adapters/vault: version, key id length, key id, ...); NULL for a
// blob too short to name one. Compared with convert_to($1, 'UTF8').
const blobKeyIDSQL = `CASE WHEN length(%[1]s) >= 2 AND length(%[1]s) >= 2 + get_byte(%[1]s, 1)
	THEN substring(%[1]s FROM 3 FOR get_byte(%[1]s, 1)) END`

// staleCredentials lists up to limit credentials not sealed under newest,
// after connection id after in id order.
func staleCredentials(ctx context.Context, pool *pgxpool.Pool, newest string, after uuid.UUID, limit int) ([]staleRow, error) {
	rows, err := pool.Query(ctx, `SELECT connection_id, generation, blob FROM provider_credentials
		WHERE key_id <> $1 AND connection_id > $2 ORDER BY connection_id LIMIT $3`, newest, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list credentials to re-seal: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (staleRow, error) {
		var s staleRow
		return s, r.Scan(&s.connectionID, &s.generation, &s.blob)
	})
	if err != nil {
		return nil, fmt.Errorf("list credentials to re-seal: %w", err)
	}
	return out, nil
}

// replaceSealedCredentials stores re-sealed credentials under keyID where
// the row still has the generation they were read at, in one statement,
// and returns how many it stored. The generation does not move: to a
// refresh, a re-sealed row holds the same credentials.
func replaceSealedCredentials(ctx context.Context, pool *pgxpool.Pool, keyID string, rows []sealedRow) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	ids, gens, blobs := make([]uuid.UUID, len(rows)), make([]int64, len(rows)), make([][]byte, len(rows))
	for i, r := range rows {
		ids[i], gens[i], blobs[i] = r.connectionID, r.generation, r.blob
	}
	tag, err := pool.Exec(ctx, `UPDATE provider_credentials p SET key_id = $1, blob = u.blob
		FROM unnest($2::uuid[], $3::bigint[], $4::bytea[]) AS u(connection_id, generation, blob)
		WHERE p.connection_id = u.connection_id AND p.generation = u.generation`, keyID, ids, gens, blobs)
	if err != nil {
		return 0, fmt.Errorf("store re-sealed credentials: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// staleVerifiers lists up to limit PKCE verifiers not sealed under
// newest, after state digest after in digest order.
func staleVerifiers(ctx context.Context, pool *pgxpool.Pool, newest string, after []byte, limit int) ([]staleRow, error) {
	rows, err := pool.Query(ctx, `SELECT state_digest, connection_id, verifier_blob FROM oauth_states
		WHERE verifier_blob IS NOT NULL AND ($2::bytea IS NULL OR state_digest > $2)
		  AND `+fmt.Sprintf(blobKeyIDSQL, "verifier_blob")+` IS DISTINCT FROM convert_to($1, 'UTF8')
		ORDER BY state_digest LIMIT $3`, newest, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list verifiers to re-seal: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (staleRow, error) {
		var s staleRow
		return s, r.Scan(&s.digest, &s.connectionID, &s.blob)
	})
	if err != nil {
		return nil, fmt.Errorf("list verifiers to re-seal: %w", err)
	}
	return out, nil
}

// replaceSealedVerifiers stores re-sealed verifiers where the state still
// holds the blob they were made from, and returns how many it stored.
func replaceSealedVerifiers(ctx context.Context, pool *pgxpool.Pool, rows []sealedVerifier) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	digests, olds, blobs := make([][]byte, len(rows)), make([][]byte, len(rows)), make([][]byte, len(rows))
	for i, r := range rows {
		digests[i], olds[i], blobs[i] = r.digest, r.old, r.blob
	}
	tag, err := pool.Exec(ctx, `UPDATE oauth_states s SET verifier_blob = u.blob
		FROM unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS u(digest, old, blob)
		WHERE s.state_digest = u.digest AND s.verifier_blob = u.old`, digests, olds, blobs)
	if err != nil {
		return 0, fmt.Errorf("store re-sealed verifiers: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// countStale counts the credentials and verifiers not sealed under newest.
func countStale(ctx context.Context, pool *pgxpool.Pool, newest string) (creds, states int, err error) {
	err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM provider_credentials WHERE key_id <> $1),
		(SELECT count(*) FROM oauth_states WHERE verifier_blob IS NOT NULL
		   AND `+fmt.Sprintf(blobKeyIDSQL, "verifier_blob")+` IS DISTINCT FROM convert_to($1, 'UTF8'))`, newest).Scan(&creds, &states)
	if err != nil {
		return 0, 0, fmt.Errorf("count blobs to re-seal: %w", err)
	}
	return creds, states, nil
}
