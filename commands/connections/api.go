// Package connections holds the use cases of provider connections:
// connecting over OAuth (authorisation URL, callback, code exchange),
// re-authorising, refreshing tokens ahead of expiry and on demand,
// renaming and disconnecting. Every step is an event on the connection's
// stream; credentials live only in the vault table, sealed; and no
// database transaction is ever open while a provider is called: each use
// case reads and commits, calls, then decides in a new short unit of work.
package connections

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
)

// Service is the connections API the web layer consumes. Methods return
// the errors below, those of aggregates/connection and commands (wrapped),
// so web maps them to problem details in one place.
type Service interface {
	// Connect creates a pending connection and returns where to send the
	// user. Errors: commands.ErrUnknownProvider, connection.ErrInvalidAlias,
	// ErrAliasTaken.
	Connect(ctx context.Context, p commands.Principal, providerSlug, alias string, rc commands.RequestContext) (Authorization, error)
	// Reauthorize sends the user to the provider again for an existing
	// connection. Errors: ErrNotFound, connection.ErrNotActive.
	Reauthorize(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) (Authorization, error)
	// Callback completes an authorisation from the provider's redirect to
	// the browser; it never fails, it tells what happened.
	Callback(ctx context.Context, providerSlug string, query url.Values, rc commands.RequestContext) CallbackOutcome
	// Get returns one of the principal's connections. Errors: ErrNotFound
	// (also for another user's connection).
	Get(ctx context.Context, p commands.Principal, id uuid.UUID) (View, error)
	// Rename sets a connection's alias. Errors: ErrNotFound,
	// connection.ErrInvalidAlias, ErrAliasTaken, connection.ErrDisconnected.
	Rename(ctx context.Context, p commands.Principal, id uuid.UUID, alias string, rc commands.RequestContext) (View, error)
	// Disconnect ends a connection and destroys its credentials. Errors:
	// ErrNotFound, connection.ErrDisconnected.
	Disconnect(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) error
	// RefreshNow refreshes a connection's tokens at once and returns the
	// new expiries, never a token. Errors: ErrNotFound,
	// connection.ErrNotActive and the others of an inactive connection,
	// ErrReauthenticationRequired, ErrProviderBusy.
	RefreshNow(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) (Expiry, error)
}

// Errors of the connection use cases.
var (
	// ErrNotFound means the connection does not exist or belongs to another user.
	ErrNotFound = errors.New("connection not found")
	// ErrAliasTaken means another live connection of the user and provider has the alias.
	ErrAliasTaken = errors.New("alias already used by another connection of this provider")
	// ErrReauthenticationRequired means the provider refused the
	// credentials: the user must authorise the connection again.
	ErrReauthenticationRequired = errors.New("the connection needs to be authorized again")
	// ErrProviderBusy means the provider failed, is rate limited or
	// another refresh of the connection is running; retry later.
	ErrProviderBusy = errors.New("the provider is unavailable, try again later")
)

// View is a connection as the API shows it.
type View struct {
	ID             uuid.UUID
	ProviderSlug   string
	Alias          string
	Status         connection.Status
	CreatedAt      time.Time
	ConnectedAt    *time.Time
	ReauthorizeBy  *time.Time
	AccessExpires  *time.Time
	DisconnectedAt *time.Time
}

// Authorization is where to send the user's browser to authorise a connection.
type Authorization struct {
	Connection View
	// URL is the provider's authorisation URL.
	URL string
	// State is the opaque value the provider sends back; single use.
	State string
	// ExpiresIn is how long the authorisation may take.
	ExpiresIn time.Duration
}

// Expiry is what a refresh answers: expiries, never tokens.
type Expiry struct {
	AccessExpiresAt time.Time
	ReauthorizeBy   *time.Time
}

// CallbackOutcome is what the callback page tells the person in the browser.
type CallbackOutcome struct {
	// OK is true when the connection is now active.
	OK bool
	// BadRequest is true when the callback carried no state at all: the
	// request did not come from an authorisation Dashtam started.
	BadRequest bool
	// Reason says why it failed, in the connection aggregate's vocabulary.
	Reason connection.FailureReason
	// ProviderName and Alias name the connection, when known.
	ProviderName string
	Alias        string
	// ConnectionID is the connection concerned, when known.
	ConnectionID uuid.UUID
}

// AuthorizationTTL is how long an authorisation may take from the
// connect request to the callback (the OAuth state's life).
const AuthorizationTTL = 10 * time.Minute
