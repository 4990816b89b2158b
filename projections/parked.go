package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
)

// ParkedEvent is an event a projector could not decode, upcast or apply,
// parked so that the projector moved past it (migration 00009).
type ParkedEvent struct {
	Projection    string
	Position      eventstore.Position
	EventID       uuid.UUID
	Stream        eventstore.Stream
	Version       int64
	EventType     string
	Error         string
	Attempts      int
	ParkedAt      time.Time
	LastAttemptAt time.Time
}

const parkedColumns = `projection, transaction_id, global_position, event_id, stream_type, stream_id, version,
	event_type, error, attempts, parked_at, last_attempt_at`

func scanParked(row pgx.CollectableRow) (ParkedEvent, error) {
	var (
		pe  ParkedEvent
		typ string
	)
	err := row.Scan(&pe.Projection, &pe.Position.TransactionID, &pe.Position.GlobalPosition, &pe.EventID, &typ,
		&pe.Stream.ID, &pe.Version, &pe.EventType, &pe.Error, &pe.Attempts, &pe.ParkedAt, &pe.LastAttemptAt)
	pe.Stream.Type = eventstore.StreamType(typ)
	return pe, err
}

// Parked lists up to limit (positive) events parked by the projector called
// name, in the commit order the projector met them.
func (m *Manager) Parked(ctx context.Context, name string, limit int) ([]ParkedEvent, error) {
	if _, err := m.Projector(name); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("list parked events of %s: limit %d is not positive", name, limit)
	}
	return m.parkedAfter(ctx, name, eventstore.Position{}, limit)
}

