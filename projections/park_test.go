package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// decoding is a projector that needs what the streams projector does not: a
// payload it can decode and the event's metadata. Until fixed is set it
// fails on events that lack either, as a projector release with a bug would;
// once fixed, it projects them with n = -1.
type decoding struct {
	store *eventstore.Store
	fixed atomic.Bool
}

func (*decoding) Name() string     { return "decoding" }
func (*decoding) Tables() []string { return []string{"decoded"} }
func (*decoding) Schema(t projections.TableNames) string {
	return fmt.Sprintf(`CREATE TABLE %s (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		event_id uuid NOT NULL UNIQUE, n bigint NOT NULL, actor text NOT NULL)`, t.Of("decoded"))
}

func (p *decoding) Apply(ctx context.Context, tx pgx.Tx, t projections.TableNames, batch []eventstore.Record) error {
	ids, ns, actors := make([]uuid.UUID, len(batch)), make([]int64, len(batch)), make([]string, len(batch))
	for i, r := range batch {
		ids[i], ns[i] = r.EventID, -1
		e, err := p.store.Decode(r)
		switch {
		case err == nil:
			ns[i] = int64(e.(ticked).N)
		case !p.fixed.Load():
			return err
		}
		if r.MetadataErr != nil && !p.fixed.Load() {
			return fmt.Errorf("need the actor: %w", r.MetadataErr)
		}
		actors[i] = r.Metadata.Actor
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+t.Of("decoded")+` (event_id, n, actor)
		SELECT e, n, a FROM unnest($1::uuid[], $2::bigint[], $3::text[]) WITH ORDINALITY AS u(e, n, a, ord) ORDER BY ord`,
		ids, ns, actors)
	return err
}

