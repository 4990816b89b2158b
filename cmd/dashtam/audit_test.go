package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// auditUnreachableURL points at a port nothing listens on, with a password that
// must never be printed.
const auditUnreachableURL = "postgres://u:secretpw@127.0.0.1:1/db"

// runAuditCLI runs the real command tree in process and captures its output.
func runAuditCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runWith(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAuditReplayRefusesFuzzyTime(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runAuditCLI(t, "--database-url", auditUnreachableURL, "audit", "replay", "--from", "yesterday-ish")
	if code != 2 {
		t.Fatalf("exit %d, want 2 (usage); stderr:\n%s", code, stderr)
	}
	for _, want := range []string{`--from "yesterday-ish"`, "RFC 3339", "2026-01-02T15:04:05Z", "2026-01-02 (midnight UTC)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, stderr)
		}
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

func TestAuditUsageErrors(t *testing.T) {
	t.Parallel()
	// The database URL is unreachable: a command that got as far as
	// connecting would exit 1, so exit 2 proves the line was refused first.
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"audit", "replay", "--user", "not-a-uuid"}, `--user "not-a-uuid": not a UUID`},
		{[]string{"audit", "replay", "--user="}, "--user: empty value"},
		{[]string{"audit", "replay", "--connection", "42"}, `--connection "42": not a UUID`},
		{[]string{"audit", "replay", "--stream", "ledger:" + uuid.NewString()}, `unknown type "ledger"`},
		{[]string{"audit", "replay", "--stream", uuid.NewString()}, "want TYPE:ID"},
		{[]string{"audit", "replay", "--format", "xml"}, `--format "xml": want one of table, jsonl, csv`},
		{[]string{"audit", "replay", "--from", "2026-01-03", "--to", "2026-01-02"}, "is not before --to"},
		{[]string{"audit", "replay", "--from", "2026-01-02", "--to", "2026-01-02T00:00:00Z"}, "is not before --to"},
		{[]string{"audit", "replay", "--from", "2026-01-03", "--as-of", "2026-01-02"}, "is after --as-of"},
		{[]string{"audit", "replay", "--to", "2026-13-01"}, "RFC 3339"},
		{[]string{"audit", "replay", "--as-of", "1767225600"}, "RFC 3339"},
		{[]string{"audit", "replay", "--event-type", "A,,B"}, "empty event type name"},
		{[]string{"audit", "replay", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"audit", "replay", "extra"}, `unexpected argument "extra"`},
		{[]string{"audit", "verify", "extra"}, `unexpected argument "extra"`},
		{[]string{"audit", "verify", "--format", "csv"}, "unknown flag: --format"},
		{[]string{"audit", "nosuch"}, `unknown command "nosuch" for "dashtam audit"`},
		{[]string{"audit", "replya"}, `did you mean "replay"?`},
		{[]string{"audit"}, "missing command: want one of checkpoint, export, public-key, replay, state, verify"},
		{[]string{"nosuch"}, `unknown command "nosuch" for "dashtam"`},
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
	}
	for _, tc := range tests {
		args := append([]string{"--database-url", auditUnreachableURL}, tc.args...)
		code, stdout, stderr := runAuditCLI(t, args...)
		if code != 2 {
			t.Errorf("dashtam %s: exit %d, want 2; stderr:\n%s", strings.Join(tc.args, " "), code, stderr)
			continue
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("dashtam %s: stderr does not contain %q:\n%s", strings.Join(tc.args, " "), tc.want, stderr)
		}
		if !strings.Contains(stderr, "--help' for usage.") {
			t.Errorf("dashtam %s: stderr does not point at --help:\n%s", strings.Join(tc.args, " "), stderr)
		}
		if stdout != "" {
			t.Errorf("dashtam %s: stdout = %q, want nothing", strings.Join(tc.args, " "), stdout)
		}
	}
}

// TestUnreachableDatabase sets DATABASE_URL itself, which rules out t.Parallel.
func TestUnreachableDatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", auditUnreachableURL)
	for _, args := range [][]string{{"audit", "verify"}, {"audit", "replay", "--format", "csv"}} {
		code, stdout, stderr := runAuditCLI(t, args...)
		if code != 1 {
			t.Errorf("dashtam %s: exit %d, want 1; stderr:\n%s", strings.Join(args, " "), code, stderr)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("dashtam %s: stderr is not exactly one line:\n%s", strings.Join(args, " "), stderr)
		}
		if !strings.Contains(stderr, "127.0.0.1:1") || !strings.Contains(stderr, "connection refused") {
			t.Errorf("dashtam %s: stderr does not name the address and the cause: %q", strings.Join(args, " "), stderr)
		}
		if strings.Contains(stderr+stdout, "secretpw") {
			t.Errorf("dashtam %s: output reveals the password: %q", strings.Join(args, " "), stderr)
		}
		if stdout != "" {
			t.Errorf("dashtam %s: stdout = %q, want nothing", strings.Join(args, " "), stdout)
		}
	}
}

func TestConnectErrorsNameTheTargetNotThePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want []string
	}{
		{"postgres://u:secretpw@127.0.0.1:abc/db", []string{"invalid database URL", "invalid port"}},
		{"postgres://u:secretpw@/db?host=/nonexistent-dashtam-dir&port=5999",
			[]string{"socket /nonexistent-dashtam-dir/.s.PGSQL.5999", "no such file or directory"}},
		{"host=127.0.0.1 port=1 user=u password=secretpw dbname=db", []string{"127.0.0.1:1", "connection refused"}},
	}
	for _, tc := range tests {
		code, _, stderr := runAuditCLI(t, "--database-url", tc.url, "audit", "verify")
		if code != 1 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and one line", tc.url, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q does not contain %q", tc.url, stderr, w)
			}
		}
		if strings.Contains(stderr, "secretpw") {
			t.Errorf("%s: stderr reveals the password: %q", tc.url, stderr)
		}
	}
}

// Test events of the audit tests; their names are prefixed so that they
// cannot collide with other tests' fixtures in this package.
type auditTestConnected struct {
	Institution string `json:"institution"`
}

type auditTestAccountOpened struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Name         string    `json:"name"`
}

type auditTestBalanceRecorded struct {
	Amount string `json:"amount"`
}

func (auditTestConnected) EventType() string       { return "AuditTestConnected" }
func (auditTestAccountOpened) EventType() string   { return "AuditTestAccountOpened" }
func (auditTestBalanceRecorded) EventType() string { return "AuditTestBalanceRecorded" }

// auditLog is a database with a few events at known times and owners.
type auditLog struct {
	url          string        // the application role's
	ownerURL     string        // the owner role's, for rebuilds
	pool         *pgxpool.Pool // the application role's
	owner        *pgxpool.Pool // the owner role's, for tampering
	userA, userB uuid.UUID
	connA, acctA eventstore.Stream
	connB        eventstore.Stream
	pos          map[string]int64
	order        []string
}

func newAuditLog(t *testing.T) *auditLog {
	t.Helper()
	l := &auditLog{
		userA: uuid.New(), userB: uuid.New(),
		connA: eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()},
		acctA: eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()},
		connB: eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()},
		pos:   map[string]int64{},
	}
	l.url, l.ownerURL = testdb.NewURLs(t)
	pool, err := pgxpool.New(context.Background(), l.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	l.pool, l.owner = pool, testdb.Owner(t, pool)
	reg := eventstore.NewRegistry()
	eventstore.Register[auditTestConnected](reg, 1)
	eventstore.Register[auditTestAccountOpened](reg, 1)
	eventstore.Register[auditTestBalanceRecorded](reg, 1)
	var now time.Time
	store, err := eventstore.New(pool, reg, eventstore.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	add := func(label, at string, owner uuid.UUID, stream eventstore.Stream, version int64, e eventstore.Event) {
		t.Helper()
		now, err = time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: owner, Actor: "user:" + owner.String()[:8]})
		res, err := store.Append(ctx, stream, version, e)
		if err != nil {
			t.Fatalf("append %s: %v", label, err)
		}
		l.pos[label] = res.LastPosition
		l.order = append(l.order, label)
	}
	add("connA1", "2026-01-01T09:00:00Z", l.userA, l.connA, 0, auditTestConnected{Institution: "sandbox"})
	// A name that needs CSV quoting and would be HTML-escaped by default.
	add("acctA1", "2026-01-01T23:59:59Z", l.userA, l.acctA, 0,
		auditTestAccountOpened{ConnectionID: l.connA.ID, Name: "checking, \"joint\"\n<A&B>"})
	add("acctA2", "2026-01-02T00:00:00Z", l.userA, l.acctA, 1, auditTestBalanceRecorded{Amount: "100.25"})
	add("connB1", "2026-01-02T12:00:00Z", l.userB, l.connB, 0, auditTestConnected{Institution: "schwab"})
	add("acctA3", "2026-01-03T08:00:00Z", l.userA, l.acctA, 2, auditTestBalanceRecorded{Amount: "99.75"})
	return l
}

func (l *auditLog) positions(labels ...string) []int64 {
	out := make([]int64, len(labels))
	for i, label := range labels {
		out[i] = l.pos[label]
	}
	return out
}

