// Package syncs holds the sync of a provider connection: the request
// (POST /connections/{id}/syncs, the scheduler, the first sync after an
// authorisation), decided on the connection's stream with its job enqueued
// in the same unit of work; the job, which calls the provider with no
// transaction open and writes accounts, transactions and removals in short
// units of work; the scheduler; and the closing of a disconnected
// connection's accounts. docs/sync.md records the design.
package syncs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Caller runs a data call against a connection's provider with its
// current credentials; connections.Handler implements it (Call: paced, no
// transaction open, refreshed once on a refusal, never for a connection
// that is not active).
type Caller interface {
	Call(ctx context.Context, connectionID uuid.UUID, fn func(ctx context.Context, p commands.Provider, c commands.Credentials) error) error
}

// DueLister finds the connections due for a scheduled sync;
// projections.SyncReader implements it over the syncs read model.
type DueLister interface {
	// DueConnections returns up to limit active connections whose last
	// sync started before before, or never, leaving out those with a sync
	// in progress that started after stale.
	DueConnections(ctx context.Context, before, stale time.Time, limit int) ([]uuid.UUID, error)
}

// Defaults of Deps.
const (
	// DefaultOverlapDays is how far before the latest posted transaction a
	// later sync starts, to catch transactions that post late.
	DefaultOverlapDays = 10
	// DefaultInterval is how often every active connection is synced
	// (DASHTAM_SYNC_INTERVAL).
	DefaultInterval = 6 * time.Hour
	// DefaultBatchSize is how many transactions one unit of work writes.
	DefaultBatchSize = 2000
)

// Deps are the collaborators of a Handler; all but the tunables are
// required.
type Deps struct {
	// Store appends to and reads the streams.
	Store *eventstore.Store
	// Pool reads the index outside units of work.
	Pool *pgxpool.Pool
	// Caller makes the provider calls (connections.Handler).
	Caller Caller
	// Jobs enqueues sync jobs in the deciding unit of work.
	Jobs commands.Jobs
	// Due finds the connections the scheduler syncs.
	Due DueLister
	// Now is the clock decisions are stamped with.
	Now func() time.Time
	// Logger receives failures; never tokens.
	Logger *slog.Logger
	// OverlapDays is DefaultOverlapDays when zero.
	OverlapDays int
	// Interval is DefaultInterval when zero.
	Interval time.Duration
	// BatchSize is DefaultBatchSize when zero; at most DefaultBatchSize.
	BatchSize int
}

// Handler implements the sync use cases and their jobs.
type Handler struct {
	store        *eventstore.Store
	pool         *pgxpool.Pool
	caller       Caller
	jobs         commands.Jobs
	due          DueLister
	clock        commands.Clock
	log          *slog.Logger
	overlap      int
	interval     time.Duration
	batch        int
	connections  *eventstore.Repository[*connection.Connection, connection.Event]
	accounts     *eventstore.Repository[*account.Account, account.Event]
	transactions *eventstore.Repository[*transaction.Transaction, transaction.Event]

	// afterUnit, set only by tests, runs after each committed unit of work
	// of a sync's writes; an error it returns stops the sync there, as a
	// crash between two units of work would.
	afterUnit func(unit int) error
}

// NewHandler returns a Handler over d, refusing missing dependencies.
func NewHandler(d Deps) (*Handler, error) {
	var missing []string
	for name, isNil := range map[string]bool{
		"Store": d.Store == nil, "Pool": d.Pool == nil, "Caller": d.Caller == nil, "Jobs": d.Jobs == nil,
		"Due": d.Due == nil, "Now": d.Now == nil, "Logger": d.Logger == nil,
	} {
		if isNil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("new syncs handler: missing " + strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	switch {
	case d.OverlapDays < 0 || d.OverlapDays > 366:
		return nil, fmt.Errorf("new syncs handler: overlap of %d days outside 0 to 366", d.OverlapDays)
	case d.Interval < 0:
		return nil, fmt.Errorf("new syncs handler: negative interval %s", d.Interval)
	case d.BatchSize < 0 || d.BatchSize > DefaultBatchSize:
		return nil, fmt.Errorf("new syncs handler: batch size %d outside 1 to %d", d.BatchSize, DefaultBatchSize)
	}
	h := &Handler{store: d.Store, pool: d.Pool, caller: d.Caller, jobs: d.Jobs, due: d.Due, clock: commands.Clock(d.Now),
		log: d.Logger, overlap: d.OverlapDays, interval: d.Interval, batch: d.BatchSize}
	if h.overlap == 0 {
		h.overlap = DefaultOverlapDays
	}
	if h.interval == 0 {
		h.interval = DefaultInterval
	}
	if h.batch == 0 {
		h.batch = DefaultBatchSize
	}
	var err error
	if h.connections, err = eventstore.NewRepository(d.Store, commands.ConnectionAggregate()); err != nil {
		return nil, err
	}
	if h.accounts, err = eventstore.NewRepository(d.Store, commands.AccountAggregate()); err != nil {
		return nil, err
	}
	if h.transactions, err = eventstore.NewRepository(d.Store, commands.TransactionAggregate()); err != nil {
		return nil, err
	}
	return h, nil
}

// Interval is how often the scheduler syncs each active connection.
func (h *Handler) Interval() time.Duration { return h.interval }

// The statuses of a sync (the API's vocabulary, as projections.Syncs folds them).
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// View is a sync as the request's answer and the in-progress lookup show it.
type View struct {
	ID           uuid.UUID
	ConnectionID uuid.UUID
	// Status is StatusQueued or StatusRunning here: finished syncs are read
	// from the read model.
	Status   string
	Trigger  connection.SyncTrigger
	Force    bool
	From, To string
	// StartedAt is when the sync was decided.
	StartedAt time.Time
}

// Errors of the sync use cases; the aggregate's (connection.ErrSyncRunning,
// ErrSyncTooSoon, ErrNotActive, ErrDisconnected, ErrFailed) come wrapped
// in a *RefusedError when a request is refused.
var (
	// ErrNotFound means the connection does not exist or belongs to another user.
	ErrNotFound = errors.New("connection not found")
)

// RefusedError is a sync request the connection refused, and when asking
// again may succeed.
type RefusedError struct {
	// Err is the aggregate's reason: connection.ErrSyncRunning,
	// ErrSyncTooSoon, or one of an inactive connection.
	Err error
	// RetryAfter is when to ask again; zero when waiting will not help
	// (the connection needs the user).
	RetryAfter time.Duration
	// Running is the sync in progress, for ErrSyncRunning.
	Running uuid.UUID
}

// Error says why.
func (e *RefusedError) Error() string { return "sync refused: " + e.Err.Error() }

// Unwrap exposes the reason to errors.Is.
func (e *RefusedError) Unwrap() error { return e.Err }

// runningRetryAfter is what a request refused for a sync in progress is
// told to wait: syncs of ordinary connections take seconds.
const runningRetryAfter = 30 * time.Second
