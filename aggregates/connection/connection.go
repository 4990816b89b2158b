// Package connection is the ProviderConnection aggregate: one user's link
// to one provider account login, from the first authorisation through
// token refreshes and re-authorisations to disconnection. It decides and
// folds events only; the OAuth exchange, the vault and the provider calls
// happen in commands, which hand the outcome in.
//
// States: pending → active ⇄ needs_reauth → disconnected, and pending →
// failed when the first authorisation does not complete. The attempt →
// outcome pattern holds: an authorisation, a refresh and a disconnection
// each record their attempt before the provider is called, and the outcome
// after.
package connection

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Status is where a connection stands.
type Status string

// The statuses of a connection.
const (
	// StatusNone is a stream with no events: no connection yet.
	StatusNone Status = ""
	// StatusPending waits for the first authorisation to come back.
	StatusPending Status = "pending"
	// StatusActive has working credentials.
	StatusActive Status = "active"
	// StatusNeedsReauth needs the user to authorise again.
	StatusNeedsReauth Status = "needs_reauth"
	// StatusFailed never completed its first authorisation.
	StatusFailed Status = "failed"
	// StatusDisconnected was disconnected; its credentials are destroyed.
	StatusDisconnected Status = "disconnected"
)

// Live reports whether the connection still holds its alias: every status
// but failed and disconnected.
func (s Status) Live() bool {
	return s == StatusPending || s == StatusActive || s == StatusNeedsReauth
}

// MaxAliasLength bounds an alias, in characters.
const MaxAliasLength = 64

// The errors of the connection's commands.
var (
	// ErrExists means the stream already holds a connection.
	ErrExists = errors.New("connection already exists")
	// ErrNotFound means the stream holds no connection.
	ErrNotFound = errors.New("connection not found")
	// ErrInvalidAlias means an alias is empty, too long or holds control or invisible characters.
	ErrInvalidAlias = errors.New("invalid alias")
	// ErrInvalidInput means an id, a slug or a time is missing or inconsistent.
	ErrInvalidInput = errors.New("invalid input")
	// ErrNoAuthorizationPending means no authorisation waits for an outcome.
	ErrNoAuthorizationPending = errors.New("no authorization pending")
	// ErrAuthorizationExpired means the authorisation came back after its deadline.
	ErrAuthorizationExpired = errors.New("authorization expired")
	// ErrNotActive means the command needs an active connection.
	ErrNotActive = errors.New("connection is not active")
	// ErrDisconnected means the connection was disconnected.
	ErrDisconnected = errors.New("connection is disconnected")
	// ErrFailed means the connection's first authorisation failed.
	ErrFailed = errors.New("connection failed")
	// ErrNoDisconnectionPending means no disconnection waits for an outcome.
	ErrNoDisconnectionPending = errors.New("no disconnection pending")
)

// Connection is the state of one connection, folded from its stream.
type Connection struct {
	id             uuid.UUID
	userID         uuid.UUID
	providerSlug   string
	alias          string
	status         Status
	createdAt      time.Time
	connectedAt    time.Time
	disconnectedAt time.Time
	credentials    Credentials // the latest stored; zero when none
	credentialsAt  time.Time   // when they were stored
	// pending is the deadline of the authorisation in flight (zero: none),
	// and reauth whether it re-authorises an existing connection.
	pending       time.Time
	reauth        bool
	disconnecting bool
	lastRefreshAt time.Time
	reauthReason  FailureReason
	lastFailure   FailureReason
	lastFailureAt time.Time
	// syncing is the sync in progress (uuid.Nil: none), started at syncStartedAt.
	syncing       uuid.UUID
	syncStartedAt time.Time
	lastSyncAt    time.Time
}

// New returns the state of stream id before any event: no connection.
func New(id uuid.UUID) *Connection { return &Connection{id: id} }

// Apply folds events into the state; it never validates, because events are facts.
func (c *Connection) Apply(events ...Event) {
	for _, e := range events {
		c.apply(e)
	}
}

