package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// jobsCLITestJob is a job only this test enqueues.
type jobsCLITestJob struct {
	Secret string `json:"secret"`
}

func (jobsCLITestJob) Kind() string { return "jobs_cli_test" }

// TestJobsCommand lists, cancels and retries jobs, never printing their
// arguments, and refuses bad input as usage errors.
func TestJobsCommand(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	url := pool.Config().ConnString()
	c, err := jobs.New(pool, nil, jobs.Config{})
	require.NoError(t, err)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, c.EnqueueTx(ctx, tx, jobsCLITestJob{Secret: "do-not-print-me"}, commands.JobOptions{RunAt: time.Now().Add(time.Hour)}))
	require.NoError(t, tx.Commit(ctx))
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'jobs_cli_test'`).Scan(&id))
	db := []string{"--database-url", url}

	code, out, errOut := runAuditCLI(t, append(db, "jobs", "list", "--state", "scheduled")...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, fmt.Sprintf("%d", id))
	assert.Contains(t, out, "jobs_cli_test")
	assert.Contains(t, out, "scheduled")
	assert.NotContains(t, out, "do-not-print-me", "arguments are never shown")

	code, out, errOut = runAuditCLI(t, append(db, "jobs", "cancel", fmt.Sprint(id))...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "cancelled")
	code, out, _ = runAuditCLI(t, append(db, "jobs", "list", "--state", "cancelled")...)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "jobs_cli_test")

	code, out, errOut = runAuditCLI(t, append(db, "jobs", "retry", fmt.Sprint(id))...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "available")

	code, _, errOut = runAuditCLI(t, append(db, "jobs", "retry", "999999999")...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no job 999999999")

	for _, args := range [][]string{
		{"jobs"}, {"jobs", "list", "--state", "sleeping"}, {"jobs", "list", "--limit", "0"},
		{"jobs", "retry"}, {"jobs", "cancel", "abc"}, {"jobs", "retry", "-3"},
	} {
		code, _, errOut := runAuditCLI(t, append(db, args...)...)
		assert.Equal(t, 2, code, "%s: %s", strings.Join(args, " "), errOut)
	}
}
