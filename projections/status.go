package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/dashtam/dashtam/eventstore"
)

// Status describes how far one projection is behind the log, for
// `dashtam projections status`, the /ready check and the metrics.
type Status struct {
	Name string
	// Position is the checkpoint: the last event applied, in commit order.
	Position      eventstore.Position
	EventsApplied int64
	// Behind counts committed events after the checkpoint, including any an
	// open transaction still holds back (capped at maxBehindCount).
	Behind int64
	// Lag is the age of the oldest event not applied yet; zero when caught
	// up. Unlike CheckpointAge it does not grow while the log is quiet.
	Lag time.Duration
	// CheckpointAge is the time since the checkpoint last moved.
	CheckpointAge time.Duration
	UpdatedAt     time.Time
	// RebuiltAt is when the live tables were last swapped in by a rebuild.
	RebuiltAt *time.Time
	// ConsumerPresent reports whether some process holds the consumer lock.
	ConsumerPresent bool
	// SchemaStale reports live tables created from different DDL than this
	// binary's projector declares: they need a rebuild.
	SchemaStale bool
	// Parked counts the events the projector parked because it could not
	// apply them; its read model lacks them until they are retried.
	Parked int64
	// LastParkedError is the error of the most recently parked or retried
	// event, "" when none is parked.
	LastParkedError string
}

// maxBehindCount caps the count behind Status.Behind so that a status call on
// a projection far behind stays cheap; the exact figure matters little then.
const maxBehindCount = 10_000_000

const statusSQL = `
WITH c AS (
    SELECT n.name, n.key,
           coalesce(cp.transaction_id, '0'::xid8) AS txid,
           coalesce(cp.global_position, 0) AS pos,
           coalesce(cp.events_applied, 0) AS applied,
           coalesce(cp.schema_hash, '') AS schema_hash,
           coalesce(cp.updated_at, now()) AS updated_at,
           cp.rebuilt_at,
           n.ord
      FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS n(name, key, ord)
      LEFT JOIN projection_checkpoints cp ON cp.name = n.name
)
SELECT c.name, c.txid, c.pos, c.applied, c.schema_hash, c.updated_at, c.rebuilt_at,
       extract(epoch FROM now() - c.updated_at)::float8,
       (SELECT count(*) FROM (SELECT 1 FROM events e
           WHERE (e.transaction_id, e.global_position) > (c.txid, c.pos) LIMIT $3) b),
       (SELECT extract(epoch FROM now() - e.recorded_at)::float8 FROM events e
           WHERE (e.transaction_id, e.global_position) > (c.txid, c.pos)
           ORDER BY e.transaction_id, e.global_position LIMIT 1),
       EXISTS (SELECT 1 FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid = $4::int::oid AND l.objid = c.key::oid),
       (SELECT count(*) FROM projection_parked_events p WHERE p.projection = c.name),
       coalesce((SELECT p.error FROM projection_parked_events p WHERE p.projection = c.name
           ORDER BY p.last_attempt_at DESC, p.global_position DESC LIMIT 1), '')
  FROM c
 ORDER BY c.ord`

// Status reports every projector's position and lag, in the manager's order,
// counting up to ten million events behind: for operators, who want the figure.
func (m *Manager) Status(ctx context.Context) ([]Status, error) {
	return m.StatusWithin(ctx, maxBehindCount)
}

// StatusWithin is Status counting at most maxBehind events behind (Behind ==
// maxBehind then means "at least that many"), so that frequent callers such
// as readiness probes and metric scrapes stay cheap on a projection far
// behind.
func (m *Manager) StatusWithin(ctx context.Context, maxBehind int64) ([]Status, error) {
	names := make([]string, len(m.projectors))
	keys := make([]int32, len(m.projectors))
	for i, p := range m.projectors {
		names[i], keys[i] = p.Name(), nameKey(p.Name())
	}
	rows, err := m.store.Pool().Query(ctx, statusSQL, names, keys, maxBehind, lockConsumer)
	if err != nil {
		return nil, fmt.Errorf("read projection status: %w", err)
	}
	defer rows.Close()
	out := make([]Status, 0, len(names))
	for rows.Next() {
		var (
			s                  Status
			txid               uint64
			hash               string
			ageSecs            float64
			lagSecs            *float64
			checkpointPosition int64
		)
		if err := rows.Scan(&s.Name, &txid, &checkpointPosition, &s.EventsApplied, &hash, &s.UpdatedAt, &s.RebuiltAt,
			&ageSecs, &s.Behind, &lagSecs, &s.ConsumerPresent, &s.Parked, &s.LastParkedError); err != nil {
			return nil, fmt.Errorf("read projection status: %w", err)
		}
		s.Position = eventstore.Position{TransactionID: txid, GlobalPosition: checkpointPosition}
		s.CheckpointAge = secs(ageSecs)
		if lagSecs != nil {
			s.Lag = secs(*lagSecs)
		}
		if p, ok := m.byName[s.Name]; ok && hash != "" {
			s.SchemaStale = hash != schemaHash(p)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read projection status: %w", err)
	}
	return out, nil
}

func secs(f float64) time.Duration {
	if f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
