package eventstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Aggregate describes one kind of aggregate to the generic path: which
// streams hold it, how its state starts and folds, and how it is
// snapshotted. A is the state, normally a pointer to the aggregate's struct
// (Apply folds into it in place); E is the aggregate's own event interface,
// which every event on its streams must satisfy. See docs/aggregates.md.
type Aggregate[A any, E Event] struct {
	// Type is the stream type of the aggregate's streams.
	Type StreamType
	// New returns the state of a stream with no events yet.
	New func(id uuid.UUID) A
	// Apply folds one event into a. It never fails and never validates:
	// events are facts.
	Apply func(a A, e E)
	// Snapshots, when not nil, lets loads start from a stored snapshot.
	Snapshots *Snapshots[A]
	// Serialize makes every decision on one stream take a transaction-level
	// lock on the stream before it loads, so that concurrent decisions queue
	// in the database instead of conflicting and retrying. Right for streams
	// that many requests write at once (a user's logins); needless for
	// streams one job writes.
	Serialize bool
}

// Snapshots tells the generic path how to store an aggregate's state so
// that loads fold only the events after it. Snapshots are a cache outside
// the log (table snapshots): any may be deleted at any time.
type Snapshots[A any] struct {
	// Every is how many events a stream grows by between two snapshots.
	Every int64
	// Schema identifies the encoding; stored snapshots of another schema
	// are ignored, so changing the state's shape only needs a new number.
	Schema int
	// Encode returns the stored form of a.
	Encode func(a A) ([]byte, error)
	// Decode rebuilds the state of stream id from its stored form; an
	// error makes the load replay the whole stream instead.
	Decode func(id uuid.UUID, state []byte) (A, error)
}

// Repository loads, decides and appends one kind of aggregate: the one
// generic load → decide → append path every use case goes through.
type Repository[A any, E Event] struct {
	store *Store
	agg   Aggregate[A, E]
	// onBadSnapshot is told about snapshots that could not be used.
	onBadSnapshot func(stream Stream, version int64, err error)
}

// NewRepository returns the repository of agg over store. It refuses an
// incomplete description, a programming error found at start-up.
func NewRepository[A any, E Event](store *Store, agg Aggregate[A, E]) (*Repository[A, E], error) {
	switch {
	case store == nil:
		return nil, errors.New("eventstore: repository: nil store")
	case !agg.Type.Valid():
		return nil, fmt.Errorf("eventstore: repository: invalid stream type %q", agg.Type)
	case agg.New == nil || agg.Apply == nil:
		return nil, fmt.Errorf("eventstore: repository of %s: New and Apply are required", agg.Type)
	case agg.Snapshots != nil && (agg.Snapshots.Every <= 0 || agg.Snapshots.Encode == nil || agg.Snapshots.Decode == nil):
		return nil, fmt.Errorf("eventstore: repository of %s: snapshots need Every > 0, Encode and Decode", agg.Type)
	}
	return &Repository[A, E]{store: store, agg: agg}, nil
}

// OnBadSnapshot registers fn to hear of stored snapshots that could not be
// decoded (the load then replayed the whole stream), for logging.
func (r *Repository[A, E]) OnBadSnapshot(fn func(stream Stream, version int64, err error)) {
	r.onBadSnapshot = fn
}

// SetSnapshotEvery changes the snapshot interval (0: never read or write
// snapshots); for benchmarks comparing intervals, not while in use.
func (r *Repository[A, E]) SetSnapshotEvery(n int64) {
	if r.agg.Snapshots == nil {
		return
	}
	s := *r.agg.Snapshots
	s.Every = n
	r.agg.Snapshots = &s
}

// Stream names the stream of aggregate id.
func (r *Repository[A, E]) Stream(id uuid.UUID) Stream { return Stream{Type: r.agg.Type, ID: id} }

// Loaded is an aggregate folded from its stream.
type Loaded[A any, E Event] struct {
	// State is the folded state; decisions may fold into it freely.
	State A
	// Version is the version of the last event folded (0: no events).
	Version int64
	// SnapshotVersion is the version of the snapshot the fold started from
	// (0: the whole stream was replayed).
	SnapshotVersion int64

	id       uuid.UUID
	snapshot []byte // the stored snapshot the fold started from
	history  []E    // the events folded after it
}

