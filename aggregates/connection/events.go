package connection

import (
	"time"

	"github.com/google/uuid"
)

// Event is one fact on a connection's stream. It satisfies
// eventstore.Event structurally; the unexported marker keeps other
// aggregates' events out.
//
// Payloads carry ids, times, reasons, key ids, fingerprints and expiries,
// never a token, an authorisation code or a client secret: credentials
// live only in the encrypted vault.
type Event interface {
	// EventType returns the stable, registered name, which is also the Go type name.
	EventType() string
	isConnectionEvent()
}

// Credentials describes stored credentials without revealing them: which
// vault key sealed them, a fingerprint that tells two credentials apart,
// and when they expire.
type Credentials struct {
	// KeyID is the vault key the blob is sealed under.
	KeyID string `json:"key_id"`
	// Fingerprint identifies the tokens without revealing them.
	Fingerprint string `json:"fingerprint"`
	// AccessExpiresAt is when the access token expires.
	AccessExpiresAt time.Time `json:"access_expires_at"`
	// RefreshExpiresAt is when the refresh token expires; zero when the
	// provider does not say.
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
}

// ProviderConnectionAttempted records that the user asked to connect (or
// to authorise an existing connection again) and was sent to the provider.
type ProviderConnectionAttempted struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	UserID       uuid.UUID `json:"user_id"`
	ProviderSlug string    `json:"provider_slug"`
	// Alias is the name the user gave the connection; set on the first
	// attempt. Personal data: sealed under the owner's key (docs/audit.md).
	Alias string `json:"alias,omitempty" personal:"true"`
	// Reauthorization is true when an existing connection authorises again.
	Reauthorization bool `json:"reauthorization,omitempty"`
	// ExpiresAt is when the authorisation must have come back.
	ExpiresAt time.Time `json:"expires_at"`
	At        time.Time `json:"at"`
}

// ProviderConnectionSucceeded records that the provider granted access
// and the credentials were stored.
type ProviderConnectionSucceeded struct {
	ConnectionID uuid.UUID   `json:"connection_id"`
	Credentials  Credentials `json:"credentials"`
	At           time.Time   `json:"at"`
}

// FailureReason says why a connection, refresh or disconnection failed.
type FailureReason string

// The reasons an authorisation fails.
const (
	// FailedAccessDenied means the user declined at the provider.
	FailedAccessDenied FailureReason = "access_denied"
	// FailedExpired means the authorisation came back too late, or never.
	FailedExpired FailureReason = "expired"
	// FailedInvalidState means the callback's state was missing, unknown, replayed or another user's.
	FailedInvalidState FailureReason = "invalid_state"
	// FailedProviderError means the provider refused the code or answered an error.
	FailedProviderError FailureReason = "provider_error"
	// FailedProviderUnavailable means the provider could not be reached or failed.
	FailedProviderUnavailable FailureReason = "provider_unavailable"
	// FailedInvalidResponse means the provider answered something unreadable.
	FailedInvalidResponse FailureReason = "invalid_response"
	// FailedAuthentication means the provider refused the credentials.
	FailedAuthentication FailureReason = "authentication"
	// FailedRateLimited means the provider refused for its rate limit.
	FailedRateLimited FailureReason = "rate_limited"
	// FailedRefreshTokenExpired means the refresh token reached its end of life.
	FailedRefreshTokenExpired FailureReason = "refresh_token_expired"
)

// ProviderConnectionFailed records that an authorisation did not complete.
type ProviderConnectionFailed struct {
	ConnectionID uuid.UUID     `json:"connection_id"`
	Reason       FailureReason `json:"reason"`
	At           time.Time     `json:"at"`
}

// RefreshTrigger says what started a token refresh.
type RefreshTrigger string

// The triggers of a refresh.
const (
	// RefreshScheduled is the background refresh ahead of expiry.
	RefreshScheduled RefreshTrigger = "scheduled"
	// RefreshManual is the user's POST /connections/{id}/token-refreshes.
	RefreshManual RefreshTrigger = "manual"
	// RefreshOnUnauthorized is a data call that got 401 and refreshes once.
	RefreshOnUnauthorized RefreshTrigger = "unauthorized"
)

// ProviderTokenRefreshAttempted records that a refresh was sent to the provider.
type ProviderTokenRefreshAttempted struct {
	ConnectionID uuid.UUID      `json:"connection_id"`
	Trigger      RefreshTrigger `json:"trigger"`
	At           time.Time      `json:"at"`
}

// ProviderTokenRefreshSucceeded records new credentials from a refresh.
type ProviderTokenRefreshSucceeded struct {
	ConnectionID uuid.UUID   `json:"connection_id"`
	Credentials  Credentials `json:"credentials"`
	At           time.Time   `json:"at"`
}

