package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
)

// Deliver is the worker of DeliveryJob: one attempt. It reads the
// delivery with one autocommit statement, signs and sends it with no
// transaction open, then records the attempt and decides what follows in
// one short transaction: done on a 2xx; otherwise the next attempt after
// the schedule's delay (or the receiver's Retry-After, if longer), as a
// snoozed job; failed after the last attempt; and the endpoint disabled,
// its owner mailed, when it answered 410 Gone or has failed every attempt
// for longer than the disable window.
func (h *Handler) Deliver(ctx context.Context, j DeliveryJob) error {
	s, err := readForSend(ctx, h.pool, j.DeliveryID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // its endpoint was deleted, and the delivery with it
	}
	if err != nil {
		return fmt.Errorf("read webhook delivery %s: %w", j.DeliveryID, err)
	}
	if s.Status != DeliveryPending {
		return nil // a run of this job that was not the last one
	}
	if s.EndpointStatus != StatusEnabled {
		return h.cancel(ctx, s)
	}
	now := h.clock.Now()
	secrets, err := h.secrets(s, now)
	if err != nil {
		return err
	}
	res := h.sender.Send(ctx, Send{URL: s.URL, ID: s.EventID.String(), Timestamp: now, Body: s.Payload, Secrets: secrets})
	if ctx.Err() != nil && !res.Succeeded() {
		// Shutting down: the attempt did not happen as far as anyone can
		// tell; the job runs again elsewhere.
		return ctx.Err()
	}
	return h.record(context.WithoutCancel(ctx), s, res, now)
}

// secrets opens the endpoint's signing keys, newest first: the current one,
// and the one a rotation replaced while its overlap lasts.
func (h *Handler) secrets(s sendRow, now time.Time) ([][]byte, error) {
	key, err := h.vault.Open(s.EndpointID, s.SecretBlob)
	if err != nil {
		return nil, fmt.Errorf("open webhook secret of %s: %w", s.EndpointID, err)
	}
	out := [][]byte{key}
	if s.PreviousBlob != nil && s.PreviousUntil != nil && now.Before(*s.PreviousUntil) {
		prev, err := h.vault.Open(s.EndpointID, s.PreviousBlob)
		if err != nil {
			return nil, fmt.Errorf("open previous webhook secret of %s: %w", s.EndpointID, err)
		}
		out = append(out, prev)
	}
	return out, nil
}

