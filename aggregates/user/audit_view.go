package user

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ErrNotPermitted means the user's roles, as the stream holds them now, do
// not grant what the command needs (a token issued before a role change
// can still claim it).
var ErrNotPermitted = errors.New("the user's roles do not permit this")

// Limits on a recorded audit view: the web layer validates every filter,
// and these keep a bug from writing kilobytes into the log for good.
const (
	maxAuditViewFilters     = 16
	maxAuditViewValueLength = 1024
)

// AuditView is one use of the audit trail (the audit API or its state
// route), as the web layer saw it: who looked, through which route, with
// which filters, at what.
type AuditView struct {
	// SessionID is the session whose token made the request.
	SessionID uuid.UUID
	// Route is the method and route template, e.g. "GET /api/v1/audit-events".
	Route string
	// Filters are the query's parameters as given, cursor and limit included.
	Filters map[string]string
	// Resource names what was looked at when the route names one: an event
	// (event:ID), a checkpoint (checkpoint:SEQ) or a stream (TYPE:ID).
	Resource string
	// At is the time of the request.
	At time.Time
}

// UserAuditTrailViewed records that the user read the audit trail: the
// audit of the auditors. It names routes, filters and resources, never the
// events read.
type UserAuditTrailViewed struct {
	// UserID is the viewer, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// SessionID is the session whose token made the request.
	SessionID uuid.UUID `json:"session_id"`
	// Route is the method and route template.
	Route string `json:"route"`
	// Filters are the query parameters as given.
	Filters map[string]string `json:"filters,omitempty"`
	// Resource names what was looked at, when the route names one.
	Resource string `json:"resource,omitempty"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// EventType returns the registered name "UserAuditTrailViewed".
func (UserAuditTrailViewed) EventType() string { return "UserAuditTrailViewed" }

func (UserAuditTrailViewed) isUserEvent() {}

// RecordAuditTrailView records a use of the audit trail on the viewer's
// stream. It returns ErrNotRegistered, ErrNotPermitted when the user's
// current roles do not grant PermissionAuditRead, or ErrInvalidID for a
// view without a route.
func (u *User) RecordAuditTrailView(v AuditView) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	if !HasPermission(u.roles, PermissionAuditRead) {
		return nil, fmt.Errorf("view the audit trail: %w", ErrNotPermitted)
	}
	if v.Route == "" || len(v.Filters) > maxAuditViewFilters || len(v.Resource) > maxAuditViewValueLength {
		return nil, fmt.Errorf("view the audit trail: route, filters or resource out of bounds: %w", ErrInvalidID)
	}
	var filters map[string]string
	for k, val := range v.Filters {
		if len(k) > maxAuditViewValueLength || len(val) > maxAuditViewValueLength {
			return nil, fmt.Errorf("view the audit trail: filter out of bounds: %w", ErrInvalidID)
		}
		if filters == nil {
			filters = make(map[string]string, len(v.Filters))
		}
		filters[k] = val
	}
	return []Event{UserAuditTrailViewed{UserID: u.id, SessionID: v.SessionID, Route: v.Route, Filters: filters,
		Resource: v.Resource, At: v.At}}, nil
}