// Load folds aggregate id from its newest usable snapshot and the events
// after it (the whole stream without one), through q: the pool, or a unit
// of work's transaction.
func (r *Repository[A, E]) Load(ctx context.Context, q Querier, id uuid.UUID) (Loaded[A, E], error) {
	stream := r.Stream(id)
	l := Loaded[A, E]{id: id}
	if snap := r.agg.Snapshots; snap != nil && snap.Every > 0 {
		version, state, err := readSnapshot(ctx, q, stream, snap.Schema)
		if err != nil {
			return Loaded[A, E]{}, err
		}
		if state != nil {
			if _, err := snap.Decode(id, state); err != nil {
				if r.onBadSnapshot != nil {
					r.onBadSnapshot(stream, version, err)
				}
			} else {
				l.snapshot, l.SnapshotVersion = state, version
			}
		}
	}
	// Events are never changed or removed, so the ones after the snapshot's
	// version are exactly what it lacks, however much was appended since it
	// was read.
	records, err := readStream(ctx, q, stream, l.SnapshotVersion)
	if err != nil {
		return Loaded[A, E]{}, err
	}
	l.Version = l.SnapshotVersion
	l.history = make([]E, 0, len(records))
	for _, rec := range records {
		e, err := r.store.DecodeContext(ctx, rec)
		if err != nil {
			return Loaded[A, E]{}, fmt.Errorf("load %s: %w", stream, err)
		}
		typed, ok := e.(E)
		if !ok {
			return Loaded[A, E]{}, fmt.Errorf("load %s: event %s (%T) does not belong to this aggregate", stream, rec.EventType, e)
		}
		l.history = append(l.history, typed)
		l.Version = rec.Version
	}
	if l.State, err = r.fold(l); err != nil {
		return Loaded[A, E]{}, fmt.Errorf("load %s: %w", stream, err)
	}
	return l, nil
}

// fold folds l's snapshot and history afresh, followed by more.
func (r *Repository[A, E]) fold(l Loaded[A, E], more ...E) (A, error) {
	var a A
	if l.snapshot != nil {
		var err error
		if a, err = r.agg.Snapshots.Decode(l.id, l.snapshot); err != nil {
			return a, err
		}
	} else {
		a = r.agg.New(l.id)
	}
	for _, e := range l.history {
		r.agg.Apply(a, e)
	}
	for _, e := range more {
		r.agg.Apply(a, e)
	}
	return a, nil
}

// Decision is what a decide function chose: the events to append and,
// beside them, a refusal to report once they are committed. An attempt
// that is refused but must still be recorded (a failed login) comes back as
// both; a plain refusal with nothing to record is an error instead, which
// rolls the unit of work back.
type Decision[E Event] struct {
	Events  []E
	Refusal error
}

// Decide is the common case: the events of a command method, or its error.
func Decide[E Event](events []E, err error) (Decision[E], error) {
	return Decision[E]{Events: events}, err
}

// Result says what an update did.
type Result struct {
	AppendResult
	// Refusal is the decision's refusal, committed with its events.
	Refusal error
}

// DecideFunc decides on the loaded state inside the unit of work tx: it
// returns events to append, and may write rows that must commit with them
// through tx. It may run more than once (after a conflict), so it must have
// no effect outside tx except through tx.AfterCommit.
type DecideFunc[A any, E Event] func(ctx context.Context, tx *Tx, a A) (Decision[E], error)

// UpdateTx loads aggregate id inside the unit of work tx, lets decide choose,
// appends the decided events at the loaded version and stores a snapshot
// when one is due, all in tx. A conflict is returned for Transact to retry.
func (r *Repository[A, E]) UpdateTx(ctx context.Context, tx *Tx, id uuid.UUID, decide DecideFunc[A, E]) (Result, error) {
	stream := r.Stream(id)
	if r.agg.Serialize {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockStream, streamKey(id)); err != nil {
			return Result{}, fmt.Errorf("lock %s: %w", stream, err)
		}
	}
	l, err := r.Load(ctx, tx, id)
	if err != nil {
		return Result{}, err
	}
	d, err := decide(ctx, tx, l.State)
	if err != nil {
		return Result{}, err
	}
	res := Result{AppendResult: AppendResult{Version: l.Version}, Refusal: d.Refusal}
	if len(d.Events) == 0 {
		return res, nil
	}
	events := make([]Event, len(d.Events))
	for i, e := range d.Events {
		events[i] = e
	}
	if res.AppendResult, err = tx.Append(ctx, stream, l.Version, events...); err != nil {
		return Result{}, err
	}
	// In the append's transaction, so a snapshot commits with the events
	// it covers or not at all.
	if err := r.snapshotAfter(ctx, tx, l, d.Events, res.Version); err != nil {
		return Result{}, err
	}
	return res, nil
}

// Update is UpdateTx in a unit of work of its own, retried on conflict. It
// returns the decision's refusal, if any, as its error once the events have
// committed.
func (r *Repository[A, E]) Update(ctx context.Context, id uuid.UUID, decide DecideFunc[A, E]) (AppendResult, error) {
	var res Result
	err := r.store.Transact(ctx, func(ctx context.Context, tx *Tx) error {
		var err error
		res, err = r.UpdateTx(ctx, tx, id, decide)
		return err
	})
	if err != nil {
		return AppendResult{}, err
	}
	return res.AppendResult, res.Refusal
}

