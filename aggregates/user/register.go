package user

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// maxEmailLength is the longest address SMTP can carry (RFC 5321 path limit).
const maxEmailLength = 254

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
	// The caller normalises (commands.NormalizeEmail: Unicode and IDNA
	// tables have no place in a pure aggregate); what arrives here must at
	// least be a plausible address.
	if !plausibleEmail(email) {
		return nil, fmt.Errorf("register: %w", ErrInvalidEmail)
	}
	if !role.Valid() {
		return nil, fmt.Errorf("register %q: %w", role, ErrInvalidRole)
	}
	return []Event{UserRegistered{UserID: id, Email: email, Role: role, At: at}}, nil
}

// plausibleEmail reports whether s could be a normalised address: valid
// UTF-8 of at most maxEmailLength bytes, one "@" with text on both sides,
// a dotted domain, no upper-case letters, spaces or control characters.
func plausibleEmail(s string) bool {
	if len(s) == 0 || len(s) > maxEmailLength || !utf8.ValidString(s) || s != strings.ToLower(s) {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.Contains(domain, "@") {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}
