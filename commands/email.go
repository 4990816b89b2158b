package commands

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/dashtam/dashtam/aggregates/user"
)

// maxEmailLength is the longest address SMTP can carry (RFC 5321 path limit).
const maxEmailLength = 254

// maxEmailInput bounds the input NormalizeEmail works on: normalisation can
// only grow an address this long past maxEmailLength, and a caller that
// passes megabytes must not buy that much Unicode work.
const maxEmailInput = 4 * maxEmailLength

// emailDomains converts a domain to its ASCII (A-label) form the way a
// resolver looks it up (UTS #46 non-transitional mapping: case, width and
// compatibility forms folded, "ß" kept), refusing what DNS cannot carry:
// labels over 63 bytes, names over 253, anything but letters, digits and
// hyphens, invalid punycode, and right-to-left labels that break the Bidi
// rule. Hyphens in the third and fourth place are left alone: "ab--cd"
// is a valid host name, and mail to one has always been accepted.
var emailDomains = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true),
	idna.Transitional(false), idna.CheckHyphens(false))

// NormalizeEmail returns the one spelling of the mailbox s names, so that
// one mailbox is one account: s is trimmed, brought to Unicode NFKC
// (fullwidth "ＹＯＵ" is "YOU"), lower-cased, and its domain converted
// to the A-label a resolver looks up ("exämple.com" is
// "xn--exmple-cua.com"). It returns user.ErrInvalidEmail (wrapped) for anything
// but one bare address at a public-looking domain: invisible or control
// characters anywhere (zero-width and bidirectional controls, soft
// hyphens, variation selectors; refused rather than dropped, since an
// address that only looks like another must not become it), a display
// name, comment or quoted local part, an IP literal ("[127.0.0.1]") or
// numeric domain, a dotless one ("localhost"), or more than 254 bytes.
// The result is a fixed point: NormalizeEmail of it returns it unchanged.
func NormalizeEmail(s string) (string, error) {
	invalid := fmt.Errorf("normalize email: %w", user.ErrInvalidEmail)
	if len(s) > maxEmailInput || !utf8.ValidString(s) {
		return "", invalid
	}
	s = strings.TrimSpace(s)
	for _, r := range s {
		if invisibleInEmail(r) {
			return "", invalid
		}
	}
	// Lower-casing can un-normalise (a few letters lower to a sequence NFKC
	// composes), so NFKC runs again after it: the result must be a fixed point.
	n := norm.NFKC.String(strings.ToLower(norm.NFKC.String(s)))
	at := strings.LastIndexByte(n, '@')
	if at <= 0 {
		return "", invalid
	}
	domain, ok := asciiDomain(n[at+1:])
	if !ok {
		return "", invalid
	}
	addr := n[:at] + "@" + domain
	if len(addr) > maxEmailLength {
		return "", invalid
	}
	// A display name, comment or quoted local part would parse but not
	// round-trip, and has no place in a login identifier.
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return "", invalid
	}
	return addr, nil
}

// invisibleInEmail reports whether r is a character no address should
// hold: controls, format characters (zero-width space and joiners, bidi
// controls, soft hyphen), private-use and unassigned code points,
// separators, and the other default-ignorable code points (Hangul fillers,
// variation selectors, the combining grapheme joiner), all of which render
// as nothing or as something else.
func invisibleInEmail(r rune) bool {
	return !unicode.IsGraphic(r) || unicode.Is(unicode.Zs, r) ||
		unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// asciiDomain returns d's A-label form, or false when d is no domain mail
// should be accepted for: an IP literal or all-numeric name (no top-level
// domain is numeric), a name without a dot (localhost, intranet hosts), an
// empty label (a trailing dot included), a label that starts or ends with
// a hyphen, or anything IDNA refuses.
func asciiDomain(d string) (string, bool) {
	if d == "" || strings.HasPrefix(d, "[") {
		return "", false
	}
	a, err := emailDomains.ToASCII(d)
	if err != nil {
		return "", false
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", false
	}
	return a, true
}
