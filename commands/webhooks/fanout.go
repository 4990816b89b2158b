package webhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
)

// DeliveryJob sends one delivery: the job carries only its id, the body
// stays in its row.
type DeliveryJob struct {
	DeliveryID uuid.UUID `json:"delivery_id"`
}

// Kind names the job's worker.
func (DeliveryJob) Kind() string { return "webhook_delivery" }

// FanoutName is the webhook fan-out's checkpoint and lock name.
const FanoutName = "webhook_fanout"

// Fanout is the checkpointed consumer of the log that turns integration
// events into deliveries: a projections.Reactor, separate from the relay so
// that a broker outage holds back no webhook. In the transaction that moves
// its checkpoint it inserts one delivery per event and subscribed, enabled
// endpoint of the event's user, and the job that sends it, so each reaches
// the queue exactly once; the send happens after the commit, in the job.
// An endpoint receives the events recorded after it was created.
type Fanout struct {
	deriver *fanout.Deriver
	h       *Handler
}

// NewFanout returns the fan-out of h's endpoints.
func NewFanout(deriver *fanout.Deriver, h *Handler) (*Fanout, error) {
	if deriver == nil || h == nil {
		return nil, errors.New("webhooks: fan-out needs a deriver and a handler")
	}
	return &Fanout{deriver: deriver, h: h}, nil
}

// Name is the fan-out's checkpoint name.
func (f *Fanout) Name() string { return FanoutName }

// subscriber is an enabled endpoint as the fan-out matches it.
type subscriber struct {
	id        uuid.UUID
	user      uuid.UUID
	types     []string
	createdAt time.Time
}

// Apply enqueues the batch's deliveries in tx.
func (f *Fanout) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Record) error {
	events, failures, err := f.deriver.Derive(ctx, tx, batch)
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		return failures[0]
	}
	if len(events) == 0 {
		return nil
	}
	var users []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, e := range events {
		if !seen[e.UserID] {
			seen[e.UserID] = true
			users = append(users, e.UserID)
		}
	}
	rows, err := tx.Query(ctx, `SELECT id, user_id, event_types, created_at FROM webhook_endpoints
		WHERE user_id = ANY($1) AND status = 'enabled'`, users)
	if err != nil {
		return fmt.Errorf("read webhook subscribers: %w", err)
	}
	subs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (subscriber, error) {
		var s subscriber
		err := r.Scan(&s.id, &s.user, &s.types, &s.createdAt)
		return s, err
	})
	if err != nil {
		return fmt.Errorf("read webhook subscribers: %w", err)
	}
	if len(subs) == 0 {
		return nil
	}
	byUser := map[uuid.UUID][]subscriber{}
	for _, s := range subs {
		byUser[s.user] = append(byUser[s.user], s)
	}
	var pending []pendingDelivery
	for _, e := range events {
		for _, s := range byUser[e.UserID] {
			if !slices.Contains(s.types, e.Type) || e.Timestamp.Before(s.createdAt) {
				continue
			}
			body, err := e.Marshal()
			if err != nil {
				return fmt.Errorf("encode integration event %s: %w", e.ID, err)
			}
			pending = append(pending, pendingDelivery{endpoint: s.id, user: e.UserID, event: e.ID, typ: e.Type, body: body})
		}
	}
	if len(pending) == 0 {
		return nil
	}
	_, err = f.h.enqueue(ctx, tx, pending, f.h.clock.Now())
	return err
}

// pendingDelivery is a delivery about to be enqueued.
type pendingDelivery struct {
	endpoint, user, event uuid.UUID
	typ                   string
	body                  []byte
}

// enqueue inserts deliveries and their jobs in tx; a delivery of an event
// the endpoint already has is left alone. It returns the new deliveries' ids.
func (h *Handler) enqueue(ctx context.Context, tx pgx.Tx, ds []pendingDelivery, now time.Time) ([]uuid.UUID, error) {
	n := len(ds)
	ids := make([]uuid.UUID, n)
	endpoints := make([]uuid.UUID, n)
	users := make([]uuid.UUID, n)
	events := make([]uuid.UUID, n)
	types := make([]string, n)
	bodies := make([][]byte, n)
	for i, d := range ds {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("enqueue webhook deliveries: %w", err)
		}
		ids[i], endpoints[i], users[i], events[i], types[i], bodies[i] = id, d.endpoint, d.user, d.event, d.typ, d.body
	}
	rows, err := tx.Query(ctx, `INSERT INTO webhook_deliveries (id, endpoint_id, user_id, event_id, event_type, payload,
			status, next_attempt_at, created_at)
		SELECT u.id, u.endpoint_id, u.user_id, u.event_id, u.event_type, u.payload, 'pending', $7, $7
		FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::bytea[])
			AS u(id, endpoint_id, user_id, event_id, event_type, payload)
		ON CONFLICT (endpoint_id, event_id) DO NOTHING
		RETURNING id`, ids, endpoints, users, events, types, bodies, now)
	if err != nil {
		return nil, fmt.Errorf("insert webhook deliveries: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("insert webhook deliveries: %w", err)
	}
	opts := commands.JobOptions{Queue: Queue}
	if many, ok := h.jobs.(manyJobs); ok {
		jobs := make([]commands.Job, len(inserted))
		for i, id := range inserted {
			jobs[i] = DeliveryJob{DeliveryID: id}
		}
		return inserted, many.EnqueueManyTx(ctx, tx, jobs, opts)
	}
	for _, id := range inserted {
		if err := h.jobs.EnqueueTx(ctx, tx, DeliveryJob{DeliveryID: id}, opts); err != nil {
			return nil, err
		}
	}
	return inserted, nil
}

// manyJobs is implemented by a job queue that inserts many jobs in one
// statement (adapters/jobs): a batch of deliveries then costs the fan-out's
// transaction one round trip instead of one per delivery.
type manyJobs interface {
	EnqueueManyTx(ctx context.Context, tx pgx.Tx, jobs []commands.Job, opts commands.JobOptions) error
}
