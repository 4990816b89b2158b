package projections

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dashtam/dashtam/eventstore"
)

// parkAfter is how many times an event must fail deterministically, in
// separate steps with the runner's backoff in between, before it is parked.
const parkAfter = 3

// maxParkedErrorBytes bounds the error text kept with a parked event.
const maxParkedErrorBytes = 2000

// isolate runs when a batch failed deterministically: in a new transaction it
// applies the batch again in halves, each under a savepoint, down to the
// single events that fail. Good events are applied exactly once and in order
// (a failed half is rolled back before its own halves are tried, left before
// right); a failing event is parked once it has failed parkAfter times, and
// otherwise ends the step there, committing what came before it.
func (c *consumer) isolate(ctx context.Context, recs []eventstore.Record) (batchResult, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return batchResult{}, fmt.Errorf("begin isolating batch of %s: %w", c.checkpoint, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	pos, err := lockCheckpoint(ctx, tx, c.checkpoint)
	if err != nil {
		return batchResult{}, err
	}
	if pos != c.pos {
		c.pos = pos
		return batchResult{more: true}, nil
	}
	iso := &isolation{c: c, tx: tx}
	if _, err := iso.run(ctx, recs); err != nil {
		return batchResult{}, err
	}
	res := batchResult{applied: iso.applied, parked: iso.parked, processed: iso.done, pending: iso.pending}
	if iso.done == 0 {
		return res, nil // nothing to commit: the first event waits for its next attempt
	}
	last := recs[iso.done-1].Position()
	if err := saveCheckpoint(ctx, tx, c.checkpoint, last, len(iso.applied)); err != nil {
		return batchResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return batchResult{}, fmt.Errorf("commit isolated batch of %s: %w", c.checkpoint, err)
	}
	c.pos = last
	for _, p := range iso.parked {
		delete(c.failures, p.Position.GlobalPosition)
	}
	return res, nil
}

// isolation is the state of one isolate call.
type isolation struct {
	c       *consumer
	tx      pgx.Tx
	applied []eventstore.Record
	parked  []ParkedEvent
	done    int // events of the batch handled so far, from its start
	pending error
}

// run applies recs under a savepoint, or, when that fails deterministically,
// each half in turn. It reports stop when an event failed without being
// parked: nothing after it may be applied in this step.
func (iso *isolation) run(ctx context.Context, recs []eventstore.Record) (stop bool, err error) {
	tx := iso.tx
	if _, err := tx.Exec(ctx, `SAVEPOINT projection_isolate`); err != nil {
		return true, fmt.Errorf("isolate batch of %s: %w", iso.c.checkpoint, err)
	}
	applyErr := safeApply(ctx, tx, iso.c.p, iso.c.tables, recs)
	if applyErr == nil {
		if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT projection_isolate`); err != nil {
			return true, fmt.Errorf("isolate batch of %s: %w", iso.c.checkpoint, err)
		}
		iso.applied = append(iso.applied, recs...)
		iso.done += len(recs)
		return false, nil
	}
	if isTransient(ctx, tx, applyErr) {
		return true, fmt.Errorf("apply %d events to %s at %v: %w", len(recs), iso.c.checkpoint, recs[0].Position(), applyErr)
	}
	if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT projection_isolate; RELEASE SAVEPOINT projection_isolate`); err != nil {
		return true, fmt.Errorf("isolate batch of %s: %w", iso.c.checkpoint, err)
	}
	if len(recs) > 1 {
		mid := len(recs) / 2
		if stop, err := iso.run(ctx, recs[:mid]); stop || err != nil {
			return stop, err
		}
		return iso.run(ctx, recs[mid:])
	}
	r := recs[0]
	failures := iso.c.failures[r.GlobalPosition] + 1
	iso.c.failures[r.GlobalPosition] = failures
	if failures < parkAfter {
		iso.pending = &EventError{Projection: iso.c.checkpoint, Record: r, Attempts: failures, Err: applyErr}
		return true, nil
	}
	pe, err := park(ctx, tx, iso.c.checkpoint, r, failures, applyErr)
	if err != nil {
		return true, err
	}
	iso.parked = append(iso.parked, pe)
	iso.done++
	iso.c.cfg.logger.Error("projection parked an event it cannot apply", "projection", iso.c.checkpoint,
		"stream", r.Stream.String(), "version", r.Version, "event_id", r.EventID, "event_type", r.EventType,
		"attempts", failures, "err", applyErr)
	return false, nil
}

// EventError is the deterministic failure of one event in one projector.
type EventError struct {
	Projection string
	Record     eventstore.Record
	Attempts   int
	Err        error
}

// Error names the event by stream and version, as operators look events up.
func (e *EventError) Error() string {
	return fmt.Sprintf("%s cannot apply event %s at %s v%d (%s), attempt %d of %d before parking: %v",
		e.Projection, e.Record.EventID, e.Record.Stream, e.Record.Version, e.Record.EventType, e.Attempts, parkAfter, e.Err)
}

// Unwrap returns the projector's error.
func (e *EventError) Unwrap() error { return e.Err }

// safeApply calls Apply, turning a panic into an error: a projector that
// panics on one odd payload must park that event, not crash every process
// that runs it, over and over.
func safeApply(ctx context.Context, tx pgx.Tx, p Projector, t TableNames, batch []eventstore.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("projector %s panicked: %v", p.Name(), v)
		}
	}()
	return p.Apply(ctx, tx, t, batch)
}

