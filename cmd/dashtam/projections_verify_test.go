package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProjectionsVerifyCommand: after a rebuild every read model verifies
// identical (exit 0); a live row edited by hand is listed and exits 1; the
// application role alone cannot create the shadow tables; a bad
// invocation is a usage error.
func TestProjectionsVerifyCommand(t *testing.T) {
	t.Parallel()
	l := newAuditLog(t)
	db := []string{"--database-url", l.url}
	owner := append(append([]string(nil), db...), "--database-migrate-url", l.ownerURL)

	code, out, errOut := runAuditCLI(t, append(owner, "projections", "rebuild", "--all")...)
	require.Equal(t, 0, code, "stdout %q stderr %q", out, errOut)
	code, out, errOut = runAuditCLI(t, append(owner, "projections", "verify", "--all")...)
	require.Equal(t, 0, code, "stdout %q stderr %q", out, errOut)
	assert.Contains(t, out, "streams at position 5: identical to a replay of the log")
	assert.Contains(t, out, "financial_data at position 5: identical to a replay of the log")
	assert.Contains(t, out, "  streams: 3 rows, identical")

	_, err := l.owner.Exec(context.Background(), `UPDATE streams SET version = version + 10 WHERE stream_id = $1`, l.acctA.ID)
	require.NoError(t, err)
	code, out, errOut = runAuditCLI(t, append(owner, "projections", "verify", "streams", "event_type_counts")...)
	require.Equal(t, 1, code, "stdout %q stderr %q", out, errOut)
	assert.Contains(t, out, "streams at position 5: 1 table differs from a replay of the log")
	assert.Contains(t, out, "  streams: 3 rows; 1 row only in the live table, 1 row only in the replay")
	assert.Contains(t, out, "    live:   {")
	assert.Contains(t, out, l.acctA.ID.String())
	assert.Contains(t, out, "event_type_counts at position 5: identical")
	assert.Contains(t, errOut, "projections verify: streams differ from a replay of the log")

	code, _, errOut = runAuditCLI(t, append(db, "projections", "verify", "streams")...)
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, "only the owner role may: set DATABASE_MIGRATE_URL")

	for _, args := range [][]string{
		{"projections", "verify"},
		{"projections", "verify", "no_such_projector"},
		{"projections", "verify", "--all", "streams"},
	} {
		code, _, errOut := runAuditCLI(t, append(db, args...)...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
	}
}
