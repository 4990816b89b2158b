package projections

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// DefaultNotifyInterval is the shortest gap between two NOTIFYs of one process.
const DefaultNotifyInterval = 5 * time.Millisecond

// Notifier tells runners in other processes that this process appended, with
// one NOTIFY after commit for any number of appends within an interval.
// NOTIFY inside append_events would instead take PostgreSQL's global notify
// queue lock in every appending transaction and serialise their commits.
type Notifier struct {
	pool     *pgxpool.Pool
	appended *eventstore.Signal
	interval time.Duration
	logger   *slog.Logger
}

// NewNotifier returns a notifier for the store's appends that sends at most one
// NOTIFY per interval (DefaultNotifyInterval when interval is not positive).
func NewNotifier(store *eventstore.Store, interval time.Duration, logger *slog.Logger) (*Notifier, error) {
	if store == nil {
		return nil, errors.New("projections: nil store")
	}
	if interval <= 0 {
		interval = DefaultNotifyInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{pool: store.Pool(), appended: store.Appended(), interval: interval, logger: logger}, nil
}

// Run sends notifications until ctx is done, then returns nil. A failed
// NOTIFY is logged and not retried: runners elsewhere still poll.
func (n *Notifier) Run(ctx context.Context) error {
	appended := n.appended.C()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-appended:
		}
		// Taken before the NOTIFY: an append committing from here on
		// closes it, and is announced by the next round.
		appended = n.appended.C()
		if _, err := n.pool.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyChannel); err != nil && ctx.Err() == nil {
			n.logger.Warn("notify appends failed", "err", err)
		}
		if !wait(ctx, n.interval) {
			return nil
		}
	}
}
