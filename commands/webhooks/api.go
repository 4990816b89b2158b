// Package webhooks holds the use cases of webhook endpoints: registering,
// listing, changing, deleting and testing them, rotating their signing
// secrets; the fan-out that turns every integration event into a delivery
// for each subscribed endpoint, in the transaction that moves its
// checkpoint; and the delivery jobs, which sign (Standard Webhooks), send
// with nothing open in the database, record the attempt in a new short
// transaction, retry over about three days and disable an endpoint that
// keeps failing, mailing its owner.
package webhooks

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
)

// Service is the webhook API the web layer consumes. Methods return the
// errors below (wrapped), which web maps to problem details in one place;
// another user's endpoint is ErrNotFound, exactly as a missing one.
type Service interface {
	// Create registers an endpoint and returns it with its signing secret,
	// shown this once. Errors: ErrInvalidURL, ErrInvalidEventTypes,
	// ErrTooManyEndpoints.
	Create(ctx context.Context, p commands.Principal, req CreateRequest) (Endpoint, string, error)
	// List returns up to limit of the principal's endpoints after the key
	// (nil: from the start), oldest first.
	List(ctx context.Context, p commands.Principal, after *EndpointKey, limit int) ([]Endpoint, error)
	// Get returns one endpoint. Errors: ErrNotFound.
	Get(ctx context.Context, p commands.Principal, id uuid.UUID) (Endpoint, error)
	// Update changes what req sets. Errors: ErrNotFound, ErrInvalidURL,
	// ErrInvalidEventTypes.
	Update(ctx context.Context, p commands.Principal, id uuid.UUID, req UpdateRequest) (Endpoint, error)
	// Delete removes an endpoint and its deliveries. Errors: ErrNotFound.
	Delete(ctx context.Context, p commands.Principal, id uuid.UUID) error
	// RotateSecret gives the endpoint a new secret, returned this once;
	// the old one keeps signing beside it until the endpoint's
	// PreviousSecretUntil. Errors: ErrNotFound.
	RotateSecret(ctx context.Context, p commands.Principal, id uuid.UUID) (Endpoint, string, error)
	// Test enqueues a webhook.test delivery, sent once, and returns it.
	// Errors: ErrNotFound, ErrDisabled.
	Test(ctx context.Context, p commands.Principal, id uuid.UUID) (Delivery, error)
	// Deliveries returns up to limit of the endpoint's deliveries after the
	// key (nil: from the newest), newest first, with their attempts.
	// Errors: ErrNotFound.
	Deliveries(ctx context.Context, p commands.Principal, id uuid.UUID, after *DeliveryKey, limit int) ([]Delivery, error)
}

// Errors of the webhook use cases.
var (
	// ErrNotFound means the endpoint does not exist or belongs to another user.
	ErrNotFound = errors.New("webhook endpoint not found")
	// ErrInvalidURL means the URL is not an absolute https URL of a public
	// host, or resolves to an address deliveries may not go to.
	ErrInvalidURL = errors.New("invalid webhook url")
	// ErrInvalidEventTypes means the list is empty, too long, or names a
	// type that does not exist.
	ErrInvalidEventTypes = errors.New("invalid webhook event types")
	// ErrTooManyEndpoints means the user has MaxEndpoints already.
	ErrTooManyEndpoints = errors.New("too many webhook endpoints")
	// ErrDisabled means the endpoint is disabled: enable it first.
	ErrDisabled = errors.New("webhook endpoint is disabled")
)

// MaxEndpoints bounds the endpoints of one user: each event is sent to
// every one of them, so an unbounded list would be a free amplifier.
const MaxEndpoints = 10

// Status is an endpoint's state.
type Status string

// The states of an endpoint.
const (
	StatusEnabled  Status = "enabled"
	StatusDisabled Status = "disabled"
)

// Why an endpoint was disabled.
const (
	DisabledByUser = "user"
	// DisabledFailing means every attempt failed for longer than the
	// disable window; the owner was mailed.
	DisabledFailing = "failing"
	// DisabledGone means the receiver answered 410 Gone.
	DisabledGone = "gone"
)

// CreateRequest registers an endpoint.
type CreateRequest struct {
	URL        string
	EventTypes []string
}

// UpdateRequest changes the fields that are set.
type UpdateRequest struct {
	URL        *string
	EventTypes []string // nil: unchanged
	Enabled    *bool
}

// Endpoint is an endpoint as the API shows it; never its secret.
type Endpoint struct {
	ID             uuid.UUID
	URL            string
	EventTypes     []string
	Status         Status
	DisabledReason string
	DisabledAt     *time.Time
	FailingSince   *time.Time
	// PreviousSecretUntil is when the secret replaced by the last rotation
	// stops signing; nil outside a rotation.
	PreviousSecretUntil *time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// EndpointKey is an endpoint's place in list order.
type EndpointKey struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Key returns e's place in list order.
func (e Endpoint) Key() EndpointKey { return EndpointKey{CreatedAt: e.CreatedAt, ID: e.ID} }

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// The states of a delivery.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
	// DeliveryCancelled means the endpoint was disabled before it succeeded.
	DeliveryCancelled DeliveryStatus = "cancelled"
)

// Delivery is one integration event for one endpoint, with its attempts.
type Delivery struct {
	ID            uuid.UUID
	EndpointID    uuid.UUID
	EventID       uuid.UUID
	EventType     string
	Status        DeliveryStatus
	NextAttemptAt *time.Time
	CreatedAt     time.Time
	CompletedAt   *time.Time
	Attempts      []Attempt
}

// DeliveryKey is a delivery's place in list order (newest first).
type DeliveryKey struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Key returns d's place in list order.
func (d Delivery) Key() DeliveryKey { return DeliveryKey{CreatedAt: d.CreatedAt, ID: d.ID} }

// Attempt is one try of a delivery.
type Attempt struct {
	Number      int
	AttemptedAt time.Time
	// StatusCode is the receiver's answer; zero when none came.
	StatusCode int
	// Error classifies a failure without an answer, or an answer refused
	// (ErrorTimeout, ErrorBlockedAddress, ...); empty on success.
	Error   string
	Latency time.Duration
}
