package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
)

// secretPrefix marks a Standard Webhooks signing secret.
const secretPrefix = "whsec_"

// secretBytes is the length of a signing key: the specification asks for
// 24 to 64 random bytes.
const secretBytes = 32

// newSecret returns a fresh signing key and its shown form.
func newSecret() ([]byte, string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return key, secretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// checkEventTypes returns types without duplicates, or ErrInvalidEventTypes.
func checkEventTypes(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, fmt.Errorf("%w: name at least one", ErrInvalidEventTypes)
	}
	out := make([]string, 0, len(types))
	seen := map[string]bool{}
	for _, t := range types {
		if !fanout.KnownType(t) {
			return nil, fmt.Errorf("%w: unknown type", ErrInvalidEventTypes)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// checkURL applies the URL policy.
func (h *Handler) checkURL(ctx context.Context, raw string) error {
	if err := h.urls.Check(ctx, raw); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	return nil
}

// Create registers an endpoint; see Service.
func (h *Handler) Create(ctx context.Context, p commands.Principal, req CreateRequest) (Endpoint, string, error) {
	types, err := checkEventTypes(req.EventTypes)
	if err != nil {
		return Endpoint{}, "", err
	}
	url := strings.TrimSpace(req.URL)
	// Resolving the host is network I/O: done before any transaction.
	if err := h.checkURL(ctx, url); err != nil {
		return Endpoint{}, "", err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("create webhook endpoint: %w", err)
	}
	key, shown, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	blob, keyID, err := h.vault.Seal(id, key)
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("seal webhook secret: %w", err)
	}
	now := h.clock.Now()
	e := endpointRow{Endpoint: Endpoint{ID: id, URL: url, EventTypes: types, Status: StatusEnabled, CreatedAt: now, UpdatedAt: now},
		UserID: p.UserID, SecretBlob: blob}
	if err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return insertEndpoint(ctx, tx, e, keyID) }); err != nil {
		return Endpoint{}, "", err
	}
	return e.Endpoint, shown, nil
}

// List returns the principal's endpoints; see Service.
func (h *Handler) List(ctx context.Context, p commands.Principal, after *EndpointKey, limit int) ([]Endpoint, error) {
	return listEndpoints(ctx, h.pool, p.UserID, after, limit)
}

// Get returns one endpoint; see Service.
func (h *Handler) Get(ctx context.Context, p commands.Principal, id uuid.UUID) (Endpoint, error) {
	e, err := readEndpoint(ctx, h.pool, p.UserID, id, false)
	return e.Endpoint, err
}

// Update changes an endpoint; see Service. Enabling a disabled endpoint
// forgets its failures; disabling it cancels what waits to be sent.
func (h *Handler) Update(ctx context.Context, p commands.Principal, id uuid.UUID, req UpdateRequest) (Endpoint, error) {
	var types []string
	if req.EventTypes != nil {
		t, err := checkEventTypes(req.EventTypes)
		if err != nil {
			return Endpoint{}, err
		}
		types = t
	}
	var url *string
	if req.URL != nil {
		u := strings.TrimSpace(*req.URL)
		if err := h.checkURL(ctx, u); err != nil {
			return Endpoint{}, err
		}
		url = &u
	}
	var out Endpoint
	err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		if _, err := readEndpoint(ctx, tx, p.UserID, id, true); err != nil {
			return err
		}
		now := h.clock.Now()
		if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET
				url = coalesce($3, url),
				event_types = coalesce($4, event_types),
				status = CASE WHEN $5::boolean IS NULL THEN status WHEN $5 THEN 'enabled' ELSE 'disabled' END,
				disabled_reason = CASE WHEN $5::boolean IS NULL THEN disabled_reason WHEN $5 THEN NULL ELSE 'user' END,
				disabled_at = CASE WHEN $5::boolean IS NULL THEN disabled_at WHEN $5 THEN NULL
					WHEN status = 'disabled' THEN disabled_at ELSE $6 END,
				failing_since = CASE WHEN $5::boolean THEN NULL ELSE failing_since END,
				updated_at = $6
			WHERE id = $1 AND user_id = $2`, id, p.UserID, url, types, req.Enabled, now); err != nil {
			return fmt.Errorf("update webhook endpoint %s: %w", id, err)
		}
		e, err := readEndpoint(ctx, tx, p.UserID, id, false)
		out = e.Endpoint
		return err
	})
	return out, err
}

// Delete removes an endpoint; see Service. Its deliveries go with it, and
// their jobs find nothing to send.
func (h *Handler) Delete(ctx context.Context, p commands.Principal, id uuid.UUID) error {
	tag, err := h.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2`, id, p.UserID)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RotateSecret replaces the signing secret; see Service.
func (h *Handler) RotateSecret(ctx context.Context, p commands.Principal, id uuid.UUID) (Endpoint, string, error) {
	key, shown, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	blob, keyID, err := h.vault.Seal(id, key)
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("seal webhook secret: %w", err)
	}
	var out Endpoint
	err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		if _, err := readEndpoint(ctx, tx, p.UserID, id, true); err != nil {
			return err
		}
		now := h.clock.Now()
		// A rotation during a rotation drops the oldest secret: at most
		// two sign at once.
		if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET
				previous_secret_blob = secret_blob, previous_secret_key_id = secret_key_id, previous_secret_until = $3,
				secret_blob = $4, secret_key_id = $5, updated_at = $6
			WHERE id = $1 AND user_id = $2`, id, p.UserID, now.Add(h.rotationOverlap), blob, keyID, now); err != nil {
			return fmt.Errorf("rotate webhook secret of %s: %w", id, err)
		}
		e, err := readEndpoint(ctx, tx, p.UserID, id, false)
		out = e.Endpoint
		return err
	})
	return out, shown, err
}

// Test enqueues a webhook.test delivery; see Service.
func (h *Handler) Test(ctx context.Context, p commands.Principal, id uuid.UUID) (Delivery, error) {
	eventID, err := uuid.NewRandom()
	if err != nil {
		return Delivery{}, fmt.Errorf("test webhook: %w", err)
	}
	now := h.clock.Now()
	body, err := fanout.Event{ID: eventID, Type: fanout.TypeWebhookTest, Version: fanout.Version, UserID: p.UserID,
		Timestamp: now, Data: fanout.WebhookTestData{WebhookID: id}}.Marshal()
	if err != nil {
		return Delivery{}, fmt.Errorf("test webhook: %w", err)
	}
	var d Delivery
	err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		e, err := readEndpoint(ctx, tx, p.UserID, id, false)
		if err != nil {
			return err
		}
		if e.Status != StatusEnabled {
			return ErrDisabled
		}
		ids, err := h.enqueue(ctx, tx, []pendingDelivery{{endpoint: id, user: p.UserID, event: eventID, typ: fanout.TypeWebhookTest, body: body}}, now)
		if err != nil {
			return err
		}
		d = Delivery{ID: ids[0], EndpointID: id, EventID: eventID, EventType: fanout.TypeWebhookTest, Status: DeliveryPending,
			CreatedAt: now, Attempts: []Attempt{}}
		return nil
	})
	return d, err
}

// Deliveries lists an endpoint's deliveries; see Service.
func (h *Handler) Deliveries(ctx context.Context, p commands.Principal, id uuid.UUID, after *DeliveryKey, limit int) ([]Delivery, error) {
	if _, err := readEndpoint(ctx, h.pool, p.UserID, id, false); err != nil {
		return nil, err
	}
	return listDeliveries(ctx, h.pool, id, after, limit)
}
