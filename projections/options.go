package projections

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashtam/dashtam/eventstore"
)

// Defaults of the runner; each has an Option.
const (
	// DefaultBatchSize is large enough for throughput, small enough that a
	// batch transaction holds the horizon back for milliseconds only.
	DefaultBatchSize = 1000
	// DefaultCatchUpBatchSize is the batch of a consumer whose last batch
	// was full: while it is behind, fewer and larger batches save the round
	// trips and the per-statement work of each (docs/projections.md); once
	// it is caught up it reads small batches again.
	DefaultCatchUpBatchSize = 5000
	// DefaultRebuildBatchSize is a rebuild's batch: its transactions write
	// only shadow tables nobody reads, so they may be long, and per-batch
	// costs (round trips, the checkpoint, a commit, each statement's
	// planning) are paid ten times less often (docs/benchmarks.md).
	DefaultRebuildBatchSize = 10000
	// DefaultPollInterval is the fallback for appends nobody signalled.
	DefaultPollInterval = time.Second
	// DefaultStandbyInterval is how quickly a standby notices a lost consumer.
	DefaultStandbyInterval = time.Second
	// maxHeldBackWait caps the polling interval while committed events wait
	// behind an open transaction: lag after it ends stays this small.
	maxHeldBackWait = 100 * time.Millisecond
)

// NotifyChannel is the PostgreSQL LISTEN/NOTIFY channel a Notifier signals
// appends on and runners of other processes listen to.
const NotifyChannel = "dashtam_events"

type config struct {
	batchSize       int
	catchUpBatch    int // 0: DefaultCatchUpBatchSize unless WithBatchSize chose the batch
	batchSizeSet    bool
	rebuildBatch    int
	pollInterval    time.Duration
	standbyInterval time.Duration
	logger          *slog.Logger
	registerer      prometheus.Registerer
	afterCommit     func(name string, batch []eventstore.Record)
	ownerPool       *pgxpool.Pool
	// batches, set by a Manager, holds its consumers' open batch
	// transactions, which their reads look past (quiet.go).
	batches *batchXIDs
}

func newConfig(opts []Option) config {
	c := config{
		batchSize:       DefaultBatchSize,
		rebuildBatch:    DefaultRebuildBatchSize,
		pollInterval:    DefaultPollInterval,
		standbyInterval: DefaultStandbyInterval,
		logger:          slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Option configures a Manager or a Runner.
type Option func(*config)

// WithBatchSize sets how many events one transaction applies at most: larger
// batches raise throughput, smaller ones shorten the transactions that hold
// back every reader's xid horizon.
func WithBatchSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.batchSize, c.batchSizeSet = n, true
		}
	}
}

// WithCatchUpBatchSize sets the batch a consumer reads and applies while it
// is behind (its last batch was full); a batch size chosen with
// WithBatchSize alone is used throughout, so that a small one stays small.
func WithCatchUpBatchSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.catchUpBatch = n
		}
	}
}

// WithRebuildBatchSize sets how many events one transaction of a rebuild's
// replay applies at most. It holds the xid horizon back like a live batch
// does, but a rebuild runs rarely and writes only its shadow tables, so it
// trades a longer transaction for fewer of them; the swap's final catch-up
// keeps the live batch size.
func WithRebuildBatchSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.rebuildBatch = n
		}
	}
}

// catchUpBatchSize is the batch while behind: never below batchSize.
func (c config) catchUpBatchSize() int {
	switch {
	case c.catchUpBatch > 0:
		return max(c.catchUpBatch, c.batchSize)
	case c.batchSizeSet:
		return c.batchSize
	default:
		return max(DefaultCatchUpBatchSize, c.batchSize)
	}
}

// WithPollInterval sets how often an idle consumer looks for events nobody
// signalled (an append from a process without a Notifier).
func WithPollInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.pollInterval = d
		}
	}
}

// WithStandbyInterval sets how often a standing-by runner tries to take over
// the consumer lock of its projection.
func WithStandbyInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.standbyInterval = d
		}
	}
}

// WithLogger sets where runners report lock changes and retried failures.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithRegisterer exports lag and throughput gauges to r (a Manager only).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(c *config) { c.registerer = r }
}

// WithAfterCommit calls f with every batch once its transaction committed;
// benchmarks measure end-to-end lag with it. f must not block for long: the
// consumer waits for it.
func WithAfterCommit(f func(name string, batch []eventstore.Record)) Option {
	return func(c *config) { c.afterCommit = f }
}

// WithOwnerPool runs every DDL statement (creating missing read-model tables,
// and a rebuild's shadow preparation, swap and clean-up) on pool, a
// connection as the role that owns the tables, while everything else stays
// on the store's pool. The application role owns nothing, so it can create,
// drop or move no table (docs/event-store.md); without this option the
// store's pool does both, which works only when it is the owner.
func WithOwnerPool(pool *pgxpool.Pool) Option {
	return func(c *config) { c.ownerPool = pool }
}

// ddlPool is the pool DDL runs on: the owner's when set, else fallback.
func (c config) ddlPool(fallback *pgxpool.Pool) *pgxpool.Pool {
	if c.ownerPool != nil {
		return c.ownerPool
	}
	return fallback
}
