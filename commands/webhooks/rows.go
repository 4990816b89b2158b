package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// endpointRow is an endpoint row with its sealed secrets.
type endpointRow struct {
	Endpoint
	UserID         uuid.UUID
	SecretBlob     []byte
	PreviousBlob   []byte
	PreviousUntil  *time.Time
	disabledReason *string
}

const endpointColumns = `id, user_id, url, event_types, status, disabled_reason, disabled_at, failing_since,
	previous_secret_until, created_at, updated_at, secret_blob, previous_secret_blob`

func scanEndpoint(row pgx.Row) (endpointRow, error) {
	var e endpointRow
	var status string
	err := row.Scan(&e.ID, &e.UserID, &e.URL, &e.EventTypes, &status, &e.disabledReason, &e.DisabledAt, &e.FailingSince,
		&e.PreviousUntil, &e.CreatedAt, &e.UpdatedAt, &e.SecretBlob, &e.PreviousBlob)
	if err != nil {
		return endpointRow{}, err
	}
	e.Status = Status(status)
	if e.disabledReason != nil {
		e.DisabledReason = *e.disabledReason
	}
	e.PreviousSecretUntil = e.PreviousUntil
	return e, nil
}

// readEndpoint reads the user's endpoint (FOR UPDATE when lock is set, in
// a transaction). Another user's is ErrNotFound.
func readEndpoint(ctx context.Context, q querier, user, id uuid.UUID, lock bool) (endpointRow, error) {
	sql := `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE id = $1 AND user_id = $2`
	if lock {
		sql += ` FOR UPDATE`
	}
	e, err := scanEndpoint(q.QueryRow(ctx, sql, id, user))
	if errors.Is(err, pgx.ErrNoRows) {
		return endpointRow{}, ErrNotFound
	}
	if err != nil {
		return endpointRow{}, fmt.Errorf("read webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// insertEndpoint stores a new endpoint, refusing the user's
// MaxEndpoints+1-th under a per-user advisory lock, so two concurrent
// creations cannot both pass the count.
func insertEndpoint(ctx context.Context, tx pgx.Tx, e endpointRow, keyID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('webhook endpoints ' || $1::text, 0))`, e.UserID); err != nil {
		return fmt.Errorf("lock webhook endpoints of %s: %w", e.UserID, err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints WHERE user_id = $1`, e.UserID).Scan(&n); err != nil {
		return fmt.Errorf("count webhook endpoints: %w", err)
	}
	if n >= MaxEndpoints {
		return ErrTooManyEndpoints
	}
	_, err := tx.Exec(ctx, `INSERT INTO webhook_endpoints (id, user_id, url, event_types, status, secret_blob, secret_key_id,
			created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'enabled', $5, $6, $7, $7)`,
		e.ID, e.UserID, e.URL, e.EventTypes, e.SecretBlob, keyID, e.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert webhook endpoint: %w", err)
	}
	return nil
}

// listEndpoints returns the user's endpoints after the key, oldest first.
func listEndpoints(ctx context.Context, q querier, user uuid.UUID, after *EndpointKey, limit int) ([]Endpoint, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after == nil {
		rows, err = q.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE user_id = $1
			ORDER BY created_at, id LIMIT $2`, user, limit)
	} else {
		rows, err = q.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE user_id = $1
			AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4`, user, after.CreatedAt, after.ID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	defer rows.Close()
	out := []Endpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhook endpoints: %w", err)
		}
		out = append(out, e.Endpoint)
	}
	return out, rows.Err()
}

// deliveryColumns is the select list scanDelivery expects.
const deliveryColumns = `d.id, d.endpoint_id, d.event_id, d.event_type, d.status, d.next_attempt_at, d.created_at, d.completed_at`

func scanDelivery(row pgx.Row) (Delivery, error) {
	var d Delivery
	var status string
	if err := row.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &status, &d.NextAttemptAt, &d.CreatedAt, &d.CompletedAt); err != nil {
		return Delivery{}, err
	}
	d.Status = DeliveryStatus(status)
	return d, nil
}

// listDeliveries returns the endpoint's deliveries after the key, newest
// first, with their attempts.
func listDeliveries(ctx context.Context, q querier, endpoint uuid.UUID, after *DeliveryKey, limit int) ([]Delivery, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after == nil {
		rows, err = q.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d WHERE d.endpoint_id = $1
			ORDER BY d.created_at DESC, d.id DESC LIMIT $2`, endpoint, limit)
	} else {
		rows, err = q.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d WHERE d.endpoint_id = $1
			AND (d.created_at, d.id) < ($2, $3) ORDER BY d.created_at DESC, d.id DESC LIMIT $4`,
			endpoint, after.CreatedAt, after.ID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	if len(out) == 0 {
		return []Delivery{}, nil
	}
	ids := make([]uuid.UUID, len(out))
	index := make(map[uuid.UUID]int, len(out))
	for i, d := range out {
		ids[i], index[d.ID] = d.ID, i
		out[i].Attempts = []Attempt{}
	}
	rows, err = q.Query(ctx, `SELECT delivery_id, attempt, attempted_at, coalesce(status_code, 0), coalesce(error, ''), latency_ms
		FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt`, ids)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id uuid.UUID
			a  Attempt
			ms int
		)
		if err := rows.Scan(&id, &a.Number, &a.AttemptedAt, &a.StatusCode, &a.Error, &ms); err != nil {
			return nil, fmt.Errorf("list webhook attempts: %w", err)
		}
		a.Latency = time.Duration(ms) * time.Millisecond
		out[index[id]].Attempts = append(out[index[id]].Attempts, a)
	}
	return out, rows.Err()
}

// sendRow is what an attempt needs: the delivery and its endpoint.
type sendRow struct {
	DeliveryID     uuid.UUID
	EventID        uuid.UUID
	EventType      string
	Payload        []byte
	Status         DeliveryStatus
	Attempts       int
	EndpointID     uuid.UUID
	UserID         uuid.UUID
	URL            string
	EndpointStatus Status
	SecretBlob     []byte
	PreviousBlob   []byte
	PreviousUntil  *time.Time
}

// readForSend reads a delivery and its endpoint with one autocommit
// statement: no transaction stays open while the attempt is made.
func readForSend(ctx context.Context, q querier, id uuid.UUID) (sendRow, error) {
	var s sendRow
	var status, estatus string
	err := q.QueryRow(ctx, `SELECT d.id, d.event_id, d.event_type, d.payload, d.status, d.attempts,
			e.id, e.user_id, e.url, e.status, e.secret_blob, e.previous_secret_blob, e.previous_secret_until
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
		WHERE d.id = $1`, id).Scan(&s.DeliveryID, &s.EventID, &s.EventType, &s.Payload, &status, &s.Attempts,
		&s.EndpointID, &s.UserID, &s.URL, &estatus, &s.SecretBlob, &s.PreviousBlob, &s.PreviousUntil)
	if err != nil {
		return sendRow{}, err
	}
	s.Status, s.EndpointStatus = DeliveryStatus(status), Status(estatus)
	return s, nil
}
