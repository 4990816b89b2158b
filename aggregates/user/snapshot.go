package user

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
)

// SnapshotSchema is the shape and meaning of Snapshot. Raise it whenever a
// stored snapshot of the current schema would no longer restore the state
// replaying the stream gives: a field of User, Session or Snapshot added,
// removed or reinterpreted, or apply folding an event differently (an
// upcaster that changes what old events mean counts too). FromSnapshot then
// refuses the old snapshots and callers replay the stream instead, which is
// always correct; keeping the schema when the fold changed is never.
const SnapshotSchema = 3

// ErrSnapshotSchema means a snapshot was taken under another SnapshotSchema;
// the caller replays the stream instead.
var ErrSnapshotSchema = errors.New("unknown user snapshot schema")

// Snapshot is the whole state of a User as a plain, JSON-serialisable value,
// so that loading a long stream can start from a stored snapshot and fold
// only the events after it. It holds nothing the stream does not: a
// snapshot is a cache derived from the log, never a source of truth, and
// like the events it carries no password, token or digest.
//
// It knows nothing of stream versions; whoever stores one records the
// version of the last event folded into it.
type Snapshot struct {
	// Schema is the SnapshotSchema the snapshot was taken under.
	Schema int `json:"schema"`
	// ID is the user's id.
	ID uuid.UUID `json:"id"`
	// Registered reports whether the stream holds a user.
	Registered bool `json:"registered"`
	// RegisteredAt is when the user registered.
	RegisteredAt time.Time `json:"registered_at"`
	// Email is the normalised address.
	Email string `json:"email"`
	// Roles are the roles held, sorted.
	Roles []Role `json:"roles"`
	// Verified reports whether the address was verified.
	Verified bool `json:"verified"`
	// Verifications maps each verification request to its expiry.
	Verifications map[uuid.UUID]time.Time `json:"verifications"`
	// FailedAttempts is the consecutive password failure count.
	FailedAttempts int `json:"failed_attempts"`
	// LastFailureAt is when the latest counted failure happened.
	LastFailureAt time.Time `json:"last_failure_at"`
	// LockedUntil is the end of the latest lockout.
	LockedUntil time.Time `json:"locked_until"`
	// Sessions are the sessions the aggregate still keeps, in login order.
	Sessions []Session `json:"sessions"`
	// TokenVersion is the user's minimum token version.
	TokenVersion int64 `json:"token_version"`
	// TokensRotatedAt is when TokenVersion was last raised.
	TokensRotatedAt time.Time `json:"tokens_rotated_at"`
	// Resets are the password reset requests, in request order.
	Resets []ResetSnapshot `json:"resets"`
	// Erased reports whether the user's personal data was erased.
	Erased bool `json:"erased"`
}

// ResetSnapshot is one password reset request within a Snapshot.
type ResetSnapshot struct {
	// ID names the reset link's stored secret.
	ID uuid.UUID `json:"id"`
	// At is when the reset was requested.
	At time.Time `json:"at"`
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time `json:"expires_at"`
	// Used reports whether a completed reset spent the request.
	Used bool `json:"used"`
}

// Snapshot returns the user's whole state under SnapshotSchema. It shares no
// memory with u, so folding more events into u leaves the snapshot as it was.
func (u *User) Snapshot() Snapshot {
	s := Snapshot{
		Schema:          SnapshotSchema,
		ID:              u.id,
		Registered:      u.registered,
		RegisteredAt:    u.registeredAt,
		Email:           u.email,
		Roles:           slices.Clone(u.roles),
		Verified:        u.verified,
		Verifications:   maps.Clone(u.verifications),
		FailedAttempts:  u.failedAttempts,
		LastFailureAt:   u.lastFailureAt,
		LockedUntil:     u.lockedUntil,
		TokenVersion:    u.tokenVersion,
		TokensRotatedAt: u.tokensRotatedAt,
		Erased:          u.erased,
	}
	// nil stays nil and empty stays empty, so that the restored user is
	// equal to the folded one field by field.
	if u.sessions != nil {
		s.Sessions = make([]Session, len(u.sessions))
		for i, session := range u.sessions {
			s.Sessions[i] = *session
		}
	}
	if u.resets != nil {
		s.Resets = make([]ResetSnapshot, len(u.resets))
		for i, r := range u.resets {
			s.Resets[i] = ResetSnapshot{ID: r.id, At: r.at, ExpiresAt: r.expiresAt, Used: r.used}
		}
	}
	return s
}

// FromSnapshot restores the User that s was taken of; folding the events
// after the snapshot's version into it gives the same User as folding the
// whole stream. It returns ErrSnapshotSchema (wrapped) for a snapshot of
// another schema. It shares no memory with s.
func FromSnapshot(s Snapshot) (*User, error) {
	if s.Schema != SnapshotSchema {
		return nil, fmt.Errorf("restore user snapshot of schema %d, want %d: %w", s.Schema, SnapshotSchema, ErrSnapshotSchema)
	}
	u := &User{
		id:              s.ID,
		registered:      s.Registered,
		registeredAt:    s.RegisteredAt,
		email:           s.Email,
		roles:           slices.Clone(s.Roles),
		verified:        s.Verified,
		verifications:   maps.Clone(s.Verifications),
		failedAttempts:  s.FailedAttempts,
		lastFailureAt:   s.LastFailureAt,
		lockedUntil:     s.LockedUntil,
		tokenVersion:    s.TokenVersion,
		tokensRotatedAt: s.TokensRotatedAt,
		erased:          s.Erased,
	}
	if s.Sessions != nil {
		u.sessions = make([]*Session, len(s.Sessions))
		for i := range s.Sessions {
			session := s.Sessions[i]
			u.sessions[i] = &session
		}
	}
	if s.Resets != nil {
		u.resets = make([]resetRequest, len(s.Resets))
		for i, r := range s.Resets {
			u.resets[i] = resetRequest{id: r.ID, at: r.At, expiresAt: r.ExpiresAt, used: r.Used}
		}
	}
	return u, nil
}