func (c *Connection) apply(e Event) {
	switch e := e.(type) {
	case ProviderConnectionAttempted:
		if c.status == StatusNone {
			c.id, c.userID, c.providerSlug, c.alias = e.ConnectionID, e.UserID, e.ProviderSlug, e.Alias
			c.status, c.createdAt = StatusPending, e.At
		}
		c.pending, c.reauth = e.ExpiresAt, e.Reauthorization
	case ProviderConnectionSucceeded:
		c.status = StatusActive
		if c.connectedAt.IsZero() {
			c.connectedAt = e.At
		}
		c.credentials, c.credentialsAt, c.pending, c.reauth, c.reauthReason = e.Credentials, e.At, time.Time{}, false, ""
	case ProviderConnectionFailed:
		if !c.reauth && c.status == StatusPending {
			c.status = StatusFailed
		}
		c.pending, c.reauth = time.Time{}, false
		c.lastFailure, c.lastFailureAt = e.Reason, e.At
	case ProviderTokenRefreshAttempted:
		// The outcome event carries the state change.
	case ProviderTokenRefreshSucceeded:
		c.credentials, c.credentialsAt, c.lastRefreshAt = e.Credentials, e.At, e.At
	case ProviderTokenRefreshFailed:
		c.lastFailure, c.lastFailureAt = e.Reason, e.At
	case ProviderReauthenticationRequired:
		if c.status == StatusActive {
			c.status = StatusNeedsReauth
		}
		c.reauthReason = e.Reason
	case ProviderConnectionRenamed:
		c.alias = e.Alias
	case ProviderDisconnectionAttempted:
		c.disconnecting = true
	case ProviderDisconnectionSucceeded:
		c.disconnect(e.At)
	case ProviderDisconnectionFailed:
		c.disconnect(e.At)
		c.lastFailure, c.lastFailureAt = e.Reason, e.At
	case SyncStarted:
		c.syncing, c.syncStartedAt = e.SyncID, e.At
	case SyncCompleted:
		if c.syncing == e.SyncID {
			c.syncing = uuid.Nil
		}
		c.lastSyncAt = e.At
	case SyncFailed:
		if c.syncing == e.SyncID {
			c.syncing = uuid.Nil
		}
		c.lastFailure, c.lastFailureAt = e.Reason, e.At
	}
}

func (c *Connection) disconnect(at time.Time) {
	c.status, c.disconnectedAt, c.disconnecting = StatusDisconnected, at, false
	c.credentials, c.credentialsAt, c.pending, c.reauth = Credentials{}, time.Time{}, time.Time{}, false
}

// Start is the request to create a connection and send the user to the provider.
type Start struct {
	UserID       uuid.UUID
	ProviderSlug string
	Alias        string
	// ExpiresAt is the deadline of the authorisation (the OAuth state's expiry).
	ExpiresAt time.Time
	At        time.Time
}

// Start creates the connection, pending its first authorisation. The alias
// is trimmed and must be 1 to MaxAliasLength characters of printable text.
func (c *Connection) Start(s Start) ([]Event, error) {
	if c.status != StatusNone {
		return nil, ErrExists
	}
	alias, err := NormalizeAlias(s.Alias)
	if err != nil {
		return nil, err
	}
	if s.UserID == uuid.Nil || c.id == uuid.Nil || strings.TrimSpace(s.ProviderSlug) == "" || !s.ExpiresAt.After(s.At) {
		return nil, fmt.Errorf("start connection: %w", ErrInvalidInput)
	}
	return []Event{ProviderConnectionAttempted{
		ConnectionID: c.id, UserID: s.UserID, ProviderSlug: s.ProviderSlug, Alias: alias, ExpiresAt: s.ExpiresAt, At: s.At,
	}}, nil
}

// Reauthorize sends the user to the provider again for an existing
// connection: one that needs it, or an active one whose owner wants fresh
// credentials (before a refresh token's end of life).
func (c *Connection) Reauthorize(expiresAt, at time.Time) ([]Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.status != StatusActive && c.status != StatusNeedsReauth {
		return nil, fmt.Errorf("reauthorize: %w", ErrNotActive)
	}
	if !expiresAt.After(at) {
		return nil, fmt.Errorf("reauthorize: %w", ErrInvalidInput)
	}
	return []Event{ProviderConnectionAttempted{
		ConnectionID: c.id, UserID: c.userID, ProviderSlug: c.providerSlug, Reauthorization: true, ExpiresAt: expiresAt, At: at,
	}}, nil
}

