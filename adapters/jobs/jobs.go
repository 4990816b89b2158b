// Package jobs runs Dashtam's background work on river (riverqueue/river
// over pgx v5): jobs inserted in the transaction of the events that call
// for them, run by any `serve` instance with the worker role, retried with
// backoff, snoozed for a provider's Retry-After, unique where they must
// be. River fetches jobs in a short transaction and runs them outside any,
// so a running job never holds back the cluster-wide horizon every
// projector reads behind (docs/jobs.md).
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/dashtam/dashtam/commands"
)

// Workers is the set of job kinds this process can run, each with its
// handler; built explicitly at start-up.
type Workers struct {
	river *river.Workers
	kinds []string
}

// NewWorkers returns an empty set.
func NewWorkers() *Workers { return &Workers{river: river.NewWorkers()} }

// Handle registers fn as the worker of job kind A. fn's errors mean:
// *commands.JobSnoozeError — run again after the delay without counting an
// attempt; an error wrapping commands.ErrJobCancelled — never run again;
// any other — retry with river's exponential backoff until MaxAttempts.
func Handle[A commands.Job](w *Workers, fn func(ctx context.Context, args A) error) {
	river.AddWorker(w.river, river.WorkFunc(func(ctx context.Context, j *river.Job[A]) error {
		ctx = commands.WithJobAttempt(ctx, commands.JobAttempt{Attempt: j.Attempt, MaxAttempts: j.MaxAttempts})
		return riverError(fn(ctx, j.Args))
	}))
	var zero A
	w.kinds = append(w.kinds, zero.Kind())
}

// Kinds lists the registered job kinds.
func (w *Workers) Kinds() []string { return append([]string(nil), w.kinds...) }

// riverError turns a handler's error into river's vocabulary.
func riverError(err error) error {
	var snooze *commands.JobSnoozeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &snooze):
		return river.JobSnooze(max(snooze.Delay, 0))
	case errors.Is(err, commands.ErrJobCancelled):
		return river.JobCancel(err)
	}
	return err
}

// Queues of the jobs and how many of each run at once per instance.
const (
	// QueueDefault runs refreshes, expiries, reminders and syncs.
	QueueDefault = river.QueueDefault
	// QueueMail sends mail, apart so a slow mail server does not delay refreshes.
	QueueMail = "mail"
	// QueueWebhooks sends webhook deliveries (commands/webhooks.Queue), apart
	// so slow receivers delay nothing else; each waits on the network, not
	// the CPU, hence more at once. River fetches at most MaxWorkers jobs
	// per fetch and fetches at most every FetchCooldown (100 ms), so 100
	// workers allow up to 1,000 deliveries a second (docs/benchmarks.md).
	QueueWebhooks = "webhooks"
)

// Config tunes the client.
type Config struct {
	// Work is true for processes that run jobs (serve --role worker|all);
	// false makes an insert-only client.
	Work bool
	// MaxWorkers bounds the jobs of the default queue running at once; zero means 100.
	MaxWorkers int
	// FetchPollInterval is how often workers look for jobs nobody
	// signalled; zero means river's default (1 s).
	FetchPollInterval time.Duration
	// Logger receives river's own log lines.
	Logger *slog.Logger
	// Periodic are jobs enqueued on a fixed period by whichever working
	// instance river elected leader (one across the cluster); each needs
	// its worker registered.
	Periodic []Periodic
}

// Periodic is one job enqueued every Every.
type Periodic struct {
	Every time.Duration
	Job   commands.Job
	// Options tune each enqueued job (Unique keeps one waiting at a time).
	Options commands.JobOptions
}

// Client enqueues jobs and, when configured to, runs them.
type Client struct {
	river *river.Client[pgx.Tx]
	work  bool
}

var _ commands.Jobs = (*Client)(nil)

