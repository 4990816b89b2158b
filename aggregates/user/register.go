package user

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxEmailLength is the longest address SMTP can carry (RFC 5321 path limit).
const maxEmailLength = 254

// NormalizeEmail trims and lowercases s and checks that it is one bare
// address, so that "Ann@Example.com " and "ann@example.com" are one user.
// It returns ErrInvalidEmail (wrapped) otherwise.
func NormalizeEmail(s string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	if n == "" || len(n) > maxEmailLength {
		return "", fmt.Errorf("normalize email: %w", ErrInvalidEmail)
	}
	// A display name, comment or quoted local part would parse but not
	// round-trip, and has no place in a login identifier.
	a, err := mail.ParseAddress(n)
	if err != nil || a.Name != "" || a.Address != n {
		return "", fmt.Errorf("normalize email: %w", ErrInvalidEmail)
	}
	return n, nil
}

// Register starts the user with a normalised email and a first role. The
// caller checks that the email is not taken, which needs the read model.
// It returns ErrAlreadyRegistered, ErrInvalidID, ErrInvalidEmail or ErrInvalidRole.
func (u *User) Register(id uuid.UUID, email string, role Role, at time.Time) ([]Event, error) {
	if u.registered {
		return nil, ErrAlreadyRegistered
	}
	if id == uuid.Nil {
		return nil, fmt.Errorf("register: user %w", ErrInvalidID)
	}
	n, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if !role.Valid() {
		return nil, fmt.Errorf("register %q: %w", role, ErrInvalidRole)
	}
	return []Event{UserRegistered{UserID: id, Email: n, Role: role, At: at}}, nil
}