func TestAuditReplay(t *testing.T) {
	t.Parallel()
	l := newAuditLog(t)
	filters := []struct {
		name string
		args []string
		want []string
	}{
		{"everything", nil, l.order},
		{"user", []string{"--user", l.userA.String()}, []string{"connA1", "acctA1", "acctA2", "acctA3"}},
		{"stream", []string{"--stream", l.acctA.String()}, []string{"acctA1", "acctA2", "acctA3"}},
		{"connection", []string{"--connection", l.connA.ID.String()}, []string{"connA1", "acctA1"}},
		{"event types", []string{"--event-type", "AuditTestConnected", "--event-type", "AuditTestAccountOpened"}, []string{"connA1", "acctA1", "connB1"}},
		{"date range", []string{"--from", "2026-01-02", "--to", "2026-01-03"}, []string{"acctA2", "connB1"}},
		{"offset time", []string{"--from", "2026-01-02T13:00:00+01:00"}, []string{"connB1", "acctA3"}},
		{"as-of", []string{"--as-of", "2026-01-02T00:00:00Z"}, []string{"connA1", "acctA1", "acctA2"}},
		{"user and range", []string{"--user", l.userA.String(), "--from", "2026-01-02", "--to", "2026-01-04"}, []string{"acctA2", "acctA3"}},
		{"nothing matches", []string{"--user", uuid.NewString()}, nil},
	}
	for _, format := range []string{"jsonl", "csv", "table"} {
		for _, tc := range filters {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				args := append([]string{"--database-url", l.url, "audit", "replay", "--format", format}, tc.args...)
				code, stdout, stderr := runAuditCLI(t, args...)
				if code != 0 {
					t.Fatalf("exit %d; stderr:\n%s", code, stderr)
				}
				if stderr != "" {
					t.Errorf("stderr = %q, want nothing off a terminal", stderr)
				}
				var got []int64
				switch format {
				case "jsonl":
					got = parseJSONLPositions(t, l, stdout)
				case "csv":
					got = parseCSVPositions(t, stdout)
				case "table":
					got = parseTablePositions(t, stdout)
				}
				if want := l.positions(tc.want...); !slices.Equal(got, want) {
					t.Errorf("positions = %v, want %v (%v)", got, want, tc.want)
				}
			})
		}
	}
}

func parseJSONLPositions(t *testing.T, l *auditLog, out string) []int64 {
	t.Helper()
	var got []int64
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			GlobalPosition int64           `json:"global_position"`
			RecordedAt     time.Time       `json:"recorded_at"`
			StreamType     string          `json:"stream_type"`
			StreamID       uuid.UUID       `json:"stream_id"`
			Version        int64           `json:"version"`
			EventID        uuid.UUID       `json:"event_id"`
			EventType      string          `json:"event_type"`
			SchemaVersion  int             `json:"schema_version"`
			OwnerID        *uuid.UUID      `json:"owner_id"`
			Metadata       json.RawMessage `json:"metadata"`
			Payload        json.RawMessage `json:"payload"`
			Hash           string          `json:"hash"`
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if e.EventID == uuid.Nil || e.EventType == "" || e.SchemaVersion != 1 || e.OwnerID == nil ||
			e.RecordedAt.IsZero() || len(e.Hash) != 64 || e.Version < 1 || e.StreamType == "" {
			t.Errorf("incomplete event: %s", line)
		}
		var md map[string]any
		if err := json.Unmarshal(e.Metadata, &md); err != nil || md["actor"] == nil {
			t.Errorf("metadata %s: %v", e.Metadata, err)
		}
		if e.GlobalPosition == l.pos["acctA1"] {
			var p auditTestAccountOpened
			if err := json.Unmarshal(e.Payload, &p); err != nil || p.Name != "checking, \"joint\"\n<A&B>" || p.ConnectionID != l.connA.ID {
				t.Errorf("payload %s did not round-trip: %+v, %v", e.Payload, p, err)
			}
			if !strings.Contains(line, "<A&B>") {
				t.Errorf("payload was HTML-escaped: %s", line)
			}
		}
		got = append(got, e.GlobalPosition)
	}
	return got
}

