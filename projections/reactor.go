package projections

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
)

// Reactor consumes the log for effects outside the read models: publishing
// integration events to a broker, enqueueing webhook deliveries. It is fed
// by the same consumer as a projector — gap free behind the xid horizon, one
// active instance across processes, Apply in the short transaction that
// moves its checkpoint, poison events parked — but owns no table, so there
// is nothing to rebuild: its effects have left the database or belong to
// others. A Reactor is run by NewReactorRunner, never by a Manager, so that
// `dashtam projections rebuild --all` cannot replay its effects.
type Reactor interface {
	// Name identifies the reactor's checkpoint and lock, like a projector's.
	Name() string
	// Apply performs the effects of batch, in commit order, through tx (or
	// leaves them to be performed after it commits, e.g. as jobs enqueued
	// in it). The rules of Projector.Apply hold: no state outside tx, and
	// an error for an event it cannot handle, which is parked in the end.
	Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error
}

// Preparer is implemented by a Reactor (or Projector) with work that must
// happen before a batch is applied and outside any transaction: network I/O
// such as a publish to a broker, which must never hold the cluster-wide
// horizon. The consumer calls Prepare with every batch it read before it
// opens the write transaction. A batch may be prepared more than once (the
// transaction failed, a standby took over, the checkpoint moved), so the
// effect must be idempotent — a broker that drops duplicates by message id
// — and gives at-least-once delivery. An error is treated as transient: the
// batch is read and prepared again after a backoff.
type Preparer interface {
	Prepare(ctx context.Context, batch []eventstore.Record) error
}

// ReadAheadPreparer is a Preparer whose consumer may read and prepare the
// next batch while the previous one is written: after a full batch the
// consumer reads the following one and calls Prepare with it in the
// background, so reading and preparing batch n+1 overlap with writing
// batch n. The write transaction never waits for it (it is used only if
// the checkpoint is where it was read from, and dropped otherwise), so no
// transaction is held open by the Preparer's I/O; but a Prepare then runs
// while a transaction of the consumer is open, and it must keep what it
// prepared for each batch until Apply takes it. The relay of integration
// events opts in, to double its rate during a backlog.
type ReadAheadPreparer interface {
	Preparer
	// ReadsAhead reports whether the consumer may read ahead.
	ReadsAhead() bool
}

// NewReactorRunner returns a runner of r over the store's database: the
// runner of a projector without tables. Its checkpoint starts at the
// beginning of the log the first time it runs.
func NewReactorRunner(store *eventstore.Store, r Reactor, opts ...Option) (*Runner, error) {
	if store == nil {
		return nil, errors.New("projections: nil store")
	}
	if r == nil {
		return nil, errors.New("projections: nil reactor")
	}
	p := reactorProjector{r}
	if err := validate([]Projector{p}); err != nil {
		return nil, err
	}
	return newRunner(store, p, newConfig(opts), nil), nil
}

// reactorProjector runs a Reactor through the projector machinery.
type reactorProjector struct{ r Reactor }

func (p reactorProjector) Name() string             { return p.r.Name() }
func (p reactorProjector) Tables() []string         { return nil }
func (p reactorProjector) Schema(TableNames) string { return "" }
func (p reactorProjector) tableless() bool          { return true }
func (p reactorProjector) Apply(ctx context.Context, tx pgx.Tx, _ TableNames, batch []eventstore.Record) error {
	return p.r.Apply(ctx, tx, batch)
}

// Prepare forwards to the reactor when it is a Preparer.
func (p reactorProjector) Prepare(ctx context.Context, batch []eventstore.Record) error {
	if pr, ok := p.r.(Preparer); ok {
		return pr.Prepare(ctx, batch)
	}
	return nil
}

// ReadsAhead forwards to the reactor when it is a ReadAheadPreparer: the
// consumer sees only this wrapper, so without it no reactor ever read
// ahead (TestReactorReadsAheadWhileItWrites).
func (p reactorProjector) ReadsAhead() bool {
	ra, ok := p.r.(ReadAheadPreparer)
	return ok && ra.ReadsAhead()
}
