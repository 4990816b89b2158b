package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultDML is what the application role gets on every table of the schema
// that narrowTables does not list. TRUNCATE, REFERENCES and TRIGGER are never
// granted: no code path needs them, and TRIGGER would let the role attach
// code to the owner's tables.
const DefaultDML = "SELECT, INSERT, UPDATE, DELETE"

// ShadowSchema is where projection rebuilds build their shadow tables
// (migration 00002); the application role reads and writes them while a
// rebuild it runs replays the log.
const ShadowSchema = "projections_rebuild"

// narrowTable is a table on which the application role gets less than
// DefaultDML: GrantApp revokes everything it had there and grants only what
// grant returns (none when grant is nil).
type narrowTable struct {
	name  string
	grant func(ctx context.Context, tx *sql.Tx, table, role string) ([]string, error)
}

// narrowTables are the tables the application must not rewrite. A migration
// that adds an append-only table, or one only migrations touch, lists it
// here in the same change; every other table of the schema gets DefaultDML.
var narrowTables = []narrowTable{
	// The log: read it, append to it, never choose a position or a
	// transaction id (that would forge commit order) and never change it.
	{name: "events", grant: grantEvents},
	// goose's bookkeeping: only the owner writes it; reading it lets a
	// process holding only the application role's credentials find the
	// schema up to date (serve after a release job migrated) or report it.
	{name: "goose_db_version", grant: grantSelect},
	// Signed checkpoints and the stored levels of their Merkle tree
	// (migration 00016): append-only like the log, each row a fact about
	// the log at one moment. The checkpointer reads and inserts; nothing
	// may change or remove a row.
	{name: "audit_checkpoints", grant: grantSelectInsert},
	{name: "audit_tree_leaves", grant: grantSelectInsert},
	{name: "audit_tree_nodes", grant: grantSelectInsert},
	// Per-person data keys (migration 00017): created on first use,
	// destroyed by an erasure (an UPDATE that nulls the wrapped key and
	// sets erased_at), re-wrapped under a new master key. Never DELETE: the
	// erased row is the record that the person was erased; without it the
	// next event sealed for them would create a fresh key. Never UPDATE
	// user_id or created_at.
	{name: "personal_data_keys", grant: grantPersonalDataKeys},
}

// grantSelect grants SELECT only.
func grantSelect(_ context.Context, _ *sql.Tx, table, role string) ([]string, error) {
	return []string{"GRANT SELECT ON TABLE " + pgx.Identifier{table}.Sanitize() + " TO " + pgx.Identifier{role}.Sanitize()}, nil
}

// grantSelectInsert grants SELECT and INSERT only: an append-only table.
func grantSelectInsert(_ context.Context, _ *sql.Tx, table, role string) ([]string, error) {
	t, r := pgx.Identifier{table}.Sanitize(), pgx.Identifier{role}.Sanitize()
	return []string{"GRANT SELECT, INSERT ON TABLE " + t + " TO " + r}, nil
}

// personalDataKeyUpdates are the columns of personal_data_keys the
// application role may update: an erasure destroys the key, a rotation
// of the master key re-wraps it.
var personalDataKeyUpdates = []string{"key_id", "wrapped", "erased_at"}

