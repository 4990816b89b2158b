package migrations_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/dashtam/dashtam/migrations"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// rolePair returns the application and owner pools of a fresh database, and
// skips when one role plays both (DATABASE_MIGRATE_URL unset): then there is
// no application role to test.
func rolePair(t *testing.T) (app, owner *pgxpool.Pool) {
	t.Helper()
	app, owner = testdb.NewPair(t)
	if app.Config().ConnConfig.User == owner.Config().ConnConfig.User {
		t.Skip("DATABASE_MIGRATE_URL is unset: one role owns and uses the database, so there is no application role to test (make test sets both)")
	}
	return app, owner
}

// insertEventSQL appends one event naming only the columns the application
// may write, as eventstore does.
const insertEventSQL = `INSERT INTO events (stream_type, stream_id, version, event_id, event_type, schema_version,
	payload, metadata, recorded_at, prev_hash, hash)
	VALUES ('user', gen_random_uuid(), 1, gen_random_uuid(), 'TestHappened', 1, '{}', '{}', now(),
	        decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex'))`

// TestAppRoleCannotRewriteTheLog runs, as the application role, every way to
// change history or escalate that the role's privileges must rule out, and
// checks each is refused by the database's privilege system (SQLSTATE
// 42501), not merely by a trigger the owner could disable.
func TestAppRoleCannotRewriteTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app, owner := rolePair(t)
	if _, err := app.Exec(ctx, insertEventSQL); err != nil {
		t.Fatalf("the application role cannot append: %v", err)
	}
	appRole := pgx.Identifier{app.Config().ConnConfig.User}.Sanitize()
	for _, stmt := range []string{
		`ALTER TABLE events DISABLE TRIGGER USER`,
		`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
		`ALTER TABLE events DISABLE TRIGGER ALL`,
		`DROP TRIGGER events_no_update_delete ON events`,
		`DROP TRIGGER events_no_truncate ON events`,
		`CREATE TRIGGER forge BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_reject_change()`,
		`ALTER TABLE events ADD COLUMN forged int`,
		`ALTER TABLE events OWNER TO ` + appRole,
		`UPDATE events SET payload = '{"forged":true}'`,
		`DELETE FROM events`,
		`TRUNCATE events`,
		`DROP TABLE events`,
		`DROP TABLE events CASCADE`,
		`INSERT INTO events (transaction_id) VALUES ('1')`,
		`INSERT INTO events (global_position) OVERRIDING SYSTEM VALUE VALUES (1)`,
		`SELECT setval('events_global_position_seq', 1)`,
		`SELECT nextval('events_global_position_seq')`,
		`GRANT pg_execute_server_program TO ` + appRole,
		`COPY events (stream_type) FROM PROGRAM 'true'`,
		`CREATE ROLE dashtam_forger`,
		`CREATE DATABASE dashtam_forger`,
		`CREATE TABLE forged (id int)`,
		`CREATE TABLE projections_rebuild.forged (id int)`,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`,
		`DELETE FROM goose_db_version`,
		`DROP TABLE projection_checkpoints`,
		`TRUNCATE projection_checkpoints`,
		`ALTER TABLE user_credentials DISABLE TRIGGER ALL`,
	} {
		_, err := app.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("as the application role, %s: err = %v; want insufficient_privilege (42501)", stmt, err)
		}
	}
	var n, intact int
	if err := owner.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE payload::text = '{}') FROM events`).Scan(&n, &intact); err != nil {
		t.Fatal(err)
	}
	if n != 1 || intact != 1 {
		t.Errorf("the log holds %d events, %d intact; want the one appended, untouched", n, intact)
	}
}

// TestAppRoleOwnsNothing checks the role's attributes and that no object of
// the database is its own.
func TestAppRoleOwnsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app, _ := rolePair(t)
	var super, createRole, createDB, ownsDB bool
	var owned int
	err := app.QueryRow(ctx, `SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb,
		(SELECT datdba = r.oid FROM pg_database WHERE datname = current_database()),
		(SELECT count(*) FROM pg_class WHERE relowner = r.oid) + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
		  + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid) + (SELECT count(*) FROM pg_type WHERE typowner = r.oid)
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&super, &createRole, &createDB, &ownsDB, &owned)
	if err != nil {
		t.Fatal(err)
	}
	if super || createRole || createDB || ownsDB || owned != 0 {
		t.Errorf("application role: superuser=%v createrole=%v createdb=%v owns the database=%v owns %d objects; want none of it",
			super, createRole, createDB, ownsDB, owned)
	}
}