// Complete records the stored credentials of the authorisation in flight.
// An authorisation that came back after its deadline is refused with
// ErrAuthorizationExpired; the caller records the failure instead.
func (c *Connection) Complete(creds Credentials, at time.Time) ([]Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.pending.IsZero() {
		return nil, ErrNoAuthorizationPending
	}
	if !at.Before(c.pending) {
		return nil, ErrAuthorizationExpired
	}
	if err := creds.validate(); err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	return []Event{ProviderConnectionSucceeded{ConnectionID: c.id, Credentials: creds, At: at}}, nil
}

// Fail records that the authorisation in flight did not complete. A first
// authorisation leaves the connection failed; a re-authorisation leaves it
// as it was.
func (c *Connection) Fail(reason FailureReason, at time.Time) ([]Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.pending.IsZero() {
		return nil, ErrNoAuthorizationPending
	}
	return []Event{ProviderConnectionFailed{ConnectionID: c.id, Reason: reason, At: at}}, nil
}

// AttemptRefresh records that a refresh is about to be sent to the provider.
func (c *Connection) AttemptRefresh(trigger RefreshTrigger, at time.Time) ([]Event, error) {
	if err := c.mustBeActive(); err != nil {
		return nil, err
	}
	return []Event{ProviderTokenRefreshAttempted{ConnectionID: c.id, Trigger: trigger, At: at}}, nil
}

// RefreshSucceeded records the credentials a refresh stored.
func (c *Connection) RefreshSucceeded(creds Credentials, at time.Time) ([]Event, error) {
	if err := c.mustBeActive(); err != nil {
		return nil, err
	}
	if err := creds.validate(); err != nil {
		return nil, fmt.Errorf("refresh succeeded: %w", err)
	}
	return []Event{ProviderTokenRefreshSucceeded{ConnectionID: c.id, Credentials: creds, At: at}}, nil
}

// RefreshFailed records a failed refresh. A transient failure changes
// nothing (it is retried); any other needs the user, and the connection
// moves to needs_reauth.
func (c *Connection) RefreshFailed(reason FailureReason, transient bool, at time.Time) ([]Event, error) {
	if err := c.mustBeActive(); err != nil {
		return nil, err
	}
	events := []Event{ProviderTokenRefreshFailed{ConnectionID: c.id, Reason: reason, Transient: transient, At: at}}
	if !transient {
		events = append(events, ProviderReauthenticationRequired{ConnectionID: c.id, Reason: reason, At: at})
	}
	return events, nil
}

// RequireReauthentication moves an active connection to needs_reauth, for
// a refusal found outside a refresh (a refresh token past its end of life).
// On a connection that already needs it, it decides nothing.
func (c *Connection) RequireReauthentication(reason FailureReason, at time.Time) ([]Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.status == StatusNeedsReauth {
		return nil, nil
	}
	if c.status != StatusActive {
		return nil, fmt.Errorf("require reauthentication: %w", ErrNotActive)
	}
	return []Event{ProviderReauthenticationRequired{ConnectionID: c.id, Reason: reason, At: at}}, nil
}

// Rename gives the connection a new alias; the same alias decides nothing.
func (c *Connection) Rename(alias string, at time.Time) ([]Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.status == StatusDisconnected {
		return nil, ErrDisconnected
	}
	alias, err := NormalizeAlias(alias)
	if err != nil {
		return nil, err
	}
	if alias == c.alias {
		return nil, nil
	}
	return []Event{ProviderConnectionRenamed{ConnectionID: c.id, Alias: alias, At: at}}, nil
}

// AttemptDisconnect records the user's request to disconnect.
func (c *Connection) AttemptDisconnect(at time.Time) ([]Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.status == StatusDisconnected {
		return nil, ErrDisconnected
	}
	return []Event{ProviderDisconnectionAttempted{ConnectionID: c.id, At: at}}, nil
}

