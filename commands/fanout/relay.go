package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
)

// Message is one integration event as a sink carries it: the id a broker
// deduplicates on, the type and user consumers route by, and the event's
// wire form.
type Message struct {
	ID      uuid.UUID
	Type    string
	UserID  uuid.UUID
	Payload []byte
}

// TxSink publishes in the caller's database transaction, so the messages
// commit or roll back with it: with the relay's checkpoint in the same
// transaction, each integration event is published exactly once.
// adapters/eventsink implements it with watermill-sql.
type TxSink interface {
	// PublishTx publishes msgs, in order, as part of tx. It is never
	// called with no message.
	PublishTx(ctx context.Context, tx pgx.Tx, msgs []Message) error
}

// Broker publishes outside any transaction to a broker that drops a
// message whose id it has seen within its deduplication window: the relay
// publishes a batch before committing its checkpoint, so a batch published
// again after a crash costs nothing but duplicates dropped there.
// adapters/eventsink implements it with watermill-nats on JetStream.
type Broker interface {
	// Publish publishes msgs in order and returns once the broker
	// acknowledged every one. It is never called with no message.
	Publish(ctx context.Context, msgs []Message) error
}

// RelayName is the relay's checkpoint and lock name.
const RelayName = "integration_relay"

// RelayBatchSize is how many log events the relay reads, derives and
// publishes per checkpoint transaction (serve's; twice a projector's):
// during a backlog each batch's fixed costs — its transaction, the
// checkpoint's lock and update, the reads beside the log — are spread over
// twice the events, while reading ahead still overlaps two batches
// (docs/benchmarks.md).
const RelayBatchSize = 2000

// Relay is the one checkpointed consumer of the log that publishes
// integration events to the configured sink: a projections.Reactor run by
// a projections runner, so it reads gap free behind the xid horizon, runs
// in one instance at a time, and parks events it cannot derive. With a
// TxSink it publishes in Apply, inside the transaction that moves its
// checkpoint (exactly once); with a Broker it publishes in Prepare, before
// that transaction and outside any (at least once, deduplicated by id).
type Relay struct {
	deriver *Deriver
	tx      TxSink
	broker  Broker
	pool    eventstore.Querier

	// prepared keeps what Prepare derived for the batch Apply is called
	// with next, by global position; Apply derives what it does not find.
	mu       sync.Mutex
	prepared map[int64]derived
}

// derived is what one domain event derives, and its events encoded.
type derived struct {
	events []Event
	msgs   []Message
	err    *DeriveError
}

// NewTxRelay returns a relay publishing through sink in the checkpoint's transaction.
func NewTxRelay(deriver *Deriver, sink TxSink) (*Relay, error) {
	if deriver == nil || sink == nil {
		return nil, errors.New("fanout: relay needs a deriver and a sink")
	}
	return &Relay{deriver: deriver, tx: sink}, nil
}

// NewBrokerRelay returns a relay publishing to broker before each
// checkpoint transaction, reading what derivation needs through pool.
func NewBrokerRelay(deriver *Deriver, broker Broker, pool eventstore.Querier) (*Relay, error) {
	if deriver == nil || broker == nil || pool == nil {
		return nil, errors.New("fanout: relay needs a deriver, a broker and a pool")
	}
	return &Relay{deriver: deriver, broker: broker, pool: pool}, nil
}

// Name is the relay's checkpoint name.
func (r *Relay) Name() string { return RelayName }

// ReadsAhead lets the consumer prepare the next batch while it writes the
// previous one (projections.ReadAheadPreparer): Prepare keeps what it
// derived per position, and the write transaction never waits for it.
func (r *Relay) ReadsAhead() bool { return true }

// Prepare derives the batch's integration events outside any
// transaction (through the pool: what derivation reads is behind the
// horizon already, so it reads the same there as in the write transaction)
// and, with a Broker, publishes them. The consumer may prepare the next
// batch while the previous one is applied, so what Prepare derived is kept
// by position until Apply takes it.
func (r *Relay) Prepare(ctx context.Context, batch []eventstore.Record) error {
	q := r.pool
	if q == nil {
		q = r.deriver.store.Pool()
	}
	events, failures, err := r.deriver.Derive(ctx, q, batch)
	if err != nil {
		return err
	}
	// Encoded here too for a TxSink, so that the write transaction only
	// inserts: encoding a batch costs about as much as its INSERT.
	msgs, err := messages(events)
	if err != nil {
		return err
	}
	if r.broker != nil && len(msgs) > 0 {
		if err := r.broker.Publish(ctx, msgs); err != nil {
			return fmt.Errorf("publish %d integration events: %w", len(msgs), err)
		}
	}
	r.remember(batch, events, msgs, failures)
	return nil
}