// ProviderTokenRefreshFailed records a refresh that did not succeed;
// Transient says whether it will be retried (a provider outage) or needs
// the user (refused credentials).
type ProviderTokenRefreshFailed struct {
	ConnectionID uuid.UUID     `json:"connection_id"`
	Reason       FailureReason `json:"reason"`
	Transient    bool          `json:"transient"`
	At           time.Time     `json:"at"`
}

// ProviderReauthenticationRequired records that the user must authorise
// the connection again before data can flow.
type ProviderReauthenticationRequired struct {
	ConnectionID uuid.UUID     `json:"connection_id"`
	Reason       FailureReason `json:"reason"`
	At           time.Time     `json:"at"`
}

// ProviderConnectionRenamed records a new alias.
type ProviderConnectionRenamed struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Alias        string    `json:"alias" personal:"true"`
	At           time.Time `json:"at"`
}

// ProviderDisconnectionAttempted records that the user asked to disconnect.
type ProviderDisconnectionAttempted struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	At           time.Time `json:"at"`
}

// ProviderDisconnectionSucceeded records that the connection ended: the
// credentials were destroyed and, when the provider offers it, the grant
// was revoked there.
type ProviderDisconnectionSucceeded struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	// RevokedAtProvider is true when the provider confirmed the revocation.
	RevokedAtProvider bool      `json:"revoked_at_provider"`
	At                time.Time `json:"at"`
}

// ProviderDisconnectionFailed records that the provider could not revoke
// its grant. The connection still ends and its credentials are destroyed:
// the user's wish to disconnect is never refused because the provider is down.
type ProviderDisconnectionFailed struct {
	ConnectionID uuid.UUID     `json:"connection_id"`
	Reason       FailureReason `json:"reason"`
	At           time.Time     `json:"at"`
}

func (ProviderConnectionAttempted) EventType() string      { return "ProviderConnectionAttempted" }
func (ProviderConnectionSucceeded) EventType() string      { return "ProviderConnectionSucceeded" }
func (ProviderConnectionFailed) EventType() string         { return "ProviderConnectionFailed" }
func (ProviderTokenRefreshAttempted) EventType() string    { return "ProviderTokenRefreshAttempted" }
func (ProviderTokenRefreshSucceeded) EventType() string    { return "ProviderTokenRefreshSucceeded" }
func (ProviderTokenRefreshFailed) EventType() string       { return "ProviderTokenRefreshFailed" }
func (ProviderReauthenticationRequired) EventType() string { return "ProviderReauthenticationRequired" }
func (ProviderConnectionRenamed) EventType() string        { return "ProviderConnectionRenamed" }
func (ProviderDisconnectionAttempted) EventType() string   { return "ProviderDisconnectionAttempted" }
func (ProviderDisconnectionSucceeded) EventType() string   { return "ProviderDisconnectionSucceeded" }
func (ProviderDisconnectionFailed) EventType() string      { return "ProviderDisconnectionFailed" }

func (ProviderConnectionAttempted) isConnectionEvent()      {}
func (ProviderConnectionSucceeded) isConnectionEvent()      {}
func (ProviderConnectionFailed) isConnectionEvent()         {}
func (ProviderTokenRefreshAttempted) isConnectionEvent()    {}
func (ProviderTokenRefreshSucceeded) isConnectionEvent()    {}
func (ProviderTokenRefreshFailed) isConnectionEvent()       {}
func (ProviderReauthenticationRequired) isConnectionEvent() {}
func (ProviderConnectionRenamed) isConnectionEvent()        {}
func (ProviderDisconnectionAttempted) isConnectionEvent()   {}
func (ProviderDisconnectionSucceeded) isConnectionEvent()   {}
func (ProviderDisconnectionFailed) isConnectionEvent()      {}

// AllEvents lists a zero value of every event type, for registries and
// the tests that keep them complete.
func AllEvents() []Event {
	return []Event{
		ProviderConnectionAttempted{}, ProviderConnectionSucceeded{}, ProviderConnectionFailed{},
		ProviderTokenRefreshAttempted{}, ProviderTokenRefreshSucceeded{}, ProviderTokenRefreshFailed{},
		ProviderReauthenticationRequired{}, ProviderConnectionRenamed{},
		ProviderDisconnectionAttempted{}, ProviderDisconnectionSucceeded{}, ProviderDisconnectionFailed{},
		SyncStarted{}, SyncPickedUp{}, SyncCompleted{}, SyncFailed{},
	}
}
