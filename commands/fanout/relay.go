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

// derived is what one domain event derives.
type derived struct {
	events []Event
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

// Prepare publishes the batch's integration events to the broker, outside
// any transaction; with a TxSink it does nothing.
func (r *Relay) Prepare(ctx context.Context, batch []eventstore.Record) error {
	if r.broker == nil {
		return nil
	}
	events, failures, err := r.deriver.Derive(ctx, r.pool, batch)
	if err != nil {
		return err
	}
	r.remember(batch, events, failures)
	msgs, err := messages(events)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := r.broker.Publish(ctx, msgs); err != nil {
		return fmt.Errorf("publish %d integration events: %w", len(msgs), err)
	}
	return nil
}

// Apply publishes through the TxSink in tx; with a Broker the batch was
// published by Prepare, and Apply only reports the events that could not
// be derived, so that they are parked rather than passed over silently.
func (r *Relay) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error {
	if r.broker != nil {
		for _, rec := range batch {
			d, ok := r.recall(rec.GlobalPosition)
			if !ok {
				_, failures, err := r.deriver.Derive(ctx, tx, []eventstore.Record{rec})
				if err != nil {
					return err
				}
				if len(failures) > 0 {
					return failures[0]
				}
				continue
			}
			if d.err != nil {
				return d.err
			}
		}
		return nil
	}
	events, failures, err := r.deriver.Derive(ctx, tx, batch)
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		return failures[0]
	}
	msgs, err := messages(events)
	if err != nil || len(msgs) == 0 {
		return err
	}
	return r.tx.PublishTx(ctx, tx, msgs)
}

// remember keeps what Prepare derived, replacing the previous batch's.
func (r *Relay) remember(batch []eventstore.Record, events []Event, failures []*DeriveError) {
	m := make(map[int64]derived, len(batch))
	for _, rec := range batch {
		m[rec.GlobalPosition] = derived{}
	}
	for _, e := range events {
		d := m[e.Position]
		d.events = append(d.events, e)
		m[e.Position] = d
	}
	for _, f := range failures {
		d := m[f.Record.GlobalPosition]
		d.err = f
		m[f.Record.GlobalPosition] = d
	}
	r.mu.Lock()
	r.prepared = m
	r.mu.Unlock()
}

func (r *Relay) recall(pos int64) (derived, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.prepared[pos]
	return d, ok
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