// TestAppRoleGrants checks what the role may do: on events only SELECT and
// INSERT of every column but the two the database assigns; on every other
// table of the schema SELECT, INSERT, UPDATE and DELETE and never TRUNCATE;
// and the same on tables the owner creates later, live or in the rebuild
// schema and then moved live, as projections do.
func TestAppRoleGrants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app, owner := rolePair(t)

	var cols []string
	err := app.QueryRow(ctx, `SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = 'events'::regclass AND attnum > 0 AND NOT attisdropped
		  AND has_column_privilege(current_user, 'events'::regclass, attnum, 'INSERT')`).Scan(&cols)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"stream_type", "stream_id", "version", "event_id", "event_type", "schema_version",
		"owner_id", "payload", "metadata", "recorded_at", "prev_hash", "hash", "digest_version"}
	if strings.Join(cols, ",") != strings.Join(want, ",") {
		t.Errorf("insertable columns of events = %v, want %v", cols, want)
	}
	var eventsPrivs string
	if err := app.QueryRow(ctx, `SELECT concat_ws(',',
		CASE WHEN has_table_privilege('events', 'SELECT') THEN 'SELECT' END,
		CASE WHEN has_table_privilege('events', 'INSERT') THEN 'INSERT' END,
		CASE WHEN has_table_privilege('events', 'UPDATE') THEN 'UPDATE' END,
		CASE WHEN has_table_privilege('events', 'DELETE') THEN 'DELETE' END,
		CASE WHEN has_table_privilege('events', 'TRUNCATE') THEN 'TRUNCATE' END,
		CASE WHEN has_table_privilege('events', 'TRIGGER') THEN 'TRIGGER' END,
		CASE WHEN has_table_privilege('events', 'REFERENCES') THEN 'REFERENCES' END)`).Scan(&eventsPrivs); err != nil {
		t.Fatal(err)
	}
	if eventsPrivs != "SELECT" {
		t.Errorf("table-level privileges on events = %q, want SELECT (INSERT is per column)", eventsPrivs)
	}

	// Tables the owner creates after migrating: a projection's live table,
	// and a rebuild's shadow moved into place.
	for _, stmt := range []string{
		`CREATE TABLE later_live (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n serial)`,
		`CREATE TABLE projections_rebuild.later_shadow (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n serial)`,
	} {
		if _, err := owner.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := app.Exec(ctx, `INSERT INTO projections_rebuild.later_shadow DEFAULT VALUES`); err != nil {
		t.Errorf("the application role cannot fill a shadow table: %v", err)
	}
	if _, err := owner.Exec(ctx, `ALTER TABLE projections_rebuild.later_shadow SET SCHEMA public`); err != nil {
		t.Fatal(err)
	}

	rows, err := app.Query(ctx, `SELECT c.relname,
		has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT')
		  AND has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE'),
		has_table_privilege(c.oid, 'TRUNCATE') OR has_table_privilege(c.oid, 'TRIGGER') OR has_table_privilege(c.oid, 'REFERENCES')
		FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
		  AND c.relname NOT IN ('events', 'goose_db_version') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type tablePrivs struct {
		Name      string
		DML, More bool
	}
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[tablePrivs])
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tp := range tables {
		seen[tp.Name] = true
		if !tp.DML || tp.More {
			t.Errorf("table %s: full DML %v, TRUNCATE/TRIGGER/REFERENCES %v; want true, false", tp.Name, tp.DML, tp.More)
		}
	}
	for _, name := range []string{"projection_checkpoints", "user_credentials", "rate_limit_buckets", "later_live", "later_shadow"} {
		if !seen[name] {
			t.Errorf("table %s missing from the check", name)
		}
	}
	for _, stmt := range []string{`INSERT INTO later_live DEFAULT VALUES`, `INSERT INTO later_shadow DEFAULT VALUES`, `DELETE FROM later_live`} {
		if _, err := app.Exec(ctx, stmt); err != nil {
			t.Errorf("as the application role, %s: %v", stmt, err)
		}
	}
}

// TestGrantAppRepairs checks GrantApp is safe to run again and again and
// concurrently, and takes back what an operator granted too much on events.
func TestGrantAppRepairs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app, owner := rolePair(t)
	role := app.Config().ConnConfig.User
	if _, err := owner.Exec(ctx, `GRANT ALL ON events TO `+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(owner)
	defer db.Close()

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = migrations.GrantApp(ctx, db, role) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("GrantApp %d of %d run together: %v", i+1, len(errs), err)
		}
	}
	for _, stmt := range []string{`UPDATE events SET version = version`, `INSERT INTO events (transaction_id) VALUES ('1')`} {
		_, err := app.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("after GrantApp, %s: err = %v; want insufficient_privilege", stmt, err)
		}
	}
	if _, err := app.Exec(ctx, insertEventSQL); err != nil {
		t.Errorf("after GrantApp the application role cannot append: %v", err)
	}

	// The owner itself: nothing to grant, nothing changes.
	if err := migrations.GrantApp(ctx, db, owner.Config().ConnConfig.User); err != nil {
		t.Errorf("GrantApp to the owner itself: %v", err)
	}
	err := migrations.GrantApp(ctx, db, "dashtam_no_such_role")
	if err == nil || !strings.Contains(err.Error(), "dashtam_no_such_role") {
		t.Errorf("GrantApp to a missing role: err = %v; want one naming it", err)
	}
}

func TestRoleOf(t *testing.T) {
	t.Setenv("PGUSER", "from_env")
	for in, want := range map[string]string{
		"postgres://app:secret@db.example:5432/dashtam": "app",
		"host=db.example user=kv dbname=dashtam":        "kv",
		"postgres://db.example/dashtam":                 "from_env",
	} {
		got, err := migrations.RoleOf(in)
		if err != nil || got != want {
			t.Errorf("RoleOf(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
