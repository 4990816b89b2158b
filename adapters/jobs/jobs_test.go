package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// testJob is a job the tests enqueue; Mode tells its handler what to answer.
type testJob struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
}

func (testJob) Kind() string { return "jobs_test" }

// harness is a working client over a fresh database, its handler's calls
// counted per job name, and river's events to wait on.
type harness struct {
	pool   *pgxpool.Pool
	client *jobs.Client
	calls  map[string]*atomic.Int32
	events <-chan *river.Event
	seen   []*river.Event // received, in order, whoever waited for them
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{pool: testdb.New(t), calls: map[string]*atomic.Int32{}}
	for _, n := range []string{"a", "b", "unique", "snooze", "cancel", "fail", "rolled back"} {
		h.calls[n] = &atomic.Int32{}
	}
	w := jobs.NewWorkers()
	jobs.Handle(w, func(ctx context.Context, j testJob) error {
		n := h.calls[j.Name].Add(1)
		switch j.Mode {
		case "snooze":
			if n == 1 {
				return &commands.JobSnoozeError{Delay: 0}
			}
		case "cancel":
			return fmt.Errorf("connection gone: %w", commands.ErrJobCancelled)
		case "fail":
			return errors.New("provider down")
		}
		return nil
	})
	c, err := jobs.New(h.pool, w, jobs.Config{Work: true, FetchPollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	h.client = c
	events, cancel := c.River().Subscribe(river.EventKindJobCompleted, river.EventKindJobCancelled,
		river.EventKindJobFailed, river.EventKindJobSnoozed)
	t.Cleanup(cancel)
	h.events = events
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return h
}

// enqueue inserts j in a transaction that commits unless rollback.
func (h *harness) enqueue(t *testing.T, j testJob, opts commands.JobOptions, rollback bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := h.pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, h.client.EnqueueTx(ctx, tx, j, opts))
	if rollback {
		require.NoError(t, tx.Rollback(ctx))
		return
	}
	require.NoError(t, tx.Commit(ctx))
}

// await waits for river to report kind for the job called name.
func (h *harness) await(t *testing.T, kind river.EventKind, name string) *river.Event {
	t.Helper()
	match := func(e *river.Event) bool {
		var args testJob
		return e.Job != nil && jsonArgs(e.Job, &args) == nil && args.Name == name && e.Kind == kind
	}
	for _, e := range h.seen {
		if match(e) {
			return e
		}
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-h.events:
			h.seen = append(h.seen, e)
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event for job %q", kind, name)
		}
	}
}

func TestJobsRunOnlyWhatCommitted(t *testing.T) {
	h := newHarness(t)
	h.enqueue(t, testJob{Name: "rolled back"}, commands.JobOptions{}, true)
	h.enqueue(t, testJob{Name: "a"}, commands.JobOptions{}, false)
	h.await(t, river.EventKindJobCompleted, "a")
	require.EqualValues(t, 1, h.calls["a"].Load())
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE args->>'name' = 'rolled back'`).Scan(&n))
	require.Zero(t, n, "a job enqueued in a rolled-back transaction exists")
}

func TestUniqueJobsAreEnqueuedOnce(t *testing.T) {
	h := newHarness(t)
	later := commands.JobOptions{RunAt: time.Now().Add(time.Hour), Unique: true}
	h.enqueue(t, testJob{Name: "unique"}, later, false)
	h.enqueue(t, testJob{Name: "unique"}, later, false)
	h.enqueue(t, testJob{Name: "b"}, later, false)
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE args->>'name' = 'unique'`).Scan(&n))
	require.Equal(t, 1, n)
}

func TestSnoozeCancelAndRetry(t *testing.T) {
	h := newHarness(t)
	h.enqueue(t, testJob{Name: "snooze", Mode: "snooze"}, commands.JobOptions{}, false)
	h.enqueue(t, testJob{Name: "cancel", Mode: "cancel"}, commands.JobOptions{}, false)
	h.enqueue(t, testJob{Name: "fail", Mode: "fail"}, commands.JobOptions{MaxAttempts: 5}, false)
	h.await(t, river.EventKindJobSnoozed, "snooze")
	done := h.await(t, river.EventKindJobCompleted, "snooze")
	require.EqualValues(t, 2, h.calls["snooze"].Load())
	require.Equal(t, 1, done.Job.Attempt, "a snooze does not count as an attempt")
	cancelled := h.await(t, river.EventKindJobCancelled, "cancel")
	require.Equal(t, rivertype.JobStateCancelled, cancelled.Job.State)
	failed := h.await(t, river.EventKindJobFailed, "fail")
	require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, failed.Job.State,
		"a failure is retried")
	require.Len(t, failed.Job.Errors, 1, "its error is kept")
	require.True(t, failed.Job.ScheduledAt.After(failed.Job.AttemptedAt.Add(-time.Second)), "with backoff")
}

func jsonArgs(j *rivertype.JobRow, v any) error { return json.Unmarshal(j.EncodedArgs, v) }
