package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
)

// AsOf is an aggregate's state as it stood at a moment, and where in its
// stream and in the log that state stands.
type AsOf[A any] struct {
	// State is the state folded from the events recorded by then.
	State A
	// Version is the stream version of the last event folded (0: none).
	Version int64
	// Position is that event's global position (0: none).
	Position int64
	// RecordedAt is when that event was recorded (zero: none).
	RecordedAt time.Time
}

// LoadAsOf folds aggregate id's events recorded at or before at through the
// aggregate's own Apply, as the live path does, and returns the state it
// had then. It folds the longest run of versions from 1 that were all
// recorded by then: recorded_at is the writer's clock, and an event stamped
// early behind a later one (clock skew between instances) must not be
// folded without the events before it. Snapshots are not used: they hold
// the newest state, not an old one.
func (r *Repository[A, E]) LoadAsOf(ctx context.Context, q Querier, id uuid.UUID, at time.Time) (AsOf[A], error) {
	stream := r.Stream(id)
	records, err := collectRecords(ctx, q, `SELECT `+recordColumns+` FROM events
		WHERE stream_id = $1 AND stream_type = $2 AND recorded_at <= $3 ORDER BY version`,
		stream.ID, string(stream.Type), at.Truncate(time.Microsecond))
	if err != nil {
		return AsOf[A]{}, fmt.Errorf("load %s as of %s: %w", stream, at.Format(time.RFC3339Nano), err)
	}
	out := AsOf[A]{State: r.agg.New(id)}
	for _, rec := range records {
		if rec.Version != out.Version+1 {
			break
		}
		e, err := r.store.DecodeContext(ctx, rec)
		if err != nil {
			return AsOf[A]{}, fmt.Errorf("load %s as of %s: %w", stream, at.Format(time.RFC3339Nano), err)
		}
		typed, ok := e.(E)
		if !ok {
			return AsOf[A]{}, fmt.Errorf("load %s: event %s (%T) does not belong to this aggregate", stream, rec.EventType, e)
		}
		r.agg.Apply(out.State, typed)
		out.Version, out.Position, out.RecordedAt = rec.Version, rec.GlobalPosition, rec.RecordedAt
	}
	return out, nil
}

// StateView is one aggregate's state rendered for auditors, as of a moment.
type StateView struct {
	// Stream is the aggregate's stream.
	Stream Stream
	// Version and Position say where the state stands (0: no event yet).
	Version, Position int64
	// RecordedAt is when the last event folded was recorded.
	RecordedAt time.Time
	// State is the aggregate's own rendering of its state (JSON-ready).
	State any
}

// StateReader reads one kind of aggregate's state as of any moment. It
// hides the aggregate's Go types, so one registry (Aggregates) serves
// every kind; Describe makes one from an Aggregate description.
type StateReader interface {
	// Type is the stream type of the aggregate's streams.
	Type() StreamType
	// StateAsOf folds the stream's events recorded at or before at
	// (LoadAsOf) and renders the state as it was at that moment.
	StateAsOf(ctx context.Context, q Querier, id uuid.UUID, at time.Time) (StateView, error)
	// StateNow loads the stream as the live path does (Load) and renders
	// its state at at: the comparison point of StateAsOf.
	StateNow(ctx context.Context, q Querier, id uuid.UUID, at time.Time) (StateView, error)
}

// describedAggregate is the StateReader of one Aggregate description.
type describedAggregate[A any, E Event] struct {
	repo *Repository[A, E]
	view func(a A, at time.Time) any
}

// Describe returns the StateReader of agg over store: states fold through
// the aggregate's own Apply, and view renders one for auditors at a moment
// (a session's status depends on the time it is looked at). A new
// aggregate plugs into audit state with one Describe in its registry.
func Describe[A any, E Event](store *Store, agg Aggregate[A, E], view func(a A, at time.Time) any) (StateReader, error) {
	if view == nil {
		return nil, fmt.Errorf("eventstore: describe %s: nil view", agg.Type)
	}
	repo, err := NewRepository(store, agg)
	if err != nil {
		return nil, err
	}
	return describedAggregate[A, E]{repo: repo, view: view}, nil
}

func (d describedAggregate[A, E]) Type() StreamType { return d.repo.agg.Type }

func (d describedAggregate[A, E]) StateAsOf(ctx context.Context, q Querier, id uuid.UUID, at time.Time) (StateView, error) {
	s, err := d.repo.LoadAsOf(ctx, q, id, at)
	if err != nil {
		return StateView{}, err
	}
	if s.Version == 0 {
		return StateView{}, ErrStreamNotFound
	}
	return StateView{Stream: d.repo.Stream(id), Version: s.Version, Position: s.Position, RecordedAt: s.RecordedAt,
		State: d.view(s.State, at)}, nil
}

func (d describedAggregate[A, E]) StateNow(ctx context.Context, q Querier, id uuid.UUID, at time.Time) (StateView, error) {
	l, err := d.repo.Load(ctx, q, id)
	if err != nil {
		return StateView{}, err
	}
	if l.Version == 0 {
		return StateView{}, ErrStreamNotFound
	}
	recs, err := collectRecords(ctx, q, `SELECT `+recordColumns+` FROM events WHERE stream_id = $1 AND version = $2 AND stream_type = $3`,
		id, l.Version, string(d.repo.agg.Type))
	if err != nil || len(recs) != 1 {
		return StateView{}, fmt.Errorf("load %s: head event: %v", d.repo.Stream(id), err)
	}
	return StateView{Stream: d.repo.Stream(id), Version: l.Version, Position: recs[0].GlobalPosition,
		RecordedAt: recs[0].RecordedAt, State: d.view(l.State, at)}, nil
}

// ErrStreamNotFound means the stream had no event by the moment asked.
var ErrStreamNotFound = errors.New("stream not found")

// ErrNoStateReader means no aggregate is registered for a stream type.
var ErrNoStateReader = errors.New("no aggregate is described for this stream type")

// Aggregates is the registry of aggregate descriptions audit state reads
// through: one StateReader per stream type.
type Aggregates struct {
	byType map[StreamType]StateReader
}

// NewAggregates returns a registry of readers, refusing two for one type.
func NewAggregates(readers ...StateReader) (*Aggregates, error) {
	a := &Aggregates{byType: map[StreamType]StateReader{}}
	for _, r := range readers {
		if _, dup := a.byType[r.Type()]; dup {
			return nil, fmt.Errorf("eventstore: aggregate %s described twice", r.Type())
		}
		a.byType[r.Type()] = r
	}
	return a, nil
}

// Reader returns the reader of stream type t, or ErrNoStateReader.
func (a *Aggregates) Reader(t StreamType) (StateReader, error) {
	r, ok := a.byType[t]
	if !ok {
		return nil, fmt.Errorf("%s: %w", t, ErrNoStateReader)
	}
	return r, nil
}

// Types lists the described stream types in order.
func (a *Aggregates) Types() []StreamType {
	out := make([]StreamType, 0, len(a.byType))
	for t := range a.byType {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
