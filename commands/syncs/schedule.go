package syncs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
)

// ScheduleJob is the scheduler's periodic pass: it asks for a sync of
// every active connection whose last sync started more than the interval
// ago (or that never synced). Enqueued by river's periodic scheduler on
// the elected leader only.
type ScheduleJob struct{}

// Kind names the job's worker.
func (ScheduleJob) Kind() string { return "sync_schedule" }

// SchedulePeriod is how often the scheduler looks for connections due for
// a sync given the sync interval: often enough that a connection is
// synced at most a small part of the interval late, and at least once a
// minute, at most every 15 minutes.
func SchedulePeriod(interval time.Duration) time.Duration {
	return min(max(interval/24, time.Minute), 15*time.Minute)
}

// scheduleBatch bounds one pass; the rest wait for the next, oldest first.
const scheduleBatch = 1000

// Schedule is the ScheduleJob's work: one RequestJob per due
// connection (unique per connection), enqueued in one short transaction,
// so the decisions spread over the workers.
func (h *Handler) Schedule(ctx context.Context, _ ScheduleJob) error {
	now := h.clock.Now()
	due, err := h.due.DueConnections(ctx, now.Add(-h.interval), now.Add(-connection.SyncStale), scheduleBatch)
	if err != nil {
		return err
	}
	if len(due) == 0 {
		return nil
	}
	err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		for _, id := range due {
			if err := h.jobs.EnqueueTx(ctx, tx, RequestJob{ConnectionID: id, Trigger: connection.SyncScheduled},
				commands.JobOptions{Unique: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("schedule %d syncs: %w", len(due), err)
	}
	h.log.InfoContext(ctx, "syncs scheduled", "connections", len(due))
	return nil
}
