package password

import (
	"errors"
	"strings"
	"testing"

	"github.com/dashtam/dashtam/commands"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		pw   string
		want error
	}{
		{"empty", "", ErrTooShort},
		{"11 characters", "abcdefghijk", ErrTooShort},
		{"12 characters", "abcdefghijkl", nil},
		{"128 characters", strings.Repeat("abcdefgh", 16), nil},
		{"129 characters", strings.Repeat("abcdefgh", 16) + "x", ErrTooLong},
		// Runes, not bytes: 11 three-byte characters are 33 bytes but still short.
		{"11 CJK characters", strings.Repeat("密", 11), ErrTooShort},
		{"12 CJK characters", strings.Repeat("密", 12), nil},
		{"12 emoji", strings.Repeat("🔐", 12), nil},
		{"128 emoji", strings.Repeat("🔐", 128), nil},
		{"129 emoji", strings.Repeat("🔐", 129), ErrTooLong},
		// Decomposed accents count as the one character the user sees.
		{"12 decomposed é", strings.Repeat("e\u0301", 12), nil},
		{"11 decomposed é", strings.Repeat("e\u0301", 11), ErrTooShort},
		{"common", "qwerty123456", ErrCommon},
		{"common, other case", "QwErTy123456", ErrCommon},
		{"common, fullwidth compatibility form", "ｑｗｅｒｔｙ１２３４５６", ErrCommon},
		{"common long", "1q2w3e4r5t6y", ErrCommon},
		// No composition rules: all lowercase letters and spaces is fine.
		{"lowercase passphrase", "purple monkey dishwasher", nil},
		{"digits only, uncommon", "902715364829", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.pw)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check(%q) = %v; want %v", tc.pw, err, tc.want)
			}
			if got := (Policy{}).Check(tc.pw); !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Fatalf("Policy.Check(%q) = %v; want %v", tc.pw, got, tc.want)
			}
		})
	}
}

func TestPolicyErrorsAreTheCommandsErrors(t *testing.T) {
	// web maps the commands values; the aliases must be the same values.
	for _, c := range []struct{ ours, theirs error }{
		{ErrTooShort, commands.ErrPasswordTooShort},
		{ErrTooLong, commands.ErrPasswordTooLong},
		{ErrCommon, commands.ErrPasswordCommon},
	} {
		if !errors.Is(c.ours, c.theirs) {
			t.Fatalf("%v is not %v", c.ours, c.theirs)
		}
	}
}

func TestCommonPasswordList(t *testing.T) {
	set := commonPasswords()
	if len(set) < 10000 {
		t.Fatalf("common-password list has %d entries; want at least 10000", len(set))
	}
	for _, pw := range []string{"123456", "password", "qwerty", "iloveyou"} {
		if _, ok := set[pw]; !ok {
			t.Errorf("%q missing from the common-password list", pw)
		}
	}
	for pw := range set {
		if pw != strings.ToLower(pw) {
			t.Fatalf("entry %q is not lowercased, so case-insensitive lookup would miss it", pw)
		}
	}
}