func (m *Manager) parkedAfter(ctx context.Context, name string, after eventstore.Position, limit int) ([]ParkedEvent, error) {
	rows, err := m.store.Pool().Query(ctx, `SELECT `+parkedColumns+` FROM projection_parked_events
		WHERE projection = $1 AND (transaction_id, global_position) > ($2::xid8, $3)
		ORDER BY transaction_id, global_position LIMIT $4`, name, after.TransactionID, after.GlobalPosition, limit)
	if err != nil {
		return nil, fmt.Errorf("list parked events of %s: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, scanParked)
	if err != nil {
		return nil, fmt.Errorf("list parked events of %s: %w", name, err)
	}
	return out, nil
}

// RetryResult says what Retry did with a projector's parked events.
type RetryResult struct {
	// Applied counts the parked events that applied this time and are no
	// longer parked.
	Applied int
	// Failed counts the parked events that failed again; they stay parked
	// with their new error and one more attempt.
	Failed int
	// StillParked are the first maxRetryFailuresListed of them, so that a
	// retry of a projection that parked half the log stays small.
	StillParked []ParkedEvent
}

// maxRetryFailuresListed bounds RetryResult.StillParked.
const maxRetryFailuresListed = 100

// retryPage is how many parked events Retry reads at a time.
const retryPage = 100

// Retry applies the events parked by the projector called name to its live
// tables again, one short transaction each, in commit order: typically after
// a release fixed the projector. An event that applies is unparked and
// counted as applied; one that fails again stays parked with its new error
// and one more attempt. A transient failure (lost connection, cancellation)
// stops the retry and is returned; what was done so far stays done.
//
// A parked event is applied after events that followed it in the log, so
// this suits projectors whose rows do not depend on the order of a stream's
// events (as Streams does not); for the others, rebuild instead.
func (m *Manager) Retry(ctx context.Context, name string) (RetryResult, error) {
	p, err := m.Projector(name)
	if err != nil {
		return RetryResult{}, err
	}
	var (
		res   RetryResult
		after eventstore.Position
	)
	for {
		page, err := m.parkedAfter(ctx, name, after, retryPage)
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			return res, nil
		}
		after = page[len(page)-1].Position
		positions := make([]int64, len(page))
		for i, pe := range page {
			positions[i] = pe.Position.GlobalPosition
		}
		recs, err := eventstore.ReadPositions(ctx, m.store.Pool(), positions)
		if err != nil {
			return res, fmt.Errorf("retry parked events of %s: %w", name, err)
		}
		byPosition := make(map[int64]eventstore.Record, len(recs))
		for _, r := range recs {
			byPosition[r.GlobalPosition] = r
		}
		for _, pe := range page {
			r, ok := byPosition[pe.Position.GlobalPosition]
			var applyErr error
			if !ok {
				// Only a hand-edited log loses an event; say so instead of applying nothing.
				applyErr = errors.New("the event is no longer in the log")
			}
			still, applied, err := m.retryOne(ctx, p, pe, r, applyErr)
			if err != nil {
				return res, err
			}
			switch {
			case applied:
				res.Applied++
			case still != nil:
				res.Failed++
				if len(res.StillParked) < maxRetryFailuresListed {
					res.StillParked = append(res.StillParked, *still)
				}
			}
		}
	}
}

// retryOne applies one parked event in its own transaction under the live
// checkpoint's row lock, which serialises it with the live consumer's
// batches and a rebuild's swap. It returns the event's new parked row when it
// failed again, applied when it no longer is parked, and neither when
// someone else retried or replaced it meanwhile.
func (m *Manager) retryOne(ctx context.Context, p Projector, pe ParkedEvent, r eventstore.Record, missing error) (still *ParkedEvent, applied bool, err error) {
	name := p.Name()
	tx, err := m.store.Pool().Begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("retry parked event of %s: %w", name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := lockCheckpoint(ctx, tx, name); err != nil {
		return nil, false, err
	}
	var attempts int
	err = tx.QueryRow(ctx, `SELECT attempts FROM projection_parked_events
		WHERE projection = $1 AND global_position = $2 FOR UPDATE`, name, pe.Position.GlobalPosition).Scan(&attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("retry parked event of %s: %w", name, err)
	}
	applyErr := missing
	if applyErr == nil {
		if _, err := tx.Exec(ctx, `SAVEPOINT projection_retry`); err != nil {
			return nil, false, fmt.Errorf("retry parked event of %s: %w", name, err)
		}
		applyErr = safeApply(ctx, tx, p, LiveTables(p), []eventstore.Record{r})
		if applyErr != nil && isTransient(ctx, tx, applyErr) {
			return nil, false, fmt.Errorf("retry event %s of %s: %w", pe.EventID, name, applyErr)
		}
	}
	if applyErr == nil {
		if _, err := tx.Exec(ctx, `DELETE FROM projection_parked_events WHERE projection = $1 AND global_position = $2`,
			name, pe.Position.GlobalPosition); err != nil {
			return nil, false, fmt.Errorf("unpark event %s of %s: %w", pe.EventID, name, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET events_applied = events_applied + 1, updated_at = now()
			WHERE name = $1`, name); err != nil {
			return nil, false, fmt.Errorf("count retried event of %s: %w", name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, false, fmt.Errorf("commit retried event of %s: %w", name, err)
		}
		return nil, true, nil
	}
	if missing == nil {
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT projection_retry`); err != nil {
			return nil, false, fmt.Errorf("retry parked event of %s: %w", name, err)
		}
	}
	rows, err := tx.Query(ctx, `UPDATE projection_parked_events
		SET attempts = attempts + 1, error = $3, last_attempt_at = now()
		WHERE projection = $1 AND global_position = $2 RETURNING `+parkedColumns,
		name, pe.Position.GlobalPosition, parkedErrorText(applyErr))
	if err != nil {
		return nil, false, fmt.Errorf("record failed retry of %s: %w", name, err)
	}
	updated, err := pgx.CollectExactlyOneRow(rows, scanParked)
	if err != nil {
		return nil, false, fmt.Errorf("record failed retry of %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, fmt.Errorf("commit failed retry of %s: %w", name, err)
	}
	return &updated, false, nil
}