func parseCSVPositions(t *testing.T, out string) []int64 {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("csv does not parse: %v\n%s", err, out)
	}
	if len(rows) == 0 || !slices.Equal(rows[0], csvColumns) {
		t.Fatalf("header = %v, want %v", rows[:min(1, len(rows))], csvColumns)
	}
	var got []int64
	for _, row := range rows[1:] {
		p, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil {
			t.Fatalf("position %q: %v", row[0], err)
		}
		if !json.Valid([]byte(row[9])) || !json.Valid([]byte(row[10])) {
			t.Errorf("metadata or payload is not JSON: %q, %q", row[9], row[10])
		}
		if _, err := time.Parse(time.RFC3339Nano, row[1]); err != nil {
			t.Errorf("recorded_at %q: %v", row[1], err)
		}
		got = append(got, p)
	}
	return got
}

func parseTablePositions(t *testing.T, out string) []int64 {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(strings.TrimSpace(lines[0]), "POSITION") {
		t.Fatalf("no header:\n%s", out)
	}
	var got []int64
	for _, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) != 6 {
			t.Fatalf("row %q has %d columns, want 6", line, len(fields))
		}
		p, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			t.Fatalf("position %q: %v", fields[0], err)
		}
		if !strings.HasPrefix(fields[5], "user:") {
			t.Errorf("actor column = %q", fields[5])
		}
		got = append(got, p)
	}
	return got
}

// auditTamper runs stmt with the immutability trigger disabled, which is
// exactly what an attacker with owner rights could do; pool must be the
// owner's (the application role may not disable it).
func auditTamper(t *testing.T, pool *pgxpool.Pool, stmt string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, s := range []string{"ALTER TABLE events DISABLE TRIGGER events_no_update_delete", stmt, "ALTER TABLE events ENABLE TRIGGER events_no_update_delete"} {
		var a []any
		if s == stmt {
			a = args
		}
		tag, err := tx.Exec(ctx, s, a...)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if s == stmt && tag.RowsAffected() != 1 {
			t.Fatalf("%s: %d rows affected, want 1", s, tag.RowsAffected())
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// noCheckpointLine ends verify's summary on a log never checkpointed.
const noCheckpointLine = "no signed checkpoint yet: run `dashtam audit checkpoint` (serve makes them on its own)\n"

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	t.Run("clean log", func(t *testing.T) {
		t.Parallel()
		l := newAuditLog(t)
		code, stdout, stderr := runAuditCLI(t, "--database-url", l.url, "audit", "verify")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		if want := "verified 5 events in 3 streams: all chains intact; stream heads not checked: the streams read model does not exist yet\n" + noCheckpointLine; stdout != want {
			t.Errorf("stdout = %q, want %q", stdout, want)
		}
	})
	t.Run("empty log", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runAuditCLI(t, "--database-url", testdb.NewURL(t), "audit", "verify")
		if want := "verified 0 events in 0 streams: all chains intact; stream heads not checked: the streams read model does not exist yet\n" + noCheckpointLine; code != 0 || stdout != want {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, want)
		}
	})
	t.Run("altered payload", func(t *testing.T) {
		t.Parallel()
		l := newAuditLog(t)
		auditTamper(t, l.owner, `UPDATE events SET payload = jsonb_set(payload::jsonb, '{amount}', '"1000000.25"')::json WHERE stream_id = $1 AND version = 2`, l.acctA.ID)
		code, stdout, stderr := runAuditCLI(t, "--database-url", l.url, "audit", "verify")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout:\n%s", code, stdout)
		}
		for _, want := range []string{"stream " + l.acctA.String(), "version 2", "does not match the event's contents"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout does not contain %q:\n%s", want, stdout)
			}
		}
		if !strings.Contains(stderr, l.acctA.String()+" version 2") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr does not name the break in one line: %q", stderr)
		}
	})
	t.Run("deleted newest event", func(t *testing.T) {
		t.Parallel()
		l := newAuditLog(t)
		// The streams read model records every stream's head; a chain alone
		// cannot see a removed tail.
		if code, out, errOut := runAuditCLI(t, "--database-url", l.url, "--database-migrate-url", l.ownerURL, "projections", "rebuild", "streams"); code != 0 {
			t.Fatalf("rebuild streams: exit %d: %s %s", code, out, errOut)
		}
		code, stdout, _ := runAuditCLI(t, "--database-url", l.url, "audit", "verify")
		if want := "verified 5 events in 3 streams: all chains intact; stream heads match the streams read model\n" + noCheckpointLine; code != 0 || stdout != want {
			t.Fatalf("before tampering: exit %d, stdout %q, want %q", code, stdout, want)
		}
		auditTamper(t, l.owner, `DELETE FROM events WHERE stream_id = $1 AND version = (SELECT max(version) FROM events WHERE stream_id = $1)`, l.acctA.ID)
		code, stdout, stderr := runAuditCLI(t, "--database-url", l.url, "audit", "verify")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout:\n%s", code, stdout)
		}
		for _, want := range []string{"stream " + l.acctA.String(), "removed from its end"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout does not contain %q:\n%s", want, stdout)
			}
		}
		if strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr is not one line: %q", stderr)
		}
	})
	t.Run("deleted middle event", func(t *testing.T) {
		t.Parallel()
		l := newAuditLog(t)
		auditTamper(t, l.owner, `DELETE FROM events WHERE stream_id = $1 AND version = 2`, l.acctA.ID)
		code, stdout, stderr := runAuditCLI(t, "--database-url", l.url, "audit", "verify")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout:\n%s", code, stdout)
		}
		for _, want := range []string{"stream " + l.acctA.String(), "version 3", "a version is missing"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout does not contain %q:\n%s", want, stdout)
			}
		}
		if !strings.Contains(stderr, "version 3") {
			t.Errorf("stderr = %q", stderr)
		}
	})
}