// isTransient tells failures of the environment, which are retried for as
// long as they last and never park anything, from failures an event causes,
// which recur on every attempt. Lost connections, cancellation, timeouts,
// serialization failures and deadlocks, lock timeouts, resource exhaustion,
// operator intervention and server errors are transient; so are missing
// tables, columns and privileges (classes 42 and 55): they fail every event
// alike, and parking the whole log behind a dropped table would be worse
// than stalling until someone fixes it. Data exceptions (class 22),
// constraint violations (23) and every error of the projector's own Go code
// (decoding, upcasting, validation) are the event's.
func isTransient(ctx context.Context, tx pgx.Tx, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if tx != nil && tx.Conn().IsClosed() {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "42", "53", "55", "57", "58", "F0", "XX":
			return true
		}
		return false
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.As(err, &netErr) || errors.As(err, &connectErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// parkSQL records a parked event; a second parking of the same event (after
// its checkpoint was reset) adds to its attempts.
const parkSQL = `INSERT INTO projection_parked_events AS p (projection, global_position, transaction_id, event_id,
		stream_type, stream_id, version, event_type, error, attempts)
	VALUES ($1, $2, $3::xid8, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT (projection, global_position) DO UPDATE SET error = excluded.error,
		attempts = p.attempts + excluded.attempts, last_attempt_at = now()
	RETURNING parked_at, last_attempt_at, attempts`

func park(ctx context.Context, tx pgx.Tx, checkpoint string, r eventstore.Record, attempts int, cause error) (ParkedEvent, error) {
	pe := ParkedEvent{Projection: checkpoint, Position: r.Position(), EventID: r.EventID, Stream: r.Stream,
		Version: r.Version, EventType: r.EventType, Error: parkedErrorText(cause)}
	err := tx.QueryRow(ctx, parkSQL, checkpoint, r.GlobalPosition, r.TransactionID, r.EventID, string(r.Stream.Type),
		r.Stream.ID, r.Version, r.EventType, pe.Error, attempts).Scan(&pe.ParkedAt, &pe.LastAttemptAt, &pe.Attempts)
	if err != nil {
		return ParkedEvent{}, fmt.Errorf("park event %s of %s: %w", r.EventID, checkpoint, err)
	}
	return pe, nil
}

// parkedErrorText makes an error storable as text: valid UTF-8 without NUL
// (which text columns refuse), and bounded.
func parkedErrorText(err error) string {
	s := strings.ReplaceAll(strings.ToValidUTF8(err.Error(), "\uFFFD"), "\x00", "")
	if len(s) <= maxParkedErrorBytes {
		return s
	}
	cut := maxParkedErrorBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