// New returns a client over pool. With cfg.Work, workers must register
// every kind the system enqueues.
func New(pool *pgxpool.Pool, workers *Workers, cfg Config) (*Client, error) {
	rc := &river.Config{Logger: cfg.Logger, FetchPollInterval: cfg.FetchPollInterval}
	if rc.Logger == nil {
		rc.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Work {
		if workers == nil {
			return nil, errors.New("jobs: a working client needs workers")
		}
		n := cfg.MaxWorkers
		if n <= 0 {
			n = 100
		}
		rc.Workers = workers.river
		rc.Queues = map[string]river.QueueConfig{
			QueueDefault:  {MaxWorkers: n},
			QueueMail:     {MaxWorkers: 10},
			QueueWebhooks: {MaxWorkers: 100},
		}
		// A job that outlives this is cancelled: provider calls time out
		// far sooner, so only a wedged handler reaches it.
		rc.JobTimeout = 10 * time.Minute
		// A job left running by a crashed instance is retried after this.
		rc.RescueStuckJobsAfter = 15 * time.Minute
		for _, p := range cfg.Periodic {
			if p.Every < time.Second || p.Job == nil {
				return nil, fmt.Errorf("jobs: periodic job %T: want a job and a period of at least a second", p.Job)
			}
			job, opts := p.Job, insertOpts(p.Job, p.Options)
			rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(p.Every),
				func() (river.JobArgs, *river.InsertOpts) { return job, opts }, &river.PeriodicJobOpts{RunOnStart: true}))
		}
	}
	c, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Client{river: c, work: cfg.Work}, nil
}

// uniqueStates are the states in which a unique job blocks another of the
// same kind and arguments: every state in which it will still run.
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// insertOpts translates opts for river.
func insertOpts(job commands.Job, opts commands.JobOptions) *river.InsertOpts {
	io := &river.InsertOpts{ScheduledAt: opts.RunAt, MaxAttempts: opts.MaxAttempts, Queue: opts.Queue}
	if _, ok := job.(commands.UserMail); ok && io.Queue == "" {
		io.Queue = QueueMail
	}
	if opts.Unique {
		io.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: uniqueStates}
	}
	return io
}

// EnqueueTx inserts job in tx; see commands.Jobs.
func (c *Client) EnqueueTx(ctx context.Context, tx pgx.Tx, job commands.Job, opts commands.JobOptions) error {
	if _, err := c.river.InsertTx(ctx, tx, job, insertOpts(job, opts)); err != nil {
		return fmt.Errorf("enqueue %s: %w", job.Kind(), err)
	}
	return nil
}

// EnqueueManyTx inserts jobs in tx in one statement, all with opts: what
// the webhook fan-out uses to queue a batch's deliveries, which one by one
// would cost a round trip each inside the fan-out's transaction.
func (c *Client) EnqueueManyTx(ctx context.Context, tx pgx.Tx, jobs []commands.Job, opts commands.JobOptions) error {
	if len(jobs) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(jobs))
	for i, job := range jobs {
		params[i] = river.InsertManyParams{Args: job, InsertOpts: &river.InsertOpts{ScheduledAt: opts.RunAt,
			MaxAttempts: opts.MaxAttempts, Queue: opts.Queue}}
	}
	if _, err := c.river.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("enqueue %d %s jobs: %w", len(jobs), jobs[0].Kind(), err)
	}
	return nil
}

// Start starts working jobs until Stop; an insert-only client does nothing.
func (c *Client) Start(ctx context.Context) error {
	if !c.work {
		return nil
	}
	return c.river.Start(ctx)
}

// Stop stops fetching, waits for running jobs to finish (until ctx ends,
// when they are cancelled and retried by the next instance) and returns.
func (c *Client) Stop(ctx context.Context) error {
	if !c.work {
		return nil
	}
	err := c.river.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return c.river.StopAndCancel(context.WithoutCancel(ctx))
	}
	return err
}

// River returns the underlying client, for the jobs command and tests.
func (c *Client) River() *river.Client[pgx.Tx] { return c.river }