func TestParseReplayFilter(t *testing.T) {
	t.Parallel()
	set := func(v string) optionalString { return optionalString{value: v, set: true} }
	user := uuid.New()
	stream := eventstore.Stream{Type: eventstore.StreamAccount, ID: uuid.New()}
	f, err := parseReplayFilter(replayFlags{
		user:       set(user.String()),
		stream:     set(" " + stream.String() + " "),
		eventTypes: set("AccountOpened, AccountClosed,AccountOpened"),
		from:       set("2026-01-02"),
		to:         set("2026-01-02T15:04:05.5+01:00"),
		asOf:       set("2026-02-01T00:00:00Z"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.OwnerID == nil || *f.OwnerID != user || f.Stream == nil || *f.Stream != stream || f.ConnectionID != nil {
		t.Errorf("ids: %+v", f)
	}
	if !slices.Equal(f.EventTypes, []string{"AccountOpened", "AccountClosed"}) {
		t.Errorf("event types = %v", f.EventTypes)
	}
	if want := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC); !f.From.Equal(want) || f.From.Location() != time.UTC {
		t.Errorf("from = %v, want midnight UTC %v", f.From, want)
	}
	if want := time.Date(2026, 1, 2, 14, 4, 5, 500_000_000, time.UTC); !f.To.Equal(want) {
		t.Errorf("to = %v, want %v", f.To, want)
	}
	if empty, err := parseReplayFilter(replayFlags{}); err != nil || empty.OwnerID != nil || empty.From != nil || empty.EventTypes != nil {
		t.Errorf("no flags: %+v, %v; want the empty filter", empty, err)
	}
}

func TestRepeatedEventTypeFlagAccumulates(t *testing.T) {
	t.Parallel()
	var v optionalString
	for _, s := range []string{"A", "B,C"} {
		if err := v.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if v.value != "A,B,C" || !v.set {
		t.Errorf("value = %q, set = %v", v.value, v.set)
	}
}

func FuzzParseReplayFilter(f *testing.F) {
	f.Add("", "", "", "", "", "", "", uint8(0))
	f.Add(uuid.NewString(), "account:"+uuid.NewString(), uuid.NewString(), "A,B", "2026-01-02", "2026-01-03T00:00:00Z", "2026-01-02T12:00:00+05:30", uint8(0x7f))
	f.Add("x", "account:", "{"+uuid.NewString()+"}", ",", "yesterday-ish", "2026-02-30", "9999-12-31T23:59:59.999999999-23:59", uint8(0xff))
	f.Add("", ":", "", " A ", "0000-01-01", "0000-01-01T00:00:00Z", "", uint8(0x30))
	f.Fuzz(func(t *testing.T, user, stream, conn, types, from, to, asOf string, set uint8) {
		opt := func(bit uint8, v string) optionalString { return optionalString{value: v, set: set&bit != 0} }
		fl := replayFlags{
			user: opt(1, user), stream: opt(2, stream), connection: opt(4, conn), eventTypes: opt(8, types),
			from: opt(16, from), to: opt(32, to), asOf: opt(64, asOf),
		}
		filter, err := parseReplayFilter(fl)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		// Whatever is accepted, the store must accept too.
		if err := filter.Validate(); err != nil {
			t.Errorf("parsed filter fails Validate: %v", err)
		}
		if filter.From != nil && filter.To != nil && !filter.From.Before(*filter.To) {
			t.Errorf("accepted an empty range %v..%v", filter.From, filter.To)
		}
		if (filter.OwnerID != nil) != fl.user.set || (filter.Stream != nil) != fl.stream.set || (filter.From != nil) != fl.from.set {
			t.Errorf("a given flag was dropped or an absent one invented: %+v from %+v", filter, fl)
		}
	})
}
