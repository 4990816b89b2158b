package user

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// RotateTokens raises the user's minimum token version by one, so every
// access and refresh token issued before stops working after the grace
// period (POST /admin/users/{id}/rotations). It returns ErrNotRegistered or
// ErrReasonRequired, because an unexplained rotation is useless in an audit.
func (u *User) RotateTokens(reason string, at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, ErrReasonRequired
	}
	return []Event{UserTokensRotated{UserID: u.id, TokenVersion: u.tokenVersion + 1, Reason: reason, At: at}}, nil
}

// AccessDenial is a request refused for lack of permission, as web saw it.
type AccessDenial struct {
	// SessionID is the session whose token made the request.
	SessionID uuid.UUID
	// Method is the HTTP method.
	Method string
	// Route is the route template, not the raw path, so ids of other users' resources stay out of the log.
	Route string
	// Permission is what the route requires and the user lacks.
	Permission Permission
	// IP is the client address.
	IP string
	// At is the time of the request.
	At time.Time
}

// RecordAccessDenied records a refused request on the user's stream, so
// probing for admin routes shows in the audit trail. It returns ErrNotRegistered.
func (u *User) RecordAccessDenied(d AccessDenial) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	return []Event{UserAccessDenied{
		UserID:     u.id,
		SessionID:  d.SessionID,
		Method:     d.Method,
		Route:      d.Route,
		Permission: d.Permission,
		IP:         d.IP,
		At:         d.At,
	}}, nil
}
