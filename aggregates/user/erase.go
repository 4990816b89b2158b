package user

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// ErrAlreadyErased means the user's personal data was erased already.
var ErrAlreadyErased = errors.New("user is already erased")

// RevokedErasure means the session ended because the user was erased.
const RevokedErasure RevokeReason = "erasure"

// ErasedMarker replaces personal data in the state of an erased user: the
// events' personal fields are sealed under a key destroyed at the erasure,
// and the state folded in memory forgets them too, so that no snapshot
// taken afterwards holds them.
const ErasedMarker = "[erased]"

// UserErased records that the user's personal data was erased (GDPR Art.
// 17): their data key destroyed, so every personal field of their events
// reads as erased from now on, every session ended and their connections
// disconnected. It carries no personal data; By is the user themself or
// the administrator who asked.
type UserErased struct {
	// UserID is the user, which is also the stream id.
	UserID uuid.UUID `json:"user_id"`
	// By is who asked for the erasure.
	By uuid.UUID `json:"by"`
	// At is when it happened, by the deciding handler's clock.
	At time.Time `json:"at"`
}

// EventType returns the registered name "UserErased".
func (UserErased) EventType() string { return "UserErased" }

func (UserErased) isUserEvent() {}

// Erase ends every active session (UserSessionRevoked, reason erasure) and
// records the erasure. It returns ErrNotRegistered or ErrAlreadyErased.
// Destroying the key and cleaning the security tables is the caller's, in
// the same transaction.
func (u *User) Erase(by uuid.UUID, at time.Time) ([]Event, error) {
	if !u.registered {
		return nil, ErrNotRegistered
	}
	if u.erased {
		return nil, ErrAlreadyErased
	}
	events := u.revokeAllActive(RevokedErasure, at)
	return append(events, UserErased{UserID: u.id, By: by, At: at}), nil
}

// Erased reports whether the user's personal data was erased.
func (u *User) Erased() bool { return u.erased }

// forget replaces the personal data the state holds.
func (u *User) forget() {
	u.erased = true
	u.email = ErasedMarker
	for _, s := range u.sessions {
		for _, f := range []*string{&s.IP, &s.LastIP, &s.UserAgent, &s.Device} {
			if *f != "" {
				*f = ErasedMarker
			}
		}
	}
}
