package projections

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
)

// Projector turns batches of events into rows of the read-model tables it owns.
// The runner calls Apply inside the transaction that also moves the
// projector's checkpoint, so Apply must write only through tx, must not commit
// and must keep no state outside it: a failed batch is rolled back, whole or
// to a savepoint, and its events are applied again in smaller batches to find
// the one at fault. An error a projector returns for an event (it cannot
// decode or upcast the payload, Record.MetadataErr is set and it needs the
// metadata, a constraint refuses the row) makes that event fail on every
// attempt; after a few it is parked (see docs/projections.md) and the
// projector moves on. A parked event retried later arrives after the events
// that followed it in the log.
type Projector interface {
	// Name identifies the projector in checkpoints, locks, metrics and on the
	// command line: lower case letters, digits and single underscores.
	Name() string
	// Tables lists the logical names of the tables the projector owns.
	Tables() []string
	// Schema returns the DDL creating every table of Tables under the names
	// in t, so that one definition serves live and shadow tables alike.
	Schema(t TableNames) string
	// Apply writes the effect of batch, in commit order, through tx into the
	// tables named by t. It may see an event only once per table set.
	Apply(ctx context.Context, tx pgx.Tx, t TableNames, batch []eventstore.Record) error
}

// TableNames maps a projector's logical table names to the quoted, possibly
// schema-qualified identifiers to use in SQL: the live tables or the shadow
// tables of a rebuild.
type TableNames struct {
	schema string // "" for the live tables (the connection's current schema)
	tables map[string]string
}

// rebuildSchema holds the shadow tables of rebuilds in progress (migration 00002).
const rebuildSchema = "projections_rebuild"

func newTableNames(schema string, logical []string) TableNames {
	t := TableNames{schema: schema, tables: make(map[string]string, len(logical))}
	for _, name := range logical {
		if schema == "" {
			t.tables[name] = pgx.Identifier{name}.Sanitize()
		} else {
			t.tables[name] = pgx.Identifier{schema, name}.Sanitize()
		}
	}
	return t
}

// LiveTables returns the names of p's live tables, for query functions and
// tests that read a read model.
func LiveTables(p Projector) TableNames { return newTableNames("", p.Tables()) }

func shadowTables(p Projector) TableNames { return newTableNames(rebuildSchema, p.Tables()) }

// Of returns the SQL identifier of the logical table name. It panics on a name
// the projector did not declare in Tables, a programming error that every
// test of the projector finds.
func (t TableNames) Of(logical string) string {
	id, ok := t.tables[logical]
	if !ok {
		panic(fmt.Sprintf("projections: table %q is not declared by the projector", logical))
	}
	return id
}

// String lists the mapping, for error messages.
func (t TableNames) String() string {
	parts := make([]string, 0, len(t.tables))
	for k, v := range t.tables {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// validate refuses projector sets that would collide in checkpoints, locks or
// tables; both are programming errors found at start-up.
func validate(ps []Projector) error {
	names := map[string]bool{}
	tables := map[string]string{}
	for _, p := range ps {
		if p == nil {
			return fmt.Errorf("projections: nil projector")
		}
		n := p.Name()
		if !validName.MatchString(n) || len(n) > 50 {
			return fmt.Errorf("projections: projector name %q: want lower-case words joined by single underscores", n)
		}
		if names[n] {
			return fmt.Errorf("projections: projector %q registered twice", n)
		}
		names[n] = true
		if _, reactor := p.(interface{ tableless() bool }); len(p.Tables()) == 0 && !reactor {
			return fmt.Errorf("projections: projector %q owns no table", n)
		}
		for _, t := range p.Tables() {
			if !validName.MatchString(t) {
				return fmt.Errorf("projections: projector %q: table name %q: want lower-case words joined by single underscores", n, t)
			}
			if other, dup := tables[t]; dup {
				return fmt.Errorf("projections: table %q owned by both %q and %q", t, other, n)
			}
			tables[t] = n
		}
	}
	return nil
}