// UpdateAlone is Update for a decision that writes nothing but its events:
// it loads id with plain reads, lets decide choose, and appends in one
// statement of its own (Store.Append), retrying on a conflict like
// Transact. No transaction stays open between statements, so the decision
// holds a transaction id, and with it every reader's horizon, only while
// its one INSERT runs, where Update holds it from that INSERT until the
// client's COMMIT arrives: on a busy machine, the time the process takes
// to be scheduled again. An aggregate that serialises its decisions or
// keeps snapshots takes the Update path, which they need.
func (r *Repository[A, E]) UpdateAlone(ctx context.Context, id uuid.UUID, decide func(a A) (Decision[E], error)) (AppendResult, error) {
	if r.agg.Serialize || (r.agg.Snapshots != nil && r.agg.Snapshots.Every > 0) {
		return r.Update(ctx, id, func(_ context.Context, _ *Tx, a A) (Decision[E], error) { return decide(a) })
	}
	stream := r.Stream(id)
	var lastErr error
	for attempt := range MaxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return AppendResult{}, fmt.Errorf("after %d conflicts: %w (last: %w)", attempt, err, lastErr)
			}
		}
		l, err := r.Load(ctx, r.store.pool, id)
		if err != nil {
			return AppendResult{}, err
		}
		d, err := decide(l.State)
		if err != nil {
			return AppendResult{}, err
		}
		res := AppendResult{Version: l.Version}
		if len(d.Events) > 0 {
			events := make([]Event, len(d.Events))
			for i, e := range d.Events {
				events[i] = e
			}
			res, err = r.store.Append(ctx, stream, l.Version, events...)
			if err != nil {
				if !retryable(err) {
					return AppendResult{}, err
				}
				lastErr = err
				continue
			}
		}
		return res, d.Refusal
	}
	return AppendResult{}, lastErr
}

// snapshotAfter stores a snapshot at version, the stream's version once
// decided is appended, when the stream has grown by Snapshots.Every events
// or more since the snapshot l started from. The state is folded afresh:
// decisions are free to fold into l.State or not.
func (r *Repository[A, E]) snapshotAfter(ctx context.Context, tx *Tx, l Loaded[A, E], decided []E, version int64) error {
	snap := r.agg.Snapshots
	if snap == nil || snap.Every <= 0 || version-l.SnapshotVersion < snap.Every {
		return nil
	}
	stream := r.Stream(l.id)
	a, err := r.fold(l, decided...)
	if err != nil {
		return fmt.Errorf("snapshot %s at version %d: %w", stream, version, err)
	}
	state, err := snap.Encode(a)
	if err != nil {
		return fmt.Errorf("encode snapshot of %s: %w", stream, err)
	}
	if _, err := tx.Exec(ctx, upsertSnapshotSQL, string(stream.Type), stream.ID, version, snap.Schema, state,
		r.store.now().UTC().Truncate(time.Microsecond)); err != nil {
		return fmt.Errorf("store snapshot of %s: %w", stream, err)
	}
	return nil
}

// upsertSnapshotSQL stores a snapshot unless the stored one is as new or
// newer, so that a slow transaction never replaces a later snapshot with its
// own. Two transactions cannot both append one version (the events' unique
// key), so they never store two different states as the same version.
const upsertSnapshotSQL = `INSERT INTO snapshots (stream_type, stream_id, version, schema, state, taken_at)
	VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (stream_type, stream_id) DO UPDATE
	SET version = excluded.version, schema = excluded.schema, state = excluded.state, taken_at = excluded.taken_at
	WHERE snapshots.version < excluded.version`

// readSnapshot returns the stored snapshot of stream in schema, or a nil
// state when there is none.
func readSnapshot(ctx context.Context, q Querier, stream Stream, schema int) (int64, []byte, error) {
	rows, err := q.Query(ctx, `SELECT version, state FROM snapshots WHERE stream_type = $1 AND stream_id = $2 AND schema = $3`,
		string(stream.Type), stream.ID, schema)
	if err != nil {
		return 0, nil, fmt.Errorf("read snapshot of %s: %w", stream, err)
	}
	type row struct {
		Version int64
		State   []byte
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return 0, nil, fmt.Errorf("read snapshot of %s: %w", stream, err)
	}
	if len(got) == 0 {
		return 0, nil, nil
	}
	return got[0].Version, got[0].State, nil
}

// lockStream is the advisory-lock namespace (first key of the two-key form)
// of Aggregate.Serialize; the second key is a hash of the stream id.
const lockStream int32 = 0x64700010

// streamKey hashes a stream id into the second advisory-lock key; two
// streams that collide only queue behind each other now and then.
func streamKey(id uuid.UUID) int32 {
	h := fnv.New32a()
	h.Write(id[:])
	return int32(h.Sum32())
}