// grantPersonalDataKeys grants SELECT, INSERT and UPDATE of
// personalDataKeyUpdates, and no DELETE.
func grantPersonalDataKeys(_ context.Context, _ *sql.Tx, table, role string) ([]string, error) {
	t, r := pgx.Identifier{table}.Sanitize(), pgx.Identifier{role}.Sanitize()
	cols := make([]string, len(personalDataKeyUpdates))
	for i, c := range personalDataKeyUpdates {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return []string{
		"GRANT SELECT, INSERT ON TABLE " + t + " TO " + r,
		"GRANT UPDATE (" + strings.Join(cols, ", ") + ") ON TABLE " + t + " TO " + r,
	}, nil
}

// AssignedEventColumns are the events columns the database assigns at
// insert and the application role may therefore not write: global_position
// (identity) and transaction_id (pg_current_xact_id()), which together are
// the commit order every subscriber reads in.
var AssignedEventColumns = []string{"global_position", "transaction_id"}

// grantEvents grants SELECT and INSERT on every column of events but the
// assigned ones; columns later migrations add become insertable too.
func grantEvents(ctx context.Context, tx *sql.Tx, table, role string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT attname FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND NOT (attname = ANY($2))
		ORDER BY attnum`, table, AssignedEventColumns)
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, pgx.Identifier{c}.Sanitize())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", table, err)
	}
	t, r := pgx.Identifier{table}.Sanitize(), pgx.Identifier{role}.Sanitize()
	return []string{
		"GRANT SELECT ON TABLE " + t + " TO " + r,
		"GRANT INSERT (" + strings.Join(cols, ", ") + ") ON TABLE " + t + " TO " + r,
	}, nil
}

// RoleOf returns the role a connection string logs in as, with libpq's
// defaults applied (PGUSER, then the operating-system user) exactly as a
// connection would.
func RoleOf(connString string) (string, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return "", fmt.Errorf("read the role of a connection string: %w", err)
	}
	return cfg.User, nil
}

// GrantApp gives role, the application's login role, exactly the privileges
// the application needs on what the connected (owner) role owns in the
// current schema and ShadowSchema: DefaultDML on every table except
// narrowTables, which get their own narrower grants; USAGE and SELECT on
// their sequences; and the same by default on tables and sequences the owner
// creates later (projection tables, rebuild shadows). Run it after every
// migration run: it is idempotent, and it is what keeps a new table usable.
// It waits for the migration lock, so instances starting together do not
// collide on catalog rows. When role is the connected role itself there is
// nothing to grant and it returns nil.
func GrantApp(ctx context.Context, db *sql.DB, role string) error {
	if role == "" {
		return fmt.Errorf("grant application privileges: no role named")
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("grant application privileges: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID); err != nil {
		return fmt.Errorf("grant application privileges: wait for the migration lock: %w", err)
	}
	var self bool
	if err := tx.QueryRowContext(ctx, `SELECT $1 = current_user`, role).Scan(&self); err != nil {
		return fmt.Errorf("grant application privileges: %w", err)
	}
	if self {
		return nil
	}
	stmts, err := grantStatements(ctx, tx, role)
	if err != nil {
		return fmt.Errorf("grant application privileges to %s: %w", role, err)
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("grant application privileges to %s: %s: %w", role, s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("grant application privileges to %s: %w", role, err)
	}
	return nil
}

// grantStatements lists GrantApp's statements in the order they must run.
func grantStatements(ctx context.Context, tx *sql.Tx, role string) ([]string, error) {
	r := pgx.Identifier{role}.Sanitize()
	var live string
	if err := tx.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&live); err != nil {
		return nil, err
	}
	schemas := pgx.Identifier{live}.Sanitize() + ", " + pgx.Identifier{ShadowSchema}.Sanitize()
	narrow := make([]string, len(narrowTables))
	for i, n := range narrowTables {
		narrow[i] = n.name
	}
	stmts := []string{"GRANT USAGE ON SCHEMA " + schemas + " TO " + r}

	// Tables and sequences owned here, each but the narrow ones (and the
	// sequences behind their identity or serial columns) with full DML.
	rows, err := tx.QueryContext(ctx, `SELECT c.oid::regclass::text, c.relkind = 'S'
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ($1, $2) AND c.relkind IN ('r', 'p', 'S') AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
		  AND NOT (n.nspname = $1 AND c.relname = ANY($3))
		  AND NOT EXISTS (SELECT 1 FROM pg_depend d
		        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
		          AND d.refclassid = 'pg_class'::regclass
		          AND d.refobjid IN (SELECT to_regclass(quote_ident(t)) FROM unnest($3::text[]) AS t))
		ORDER BY 1`, live, ShadowSchema, narrow)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for rows.Next() {
		var name string
		var sequence bool
		if err := rows.Scan(&name, &sequence); err != nil {
			rows.Close()
			return nil, err
		}
		if sequence {
			stmts = append(stmts, "GRANT USAGE, SELECT ON SEQUENCE "+name+" TO "+r)
		} else {
			stmts = append(stmts, "GRANT "+DefaultDML+" ON TABLE "+name+" TO "+r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}

	for _, n := range narrowTables {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT to_regclass(quote_ident($1)) IS NOT NULL`, n.name).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			continue
		}
		t := pgx.Identifier{n.name}.Sanitize()
		// REVOKE on the table takes its column grants with it, so a
		// narrower grant of an earlier version cannot linger.
		stmts = append(stmts, "REVOKE ALL ON TABLE "+t+" FROM "+r)
		seqs, err := ownedSequences(ctx, tx, n.name)
		if err != nil {
			return nil, err
		}
		for _, s := range seqs {
			stmts = append(stmts, "REVOKE ALL ON SEQUENCE "+s+" FROM "+r)
		}
		if n.grant != nil {
			g, err := n.grant(ctx, tx, n.name, role)
			if err != nil {
				return nil, err
			}
			stmts = append(stmts, g...)
		}
	}

	// What the owner creates from now on: projection tables at run time and
	// a rebuild's shadow tables, which keep their grants when moved live.
	// A narrow table a later migration creates gets these too, for the
	// moments until GrantApp runs at the end of that migration run.
	stmts = append(stmts,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA "+schemas+" GRANT "+DefaultDML+" ON TABLES TO "+r,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA "+schemas+" GRANT USAGE, SELECT ON SEQUENCES TO "+r,
	)
	return stmts, nil
}

// ownedSequences returns the sequences behind table's identity and serial
// columns, quoted.
func ownedSequences(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT d.objid::regclass::text FROM pg_depend d
		WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
		  AND d.refobjid = to_regclass(quote_ident($1)) AND d.deptype IN ('a', 'i')
		  AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'
		ORDER BY 1`, table)
	if err != nil {
		return nil, fmt.Errorf("list sequences of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
