package projections

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/eventstore"
)

// Runner feeds one projector from the log for as long as it runs. Any number
// of runners of one projector may run, in any processes: a session advisory
// lock held on a dedicated connection lets exactly one of them consume while
// the others stand by and take over when it stops or its connection dies.
type Runner struct {
	pool     *pgxpool.Pool
	appended *eventstore.Signal
	p        Projector
	cfg      config
	metrics  *metrics
	active   atomic.Bool
	consumer *consumer
}

// NewRunner returns a runner of p over the store's database, woken by the
// store's appends in this process and by NOTIFY from others.
func NewRunner(store *eventstore.Store, p Projector, opts ...Option) (*Runner, error) {
	if store == nil {
		return nil, errors.New("projections: nil store")
	}
	if err := validate([]Projector{p}); err != nil {
		return nil, err
	}
	return newRunner(store, p, newConfig(opts), nil), nil
}

func newRunner(store *eventstore.Store, p Projector, cfg config, m *metrics) *Runner {
	return &Runner{pool: store.Pool(), appended: store.Appended(), p: p, cfg: cfg, metrics: m,
		consumer: newConsumer(store.Pool(), p, p.Name(), LiveTables(p), cfg, m)}
}

// Name returns the projector's name.
func (r *Runner) Name() string { return r.p.Name() }

// Active reports whether this runner currently holds the consumer lock.
func (r *Runner) Active() bool { return r.active.Load() }

// Run consumes until ctx is done, standing by while another runner holds the
// lock and starting over after a lost connection. It returns nil once ctx is
// done: failures in between are logged and retried, because a projector that
// gives up silently serves stale data forever.
func (r *Runner) Run(ctx context.Context) error {
	retry := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		wasActive, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if wasActive {
			retry.reset()
		}
		r.cfg.logger.Warn("projection consumer interrupted; retrying", "projection", r.p.Name(), "err", err)
		if !wait(ctx, retry.next()) {
			return nil
		}
	}
}

// session runs one connection's life: stand by for the lock, then consume
// until ctx ends or the lock connection dies (which released the lock).
func (r *Runner) session(ctx context.Context) (wasActive bool, err error) {
	cfg := r.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "dashtam projection " + r.p.Name()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect lock session: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	standingBy := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockConsumer, nameKey(r.p.Name())).Scan(&ok); err != nil {
			return false, fmt.Errorf("take consumer lock: %w", err)
		}
		if ok {
			break
		}
		if !standingBy {
			r.cfg.logger.Info("projection consumed elsewhere; standing by", "projection", r.p.Name())
			standingBy = true
		}
		if !wait(ctx, r.cfg.standbyInterval) {
			return false, ctx.Err()
		}
	}
	if err := ensureOne(ctx, r.cfg.ddlPool(r.pool), r.p); err != nil {
		return false, err
	}
	// Another consumer ran while this one stood by, and ensureOne may have
	// reset the checkpoint: start from the row, not from memory.
	r.consumer.forget()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false, fmt.Errorf("listen for appends: %w", err)
	}

	r.active.Store(true)
	r.metrics.setActive(r.p.Name(), true)
	defer func() {
		r.active.Store(false)
		r.metrics.setActive(r.p.Name(), false)
	}()
	r.cfg.logger.Info("projection consumer active", "projection", r.p.Name())

	// The lock lives exactly as long as conn: when conn dies, the lock is
	// gone and another runner may already consume, so the batch in flight
	// is cancelled and nothing more is applied from here.
	err = eventstore.WhileListening(ctx, conn, "lock connection lost", r.consume)
	if r.consumer.shared != nil {
		// No longer consuming here: hold no shared record back.
		r.consumer.shared.leave(r.consumer)
	}
	return true, err
}

// consume applies batches until ctx is done. After a full batch it goes on at
// once; while committed events wait behind an open transaction it polls with
// a short, growing interval; when caught up it sleeps until an append is
// signalled in-process or notified, or the poll interval passes.
func (r *Runner) consume(ctx context.Context, notified <-chan struct{}) error {
	heldBack := newBackoff(time.Millisecond, maxHeldBackWait)
	failing := newBackoff(100*time.Millisecond, 10*time.Second)
	poll := time.NewTimer(r.cfg.pollInterval)
	defer poll.Stop()
	for {
		// Taken before the batch so that an append committing while the
		// batch runs still wakes the wait below.
		appended := r.appended.C()
		res, err := r.consumer.step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.metrics.failed(r.p.Name())
			r.cfg.logger.Error("projection batch failed; retrying", "projection", r.p.Name(), "err", err)
			if !wait(ctx, failing.next()) {
				return ctx.Err()
			}
			continue
		}
		if res.pending != nil {
			// An event failed as it would every time; it is parked after
			// a few more attempts, spaced out like any failure.
			r.metrics.failed(r.p.Name())
			r.cfg.logger.Warn("projection event failed; retrying before parking it", "projection", r.p.Name(), "err", res.pending)
			if !wait(ctx, failing.next()) {
				return ctx.Err()
			}
			continue
		}
		failing.reset()
		n := res.processed
		switch {
		case n > 0 && res.more:
			heldBack.reset()
			continue
		case n == 0 && res.more:
			// Appends to come cannot pass the open transaction either, so
			// only the timer is worth waiting for.
			if !wait(ctx, heldBack.next()) {
				return ctx.Err()
			}
			continue
		}
		heldBack.reset()
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(r.cfg.pollInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-appended:
		case <-notified:
		case <-poll.C:
		}
	}
}

// wait blocks for d or until ctx is done, reporting whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff doubles a delay from min to max.
type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }
