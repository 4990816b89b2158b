package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dashtam/dashtam/eventstore"
)

// ErrUnknownProjector reports a projector name the manager does not know.
var ErrUnknownProjector = errors.New("projections: unknown projector")

// Manager runs, reports on and rebuilds a fixed set of projectors; `dashtam
// serve` starts one for All and the projections command uses one for status
// and rebuilds.
type Manager struct {
	store      *eventstore.Store
	projectors []Projector
	byName     map[string]Projector
	cfg        config
	metrics    *metrics
	applied    *eventstore.Signal
}

// NewManager returns a manager of ps over the store's database. It fails on
// invalid or colliding projector names and tables, and when registering
// metrics fails.
func NewManager(store *eventstore.Store, ps []Projector, opts ...Option) (*Manager, error) {
	if store == nil {
		return nil, errors.New("projections: nil store")
	}
	if err := validate(ps); err != nil {
		return nil, err
	}
	ps = bindStore(store, ps)
	m := &Manager{store: store, projectors: ps, byName: make(map[string]Projector, len(ps)), cfg: newConfig(opts),
		applied: eventstore.NewSignal()}
	// Every batch this process commits raises Applied, so that a read
	// waiting for its own write (Positions) wakes at once.
	after := m.cfg.afterCommit
	m.cfg.batches = newBatchXIDs()
	m.cfg.afterCommit = func(name string, batch []eventstore.Record) {
		m.applied.Raise()
		if after != nil {
			after(name, batch)
		}
	}
	for _, p := range ps {
		m.byName[p.Name()] = p
	}
	met, err := newMetrics(m.cfg.registerer, m)
	if err != nil {
		return nil, fmt.Errorf("projections: register metrics: %w", err)
	}
	m.metrics = met
	return m, nil
}

// storeBound is a projector that needs the store to read its events: one
// that folds personal data, which the store seals and opens
// (docs/audit.md).
type storeBound interface {
	withStore(*eventstore.Store) Projector
}

// bindStore returns ps with every storeBound projector given store, so that
// every path a manager applies events by (live, parked retries, rebuilds)
// reads them alike.
func bindStore(store *eventstore.Store, ps []Projector) []Projector {
	out := make([]Projector, len(ps))
	for i, p := range ps {
		if b, ok := p.(storeBound); ok {
			p = b.withStore(store)
		}
		out[i] = p
	}
	return out
}

// Applied is raised after every batch a consumer of this manager commits.
func (m *Manager) Applied() *eventstore.Signal { return m.applied }

// Projector returns the projector called name, or ErrUnknownProjector.
func (m *Manager) Projector(name string) (Projector, error) {
	p, ok := m.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProjector, name)
	}
	return p, nil
}

// Ensure creates missing live tables and checkpoints of every projector, on
// the owner's pool when WithOwnerPool gave one.
func (m *Manager) Ensure(ctx context.Context) error {
	return Ensure(ctx, m.cfg.ddlPool(m.store.Pool()), m.projectors...)
}

// Start runs a Runner for every projector and blocks until ctx is done and
// every runner has stopped, with no transaction left open; it returns nil then.
// Runners of other processes for the same projectors stand by meanwhile.
func (m *Manager) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	// The runners read the log together (shared.go), except a Preparer's,
	// which reads ahead of its own writes on its own schedule.
	shared := newSharedReads(m.store.Pool(), m.cfg.batches)
	for _, p := range m.projectors {
		r := newRunner(m.store, p, m.cfg, m.metrics)
		if _, ok := p.(Preparer); !ok {
			r.consumer.shared = shared
		}
		wg.Go(func() { _ = r.Run(ctx) })
	}
	wg.Wait()
	return nil
}
