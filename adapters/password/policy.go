package password

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dashtam/dashtam/commands"
)

// Length limits of NIST SP 800-63B as the issue sets them: a floor that makes
// guessing expensive and a ceiling that bounds the hashing work per request.
const (
	// MinLength is the fewest characters (Unicode code points) a password may have.
	MinLength = 12
	// MaxLength is the most characters (Unicode code points) a password may have.
	MaxLength = 128
)

// The policy errors are the commands values, so web maps them without
// importing this package.
var (
	// ErrTooShort means the password has fewer than MinLength characters.
	ErrTooShort = commands.ErrPasswordTooShort
	// ErrTooLong means the password has more than MaxLength characters.
	ErrTooLong = commands.ErrPasswordTooLong
	// ErrCommon means the password is on the embedded common-password list.
	ErrCommon = commands.ErrPasswordCommon
)

// commonPasswordsJSON is the common-password dictionary of the npm package
// @zxcvbn-ts/language-common 4.1.3 (MIT), verbatim; see README.md.
//
//go:embed common-passwords.json
var commonPasswordsJSON []byte

// commonPasswords is parsed on first use so processes that never check a new
// password (projectors, migrations) do not pay for the set.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	var list []string
	if err := json.Unmarshal(commonPasswordsJSON, &list); err != nil {
		// The file is embedded at build time and covered by tests, so a
		// failure here is a broken build, not a runtime condition.
		panic(fmt.Sprintf("password: decode embedded common-password list: %v", err))
	}
	set := make(map[string]struct{}, len(list))
	for _, pw := range list {
		set[strings.ToLower(normalize(pw))] = struct{}{}
	}
	return set
})

// Policy is the NIST SP 800-63B password policy; its zero value is ready to
// use and it implements commands.PasswordPolicy.
type Policy struct{}

var _ commands.PasswordPolicy = Policy{}

// Check applies the package-level Check.
func (Policy) Check(pw string) error { return Check(pw) }

// Check returns nil when pw may be chosen, otherwise ErrTooShort, ErrTooLong
// or ErrCommon (wrapped with the limit that was crossed). Length counts
// Unicode code points after NFKC normalisation, so an emoji or an accented
// letter counts as one character, as a user would count it. There are
// deliberately no composition rules (SP 800-63B §5.1.1.2).
func Check(pw string) error {
	pw = normalize(pw)
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinLength:
		return fmt.Errorf("%w: %d characters, at least %d required", ErrTooShort, n, MinLength)
	case n > MaxLength:
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrTooLong, n, MaxLength)
	}
	if _, common := commonPasswords()[strings.ToLower(pw)]; common {
		return ErrCommon
	}
	return nil
}