// insertRaw writes one event past the store, as a superuser or a restored
// dump could: version 1 of a new stream, with the given payload and metadata.
// With dropCheck the metadata check of migration 00009 is dropped for the
// insert and put back (NOT VALID) after it, in the same transaction.
func insertRaw(t *testing.T, pool *pgxpool.Pool, payload, metadata string, dropCheck bool) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id := uuid.New()
	err := pgx.BeginFunc(ctx, testdb.Owner(t, pool), func(tx pgx.Tx) error {
		if dropCheck {
			if _, err := tx.Exec(ctx, `ALTER TABLE events DROP CONSTRAINT events_metadata_shape`); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
			schema_version, payload, metadata, recorded_at, prev_hash, hash)
			VALUES ('account', $1, 1, $2, 'TestTicked', 1, $3, $4, now(), decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))`,
			uuid.New(), id, payload, metadata); err != nil {
			return err
		}
		if dropCheck {
			// The constraint as migration 00009 defines it; only its name matters here.
			_, err := tx.Exec(ctx, `ALTER TABLE events ADD CONSTRAINT events_metadata_shape
				CHECK (coalesce(jsonb_typeof(metadata -> 'actor'), 'string') = 'string') NOT VALID`)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("insert raw event: %v", err)
	}
	return id
}

func statusOf(t *testing.T, m *projections.Manager, name string) projections.Status {
	t.Helper()
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status of %s", name)
	return projections.Status{}
}

func decodedIDs(t *testing.T, pool *pgxpool.Pool) []uuid.UUID {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id FROM decoded ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func gauge(t *testing.T, reg *prometheus.Registry, name, projection string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "projection" && l.GetValue() == projection {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{projection=%q}", name, projection)
	return 0
}

func TestPoisonEventsAreParkedAndRetried(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()
	ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{Actor: "tester"})

	// The check of migration 00009 refuses malformed metadata from any writer
	// that does not drop it first.
	var pgErr *pgconn.PgError
	_, err := pool.Exec(context.Background(), `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
		schema_version, payload, metadata, recorded_at, prev_hash, hash)
		VALUES ('account', gen_random_uuid(), 1, gen_random_uuid(), 'TestTicked', 1, '{}', '{"actor":5}', now(),
		        decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))`)
	if !errors.As(err, &pgErr) || pgErr.ConstraintName != "events_metadata_shape" {
		t.Fatalf("malformed metadata inserted: %v", err)
	}

	s := newStream()
	appendN := func(n int) {
		t.Helper()
		evs := make([]eventstore.Event, n)
		for i := range evs {
			evs[i] = ticked{N: i}
		}
		v, err := store.ReadStream(context.Background(), s, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, s, int64(len(v)), evs...); err != nil {
			t.Fatal(err)
		}
	}
	appendN(10)
	undecodable := insertRaw(t, pool, `{"n":"not a number"}`, `{"actor":"raw"}`, false)
	appendN(5)
	badMetadata := insertRaw(t, pool, `{"n":1}`, `{"actor":5}`, true)
	appendN(5)

	p := &decoding{store: store}
	reg := prometheus.NewRegistry()
	m, err := projections.NewManager(store, []projections.Projector{projections.Streams{}, p},
		opts(projections.WithBatchSize(4), projections.WithRegisterer(reg), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	running(t, m.Start)

	eventually(t, "both poison events parked and the rest applied", func() bool {
		st := statusOf(t, m, "decoding")
		return st.Parked == 2 && st.Behind == 0
	})
	// The streams projector needs neither payload nor metadata: it passes both.
	eventually(t, "streams caught up", func() bool { return statusOf(t, m, "streams").Behind == 0 })
	if st := statusOf(t, m, "streams"); st.Parked != 0 || st.EventsApplied != 22 {
		t.Errorf("streams: %d parked, %d applied; want 0 and 22", st.Parked, st.EventsApplied)
	}
	st := statusOf(t, m, "decoding")
	if st.EventsApplied != 20 || !strings.Contains(st.LastParkedError, "need the actor") {
		t.Errorf("decoding: %d applied, last error %q", st.EventsApplied, st.LastParkedError)
	}

	// Every good event exactly once, in commit order, around the poison.
	good := slices.DeleteFunc(committedIDs(t, pool, 0), func(id uuid.UUID) bool { return id == undecodable || id == badMetadata })
	if got := decodedIDs(t, pool); !slices.Equal(got, good) {
		t.Fatalf("decoded %d events %v, want the %d good ones in commit order %v", len(got), got, len(good), good)
	}

	parked, err := m.Parked(context.Background(), "decoding", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 2 || parked[0].EventID != undecodable || parked[1].EventID != badMetadata {
		t.Fatalf("parked %+v, want the undecodable event, then the one with bad metadata", parked)
	}
	for _, pe := range parked {
		if pe.Attempts != 3 || pe.Version != 1 || pe.Stream.Type != eventstore.StreamAccount || pe.Error == "" {
			t.Errorf("parked event %+v", pe)
		}
	}
	if !strings.Contains(parked[0].Error, "decode") || !strings.Contains(parked[1].Error, "metadata") {
		t.Errorf("errors %q, %q", parked[0].Error, parked[1].Error)
	}
	if g := gauge(t, reg, "dashtam_projection_parked_events", "decoding"); g != 2 {
		t.Errorf("parked gauge of decoding = %v, want 2", g)
	}
	if g := gauge(t, reg, "dashtam_projection_parked_events", "streams"); g != 0 {
		t.Errorf("parked gauge of streams = %v, want 0", g)
	}

	// Parked events do not hold the projector back.
	appendN(3)
	eventually(t, "events after the parked ones", func() bool { return len(decodedIDs(t, pool)) == 23 })

	// Retrying before the fix changes nothing but the attempts.
	res, err := m.Retry(context.Background(), "decoding")
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Failed != 2 || len(res.StillParked) != 2 || res.StillParked[0].Attempts != 4 {
		t.Fatalf("retry before the fix: %+v", res)
	}

	p.fixed.Store(true)
	res, err = m.Retry(context.Background(), "decoding")
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 2 || res.Failed != 0 || len(res.StillParked) != 0 {
		t.Fatalf("retry after the fix: %+v", res)
	}
	if st := statusOf(t, m, "decoding"); st.Parked != 0 || st.LastParkedError != "" || st.EventsApplied != 25 {
		t.Errorf("after retry: %+v", st)
	}
	got := decodedIDs(t, pool)
	if len(got) != 25 || got[23] != undecodable || got[24] != badMetadata {
		t.Errorf("after retry the read model holds %d events ending %v", len(got), got[len(got)-2:])
	}
	if g := gauge(t, reg, "dashtam_projection_parked_events", "decoding"); g != 0 {
		t.Errorf("parked gauge after retry = %v", g)
	}
}

// flaky fails its first batches that hold the marked event with transient
// errors of several kinds, more often than an event is retried before it is
// parked; none of them may park it.
type flaky struct {
	*seen
	marked   uuid.UUID
	failures atomic.Int32
}

func (p *flaky) Apply(ctx context.Context, tx pgx.Tx, t projections.TableNames, batch []eventstore.Record) error {
	if slices.ContainsFunc(batch, func(r eventstore.Record) bool { return r.EventID == p.marked }) {
		switch p.failures.Add(1) {
		case 1, 2:
			_, err := tx.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$`)
			return err
		case 3:
			_, err := tx.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = 'deadlock_detected'; END $$`)
			return err
		case 4:
			// The connection dies under the batch.
			_, err := tx.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
			return err
		}
	}
	return p.seen.Apply(ctx, tx, t, batch)
}

func TestTransientFailuresNeverPark(t *testing.T) {
	t.Parallel()
	store := mustStore(t)
	pool := store.Pool()
	s := newStream()
	mustAppend(t, store, s, 0, 5)
	recs, err := store.ReadStream(context.Background(), s, 2)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, store, s, 5, 5)
	p := &flaky{seen: newSeen("seen"), marked: recs[0].EventID}
	m, err := projections.NewManager(store, []projections.Projector{p}, opts(projections.WithBatchSize(4), ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	running(t, m.Start)
	eventually(t, "all 10 events", func() bool { return countRows(t, pool, "seen") == 10 })
	checkDeliveries(t, readSeen(t, pool, "seen"), committedIDs(t, pool, 0))
	if n := p.failures.Load(); n < 5 {
		t.Fatalf("%d calls with the marked event", n)
	}
	if st := statusOf(t, m, "seen"); st.Parked != 0 {
		t.Fatalf("transient failures parked %d events: %s", st.Parked, st.LastParkedError)
	}
}
