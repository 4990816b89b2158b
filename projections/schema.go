package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Advisory lock namespaces (the first key of the two-key form, which lives in
// a lock space of its own apart from goose's single-bigint migration lock);
// the second key is a hash of the projector name.
const (
	lockConsumer int32 = 0x64700001 // one live consumer per projection, held per session
	lockRebuild  int32 = 0x64700002 // one rebuild per projection, held per session
	lockSchema   int32 = 0x64700003 // creating live tables, held per transaction
)

func nameKey(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32())
}

// DeferredIndexer is implemented by a projector whose secondary indexes
// serve only its queries, never its own Apply: a rebuild creates them once
// the replay into the shadow tables is done, when building an index over a
// full table costs a fraction of keeping it up to date row by row, while
// Ensure creates them with the live tables. The indexes Apply needs (the
// primary keys of its upserts, what its updates look rows up by) stay in
// Schema.
type DeferredIndexer interface {
	// Indexes returns the DDL creating the deferred indexes on the tables
	// named by t.
	Indexes(t TableNames) string
}

// deferredIndexes returns p's deferred index DDL for t, "" when it has none.
func deferredIndexes(p Projector, t TableNames) string {
	if di, ok := p.(DeferredIndexer); ok {
		return di.Indexes(t)
	}
	return ""
}

// schemaHash fingerprints the DDL of p's live tables and indexes, so that a
// deployment whose projector changed shape can report the read model as stale.
func schemaHash(p Projector) string {
	live := LiveTables(p)
	sum := sha256.Sum256([]byte(p.Schema(live) + deferredIndexes(p, live)))
	return hex.EncodeToString(sum[:8])
}

// Ensure creates the live tables and the checkpoint of every projector in ps
// that has none yet, so a fresh database (or a test) can query read models at
// once. It refuses a projector with only some of its tables: that state needs
// an operator's rebuild, not a guess.
func Ensure(ctx context.Context, pool *pgxpool.Pool, ps ...Projector) error {
	if err := validate(ps); err != nil {
		return err
	}
	for _, p := range ps {
		if err := ensureOne(ctx, pool, p); err != nil {
			return err
		}
	}
	return nil
}

func ensureOne(ctx context.Context, pool *pgxpool.Pool, p Projector) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Two instances starting together must not both run CREATE TABLE.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockSchema, nameKey(p.Name())); err != nil {
			return fmt.Errorf("ensure tables of %s: lock: %w", p.Name(), err)
		}
		var missing []string
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(t ORDER BY t), '{}') FROM unnest($1::text[]) AS t
			WHERE to_regclass(quote_ident(t)) IS NULL`, p.Tables()).Scan(&missing); err != nil {
			return fmt.Errorf("ensure tables of %s: %w", p.Name(), err)
		}
		switch len(missing) {
		case 0:
			return ensureCheckpoint(ctx, tx, p.Name())
		case len(p.Tables()):
		default:
			return fmt.Errorf("ensure tables of %s: %v missing while the others exist; run `dashtam projections rebuild %s`",
				p.Name(), missing, p.Name())
		}
		if _, err := tx.Exec(ctx, p.Schema(LiveTables(p))+deferredIndexes(p, LiveTables(p))); err != nil {
			return fmt.Errorf("create tables of %s: %w", p.Name(), err)
		}
		// New, empty tables start from the beginning of the log whatever an
		// old checkpoint row says.
		_, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name, schema_hash) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET transaction_id = '0', global_position = 0, events_applied = 0,
				schema_hash = excluded.schema_hash, updated_at = now()`, p.Name(), schemaHash(p))
		if err != nil {
			return fmt.Errorf("reset checkpoint of %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM projection_parked_events WHERE projection = $1`, p.Name()); err != nil {
			return fmt.Errorf("reset parked events of %s: %w", p.Name(), err)
		}
		return nil
	})
}