// Disconnected records the end of the disconnection in flight: with an
// empty failure, success (revoked says whether the provider confirmed a
// revocation; false for providers without one), otherwise the reason the
// provider could not revoke. The connection ends either way.
func (c *Connection) Disconnected(revoked bool, failure FailureReason, at time.Time) ([]Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.status == StatusDisconnected {
		return nil, ErrDisconnected
	}
	if !c.disconnecting {
		return nil, ErrNoDisconnectionPending
	}
	if failure != "" {
		return []Event{ProviderDisconnectionFailed{ConnectionID: c.id, Reason: failure, At: at}}, nil
	}
	return []Event{ProviderDisconnectionSucceeded{ConnectionID: c.id, RevokedAtProvider: revoked, At: at}}, nil
}

func (c *Connection) mustExist() error {
	if c.status == StatusNone {
		return ErrNotFound
	}
	return nil
}

func (c *Connection) mustBeActive() error {
	switch c.status {
	case StatusNone:
		return ErrNotFound
	case StatusActive:
		return nil
	case StatusDisconnected:
		return ErrDisconnected
	case StatusFailed:
		return ErrFailed
	}
	return ErrNotActive
}

func (cr Credentials) validate() error {
	if cr.KeyID == "" || cr.Fingerprint == "" || cr.AccessExpiresAt.IsZero() {
		return ErrInvalidInput
	}
	return nil
}

// NormalizeAlias trims an alias and checks it: 1 to MaxAliasLength
// characters, valid UTF-8, no control, format (invisible) or line
// separator characters.
func NormalizeAlias(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxAliasLength {
		return "", ErrInvalidAlias
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			return "", ErrInvalidAlias
		}
	}
	return s, nil
}

// ID returns the connection's id.
func (c *Connection) ID() uuid.UUID { return c.id }

// UserID returns the owner.
func (c *Connection) UserID() uuid.UUID { return c.userID }

// ProviderSlug returns the provider the connection belongs to.
func (c *Connection) ProviderSlug() string { return c.providerSlug }

// Alias returns the user's name for the connection.
func (c *Connection) Alias() string { return c.alias }

// Status returns where the connection stands.
func (c *Connection) Status() Status { return c.status }

// CreatedAt returns when the connection was first attempted.
func (c *Connection) CreatedAt() time.Time { return c.createdAt }

// ConnectedAt returns when the first authorisation succeeded (zero: never).
func (c *Connection) ConnectedAt() time.Time { return c.connectedAt }

// DisconnectedAt returns when the connection was disconnected (zero: not).
func (c *Connection) DisconnectedAt() time.Time { return c.disconnectedAt }

// Credentials returns the description of the stored credentials (zero: none).
func (c *Connection) Credentials() Credentials { return c.credentials }

// LastCredentialsAt returns when the current credentials were stored (zero: none).
func (c *Connection) LastCredentialsAt() time.Time { return c.credentialsAt }

// ReauthorizeBy returns when the user must authorise again at the latest:
// the refresh token's end of life, zero when unknown or not active.
func (c *Connection) ReauthorizeBy() time.Time {
	if c.status != StatusActive {
		return time.Time{}
	}
	return c.credentials.RefreshExpiresAt
}

// AuthorizationPending returns the deadline of the authorisation in flight
// (zero: none).
func (c *Connection) AuthorizationPending() time.Time { return c.pending }

// Disconnecting reports whether a disconnection was attempted and has no outcome yet.
func (c *Connection) Disconnecting() bool { return c.disconnecting }

// ReauthReason returns why the connection needs re-authorisation, if it does.
func (c *Connection) ReauthReason() FailureReason { return c.reauthReason }

// LastFailure returns the latest failure recorded and when.
func (c *Connection) LastFailure() (FailureReason, time.Time) { return c.lastFailure, c.lastFailureAt }

// LastRefreshAt returns when credentials were last refreshed (zero: never).
func (c *Connection) LastRefreshAt() time.Time { return c.lastRefreshAt }