// Apply publishes the batch's integration events, as Prepare derived and
// encoded them, through the TxSink in tx; with a Broker, Prepare published
// them, and Apply only reports the events that could not be derived, so
// that they are parked rather than passed over silently. Events Prepare
// did not derive (a batch that was not prepared, or was cut by parking)
// are derived and encoded here, in tx.
func (r *Relay) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error {
	events, msgs, missing := r.take(batch)
	if len(missing) > 0 {
		// Derived in tx and merged in commit order with what was prepared.
		derived, failures, err := r.deriver.Derive(ctx, tx, missing)
		if err != nil {
			return err
		}
		if len(failures) > 0 {
			return failures[0]
		}
		events = mergeByPosition(batch, events, derived)
	}
	if r.broker != nil && len(missing) > 0 {
		// Derived only now, so published only now: still before the commit.
		msgs, err := messages(eventsAt(events, missing))
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			if err := r.broker.Publish(ctx, msgs); err != nil {
				return fmt.Errorf("publish %d integration events: %w", len(msgs), err)
			}
		}
		return nil
	}
	if r.broker != nil {
		return nil
	}
	if len(missing) > 0 {
		var err error
		if msgs, err = messages(events); err != nil {
			return err
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return r.tx.PublishTx(ctx, tx, msgs)
}

// remember keeps what Prepare derived and encoded (msgs[i] is events[i]),
// by position, until Apply takes it.
func (r *Relay) remember(batch []eventstore.Record, events []Event, msgs []Message, failures []*DeriveError) {
	m := make(map[int64]derived, len(batch))
	for _, rec := range batch {
		m[rec.GlobalPosition] = derived{}
	}
	for i, e := range events {
		d := m[e.Position]
		d.events = append(d.events, e)
		d.msgs = append(d.msgs, msgs[i])
		m[e.Position] = d
	}
	for _, f := range failures {
		d := m[f.Record.GlobalPosition]
		d.err = f
		m[f.Record.GlobalPosition] = d
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prepared == nil || len(r.prepared) > maxPrepared {
		// Batches prepared and never applied (the checkpoint moved
		// elsewhere) are forgotten rather than kept for ever.
		r.prepared = map[int64]derived{}
	}
	for pos, d := range m {
		r.prepared[pos] = d
	}
}

// maxPrepared bounds what the relay keeps for Apply: a few batches.
const maxPrepared = 1 << 16

// take removes and returns, in batch order, the events Prepare derived for
// batch with their encodings, and the records it has nothing for. A
// prepared record that could not be derived counts as missing, so that
// Apply derives it again in tx and parks it if it still fails.
func (r *Relay) take(batch []eventstore.Record) ([]Event, []Message, []eventstore.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		events  []Event
		msgs    []Message
		missing []eventstore.Record
	)
	for _, rec := range batch {
		d, ok := r.prepared[rec.GlobalPosition]
		delete(r.prepared, rec.GlobalPosition)
		if !ok || d.err != nil {
			missing = append(missing, rec)
			continue
		}
		events = append(events, d.events...)
		msgs = append(msgs, d.msgs...)
	}
	return events, msgs, missing
}

// mergeByPosition returns the events of batch in its order, taking each
// record's events from prepared or derived.
func mergeByPosition(batch []eventstore.Record, prepared, derived []Event) []Event {
	by := make(map[int64][]Event, len(batch))
	for _, e := range prepared {
		by[e.Position] = append(by[e.Position], e)
	}
	for _, e := range derived {
		by[e.Position] = append(by[e.Position], e)
	}
	out := make([]Event, 0, len(prepared)+len(derived))
	for _, rec := range batch {
		out = append(out, by[rec.GlobalPosition]...)
	}
	return out
}

// eventsAt returns the events caused by recs.
func eventsAt(events []Event, recs []eventstore.Record) []Event {
	at := make(map[int64]bool, len(recs))
	for _, r := range recs {
		at[r.GlobalPosition] = true
	}
	var out []Event
	for _, e := range events {
		if at[e.Position] {
			out = append(out, e)
		}
	}
	return out
}

// messages encodes events for a sink.
func messages(events []Event) ([]Message, error) {
	out := make([]Message, 0, len(events))
	for _, e := range events {
		b, err := e.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode integration event %s: %w", e.ID, err)
		}
		out = append(out, Message{ID: e.ID, Type: e.Type, UserID: e.UserID, Payload: b})
	}
	return out, nil
}
