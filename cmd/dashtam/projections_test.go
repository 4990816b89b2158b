package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/projections"
)

// TestProjectionsCommand drives list, status and rebuild over a small log,
// and checks that bad invocations are usage errors.
func TestProjectionsCommand(t *testing.T) {
	t.Parallel()
	l := newAuditLog(t)
	db := []string{"--database-url", l.url}

	code, out, errOut := runAuditCLI(t, append(db, "projections", "list")...)
	require.Equal(t, 0, code, errOut)
	for _, name := range []string{"streams", "event_type_counts"} {
		assert.Contains(t, out, name)
	}

	// The application role cannot create the shadow tables a rebuild
	// needs: the owner's URL is what makes it work.
	code, out, errOut = runAuditCLI(t, append(db, "projections", "rebuild", "--all")...)
	require.Equal(t, 1, code, "stdout %q stderr %q", out, errOut)
	assert.Contains(t, errOut, "only the owner role may: set DATABASE_MIGRATE_URL")
	code, out, errOut = runAuditCLI(t, append(db, "--database-migrate-url", l.ownerURL, "projections", "rebuild", "--all")...)
	require.Equal(t, 0, code, "stdout %q stderr %q", out, errOut)

	pool, err := pgxpool.New(context.Background(), l.url)
	require.NoError(t, err)
	defer pool.Close()
	// A Selective projector applies only the events of its stream types
	// (docs/projections.md); the others apply the whole log.
	applied := map[string]string{}
	for _, p := range projections.All() {
		q := `SELECT count(*) FROM events`
		args := []any{}
		if s, ok := p.(projections.Selective); ok && len(s.Reads().StreamTypes) > 0 {
			q += ` WHERE stream_type = ANY($1)`
			types := []string{}
			for _, st := range s.Reads().StreamTypes {
				types = append(types, string(st))
			}
			args = append(args, types)
		}
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), q, args...).Scan(&n))
		applied[p.Name()] = strconv.Itoa(n)
	}
	code, out, errOut = runAuditCLI(t, append(db, "projections", "status")...)
	require.Equal(t, 0, code, errOut)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		fields := strings.Fields(line)
		require.GreaterOrEqual(t, len(fields), 4, line)
		assert.Equal(t, applied[fields[0]], fields[2], "every projector applied what it reads of the whole log: %s", line)
		assert.Equal(t, "0", fields[3], "and is not behind: %s", line)
	}

	// The rebuilt read model answers like the log: one row per stream.
	var rows, streams int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM streams),
		(SELECT count(DISTINCT stream_id) FROM events)`).Scan(&rows, &streams))
	assert.Equal(t, streams, rows)

	for _, args := range [][]string{
		{"projections", "rebuild"},
		{"projections", "rebuild", "no_such_projector"},
		{"projections", "rebuild", "--all", "streams"},
		{"projections", "list", "extra"},
		{"projections"},
		{"projections", "nosuch"},
	} {
		code, _, errOut := runAuditCLI(t, append(db, args...)...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
	}
	_, _, errOut = runAuditCLI(t, append(db, "projections")...)
	assert.Contains(t, errOut, "missing command: want one of list, parked, rebuild, retry, status, verify")
	_, _, errOut = runAuditCLI(t, append(db, "projections", "nosuch")...)
	assert.Contains(t, errOut, `unknown command "nosuch" for "dashtam projections"`)
}
