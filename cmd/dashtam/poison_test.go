package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// insertMalformed stores, past the store and with the metadata check of
// migration 00009 dropped for the moment, version 1 of a new connection
// stream whose metadata is {"actor": 5}. Its hash is not a chain link.
func insertMalformed(t *testing.T, l *auditLog) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	stream := uuid.New()
	err := pgx.BeginFunc(ctx, l.owner, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			`ALTER TABLE events DROP CONSTRAINT events_metadata_shape`,
			`INSERT INTO events (stream_type, stream_id, version, event_id, event_type, schema_version, payload,
				metadata, recorded_at, prev_hash, hash)
			 VALUES ('connection', '` + stream.String() + `', 1, gen_random_uuid(), 'AuditTestConnected', 1,
				'{"institution":"raw"}', '{"actor":5}', '2026-01-04T00:00:00Z', decode(repeat('00', 32), 'hex'),
				decode(repeat('00', 32), 'hex'))`,
			`ALTER TABLE events ADD CONSTRAINT events_metadata_shape
				CHECK (coalesce(jsonb_typeof(metadata -> 'actor'), 'string') = 'string') NOT VALID`,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	return stream
}

// TestAuditReportsMalformedMetadata checks that a row whose metadata no
// reader can decode no longer aborts verify and replay: verify names it, and
// replay prints every row and warns.
func TestAuditReportsMalformedMetadata(t *testing.T) {
	t.Parallel()
	l := newAuditLog(t)
	stream := insertMalformed(t, l)
	name := "connection:" + stream.String()

	code, stdout, stderr := runAuditCLI(t, "--database-url", l.url, "audit", "verify")
	assert.Equal(t, 1, code, stdout)
	assert.Contains(t, stdout, "MALFORMED: stream "+name+", version 1, event ")
	assert.Contains(t, stdout, "cannot unmarshal number")
	// Its made-up hash is reported too: both problems, one row.
	assert.Contains(t, stdout, "BROKEN: stream "+name+", version 1")
	assert.Contains(t, stderr, name+" version 1")

	for _, format := range []string{"table", "jsonl", "csv"} {
		code, stdout, stderr := runAuditCLI(t, "--database-url", l.url, "audit", "replay", "--format", format)
		require.Equal(t, 0, code, "%s: %s", format, stderr)
		assert.Contains(t, stderr, "warning: metadata of event ", format)
		assert.Contains(t, stderr, name+" v1", format)
		assert.Contains(t, stderr, "1 event with malformed metadata", format)
		assert.Contains(t, stdout, stream.String(), "%s: the row is printed", format)
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		switch format {
		case "table":
			assert.Len(t, lines, 7)
			assert.Contains(t, lines[6], "(malformed metadata)")
		case "csv":
			assert.Len(t, lines, 7)
		case "jsonl":
			require.Len(t, lines, 6)
			var e struct {
				Metadata      json.RawMessage `json:"metadata"`
				MetadataError string          `json:"metadata_error"`
			}
			require.NoError(t, json.Unmarshal([]byte(lines[5]), &e))
			assert.JSONEq(t, `{"actor":5}`, string(e.Metadata))
			assert.Contains(t, e.MetadataError, "cannot unmarshal number")
			var good map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &good))
			assert.NotContains(t, good, "metadata_error", "only a malformed row carries the field")
		}
	}
}

// TestProjectionsParkedAndRetry drives status, parked and retry over parked
// rows put in place as the runner would have left them: one for an event
// that the streams projector applies on retry, one for a position the log
// does not hold, which stays parked.
func TestProjectionsParkedAndRetry(t *testing.T) {
	t.Parallel()
	l := newAuditLog(t)
	db := []string{"--database-url", l.url}
	code, out, errOut := runAuditCLI(t, append(db, "--database-migrate-url", l.ownerURL, "projections", "rebuild", "--all")...)
	require.Equal(t, 0, code, "stdout %q stderr %q", out, errOut)

	ctx := context.Background()
	// acctA3 is in the rebuilt model; parked, it would have been left out.
	_, err := l.pool.Exec(ctx, `INSERT INTO projection_parked_events (projection, global_position, transaction_id,
			event_id, stream_type, stream_id, version, event_type, error, attempts)
		SELECT 'streams', global_position, transaction_id, event_id, stream_type, stream_id, version, event_type,
		       'decode "AuditTestBalanceRecorded": bad amount', 3
		  FROM events WHERE global_position = $1
		UNION ALL
		SELECT 'streams', 1000000, '9000000000000000000', gen_random_uuid(), 'account', gen_random_uuid(), 7, 'Gone', 'older error', 3`,
		l.pos["acctA3"])
	require.NoError(t, err)

	code, out, errOut = runAuditCLI(t, append(db, "projections", "status")...)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(out, "\n")
	assert.True(t, strings.HasSuffix(lines[0], "PARKED"), lines[0])
	for _, line := range lines[1:3] {
		fields := strings.Fields(line)
		want := "0"
		if fields[0] == "streams" {
			want = "2"
		}
		assert.Equal(t, want, fields[len(fields)-1], line)
	}
	assert.Contains(t, out, "streams: 2 events parked; last error: ")
	assert.Contains(t, out, "dashtam projections parked streams")

	code, out, errOut = runAuditCLI(t, append(db, "projections", "parked", "streams")...)
	require.Equal(t, 0, code, errOut)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Contains(t, lines[1], l.acctA.String())
	assert.Contains(t, lines[1], "bad amount")
	assert.Contains(t, lines[2], "older error")

	code, out, errOut = runAuditCLI(t, append(db, "projections", "retry", "streams")...)
	assert.Equal(t, 1, code, "one event still fails: %s", out)
	assert.Contains(t, out, "retried streams: 1 applied, 1 still parked")
	assert.Contains(t, out, "the event is no longer in the log")
	assert.Contains(t, errOut, "1 event still failing")

	code, out, errOut = runAuditCLI(t, append(db, "projections", "parked", "event_type_counts")...)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "event_type_counts has no parked events\n", out)

	for _, args := range [][]string{
		{"projections", "parked"},
		{"projections", "parked", "nosuch"},
		{"projections", "retry", "streams", "event_type_counts"},
		{"projections", "parked", "streams", "--limit", "0"},
	} {
		code, _, errOut := runAuditCLI(t, append(db, args...)...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
	}
}