// cancel marks a delivery of a disabled endpoint cancelled.
func (h *Handler) cancel(ctx context.Context, s sendRow) error {
	_, err := h.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL, completed_at = $2
		WHERE id = $1 AND status = 'pending'`, s.DeliveryID, h.clock.Now())
	if err != nil {
		return fmt.Errorf("cancel webhook delivery %s: %w", s.DeliveryID, err)
	}
	return nil
}

// recordSuccessSQL records a successful attempt in one autocommit
// statement: the delivery moves only if it is still pending at the
// attempt count it was read with (else another run of the job recorded
// it, and nothing changes), the attempt is stored, and the endpoint is no
// longer failing. Most attempts succeed, so this is the path that sets
// the delivery rate: one round trip instead of a transaction's six.
const recordSuccessSQL = `WITH d AS (
		UPDATE webhook_deliveries SET status = 'succeeded', attempts = $2 + 1, next_attempt_at = NULL,
			last_status_code = $3, last_error = NULL, completed_at = $4
		WHERE id = $1 AND status = 'pending' AND attempts = $2
		RETURNING id, endpoint_id),
	a AS (
		INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, error, latency_ms)
		SELECT id, $2 + 1, $4, $3, NULL, $5 FROM d),
	e AS (
		UPDATE webhook_endpoints SET failing_since = NULL
		WHERE id = (SELECT endpoint_id FROM d) AND failing_since IS NOT NULL)
	SELECT count(*) FROM d`

// record stores the attempt and decides what follows; see Deliver. It
// returns a *commands.JobSnoozeError when another attempt is due later.
func (h *Handler) record(ctx context.Context, s sendRow, res Result, now time.Time) error {
	if res.Succeeded() {
		var n int
		if err := h.pool.QueryRow(ctx, recordSuccessSQL, s.DeliveryID, s.Attempts, res.StatusCode, now,
			res.Latency.Milliseconds()).Scan(&n); err != nil {
			return fmt.Errorf("record webhook delivery %s: %w", s.DeliveryID, err)
		}
		return nil
	}
	var next time.Duration
	err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		next = 0
		var status string
		var attempts int
		err := tx.QueryRow(ctx, `SELECT status, attempts FROM webhook_deliveries WHERE id = $1 FOR UPDATE`, s.DeliveryID).
			Scan(&status, &attempts)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock webhook delivery %s: %w", s.DeliveryID, err)
		}
		if DeliveryStatus(status) != DeliveryPending || attempts != s.Attempts {
			return nil // another run of the job recorded this attempt
		}
		attempt := attempts + 1
		var code *int
		if res.StatusCode != 0 {
			code = &res.StatusCode
		}
		var errText *string
		if res.Error != "" {
			errText = &res.Error
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, error, latency_ms)
			VALUES ($1, $2, $3, $4, $5, $6)`, s.DeliveryID, attempt, now, code, errText, res.Latency.Milliseconds()); err != nil {
			return fmt.Errorf("record webhook attempt: %w", err)
		}
		if res.Succeeded() {
			if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'succeeded', attempts = $2, next_attempt_at = NULL,
				last_status_code = $3, last_error = NULL, completed_at = $4 WHERE id = $1`, s.DeliveryID, attempt, code, now); err != nil {
				return fmt.Errorf("record webhook delivery: %w", err)
			}
			_, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, s.EndpointID)
			return err
		}
		var failingSince time.Time
		if err := tx.QueryRow(ctx, `UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2)
			WHERE id = $1 RETURNING failing_since`, s.EndpointID, now).Scan(&failingSince); err != nil {
			return fmt.Errorf("record webhook endpoint failure: %w", err)
		}
		reason := ""
		switch {
		case res.StatusCode == 410:
			reason = DisabledGone
		case now.Sub(failingSince) >= h.disableAfter:
			reason = DisabledFailing
		}
		final := reason != "" || s.EventType == fanout.TypeWebhookTest || attempt >= h.MaxAttempts()
		if !final {
			next = max(h.jitter(h.schedule[attempt-1]), min(res.RetryAfter, maxRetryAfter))
		}
		var nextAt *time.Time
		if !final {
			t := now.Add(next)
			nextAt = &t
		}
		newStatus, completed := DeliveryPending, (*time.Time)(nil)
		if final {
			newStatus, completed = DeliveryFailed, &now
		}
		if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4,
			last_status_code = $5, last_error = $6, completed_at = $7 WHERE id = $1`,
			s.DeliveryID, string(newStatus), attempt, nextAt, code, errText, completed); err != nil {
			return fmt.Errorf("record webhook delivery: %w", err)
		}
		if reason != "" {
			return h.disable(ctx, tx, s, reason, now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if next > 0 {
		return &commands.JobSnoozeError{Delay: next}
	}
	return nil
}

// disable turns an endpoint off for reason and mails its owner, once: an
// endpoint already disabled is left as it is.
func (h *Handler) disable(ctx context.Context, tx pgx.Tx, s sendRow, reason string, now time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2, disabled_at = $3, updated_at = $3
		WHERE id = $1 AND status = 'enabled'`, s.EndpointID, reason, now)
	if err != nil {
		return fmt.Errorf("disable webhook endpoint %s: %w", s.EndpointID, err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	h.log.Warn("webhook endpoint disabled", "endpoint", s.EndpointID, "reason", reason)
	host := ""
	if u, err := url.Parse(s.URL); err == nil {
		host = u.Hostname()
	}
	text := "it answered 410 Gone, which asks senders to stop"
	if reason == DisabledFailing {
		text = fmt.Sprintf("every delivery to it has failed for more than %d days", int(h.disableAfter.Hours()/24))
	}
	return h.jobs.EnqueueTx(ctx, tx, commands.UserMail{UserID: s.UserID, Template: commands.MailWebhookDisabled,
		Params: map[string]string{"host": host, "webhook_id": s.EndpointID.String(), "reason": reason, "reason_text": text}},
		commands.JobOptions{})
}
