package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Job is the arguments of one piece of background work: a JSON-encodable
// value whose Kind names the worker that runs it. Arguments are stored in
// the database until the job is done, so they never hold a secret in
// clear (mail bodies with links are sealed by the vault first).
type Job interface {
	// Kind is the stable name of the job's worker, e.g. "connection_refresh".
	Kind() string
}

// JobOptions tune one enqueued job.
type JobOptions struct {
	// RunAt delays the job until then; zero runs it as soon as a worker is free.
	RunAt time.Time
	// Unique makes the job a no-op when a job of the same kind and the same
	// arguments is already waiting, scheduled, retrying or running, across
	// every instance (one refresh per connection at a time).
	Unique bool
	// MaxAttempts bounds the tries before the job is discarded; zero is the default.
	MaxAttempts int
	// Queue names the queue; empty is the default queue.
	Queue string
}

// Jobs enqueues background work durably. adapters/jobs implements it with
// river, whose workers fetch in a short transaction and run jobs outside
// any transaction, so a running job never holds back the projectors.
type Jobs interface {
	// EnqueueTx adds job in the caller's transaction, so the job exists
	// exactly when the events that call for it commit.
	EnqueueTx(ctx context.Context, tx pgx.Tx, job Job, opts JobOptions) error
}

// JobSnoozeError asks for a job to run again after Delay without counting
// as a failed attempt: a provider's Retry-After, or a shared rate limit
// that has no slot free yet.
type JobSnoozeError struct {
	Delay time.Duration
}

// Error says for how long.
func (e *JobSnoozeError) Error() string { return fmt.Sprintf("job snoozed for %s", e.Delay) }

// ErrJobCancelled, wrapped in a worker's error, ends the job for good
// without further attempts: retrying cannot help (the connection was
// disconnected, the user erased).
var ErrJobCancelled = errors.New("job cancelled")
