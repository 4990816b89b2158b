package commands

import (
	"errors"
	"math/rand/v2"
	"net/mail"
	"regexp"
	"strings"
	"testing"

	"github.com/dashtam/dashtam/aggregates/user"
)

func TestNormalizeEmail(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"already normal", "ann@example.com", "ann@example.com"},
		{"trimmed and lower-cased", "  Ann@Example.COM\t", "ann@example.com"},
		{"subaddress and subdomain", "ann+tag@sub.example.org", "ann+tag@sub.example.org"},
		{"fullwidth letters", "ＹＯＵ@example.com", "you@example.com"},
		{"fullwidth at and dot", "you＠example．com", "you@example.com"},
		{"ideographic full stop", "you@example。com", "you@example.com"},
		{"ideographic space is trimmed", "\u3000you@example.com\u3000", "you@example.com"},
		{"IDN domain to its A-label", "you@exämple.com", "you@xn--exmple-cua.com"},
		{"the A-label itself", "you@xn--exmple-cua.com", "you@xn--exmple-cua.com"},
		{"upper-case A-label", "you@XN--EXMPLE-CUA.COM", "you@xn--exmple-cua.com"},
		{"decomposed umlaut composes", "you@exa\u0308mple.com", "you@xn--exmple-cua.com"},
		{"upper-case IDN", "you@EXÄMPLE.COM", "you@xn--exmple-cua.com"},
		{"fullwidth IDN", "you@ｅｘäｍｐｌｅ.com", "you@xn--exmple-cua.com"},
		{"eszett is kept (IDNA2008)", "you@straße.de", "you@xn--strae-oqa.de"},
		{"emoji domain", "you@💩.la", "you@xn--ls8h.la"},
		{"non-ASCII local part, NFKC", "ﬁnn@example.com", "finn@example.com"},
		{"non-ASCII local part, lower-cased", "ÄNNE@example.com", "änne@example.com"},
		{"double hyphen inside a label", "you@ab--cd.com", "you@ab--cd.com"},
		{"digits in the domain", "you@123.example.com", "you@123.example.com"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := NormalizeEmail(c.in)
			if err != nil || got != c.want {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			again, err := NormalizeEmail(got)
			if err != nil || again != got {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; a normal address must be a fixed point", got, again, err)
			}
		})
	}
}

func TestNormalizeEmailRefuses(t *testing.T) {
	for _, c := range []struct{ name, in string }{
		{"empty", ""},
		{"blank", "   "},
		{"no at", "ann"},
		{"no domain", "ann@"},
		{"no local part", "@example.com"},
		{"display name", "Ann <ann@example.com>"},
		{"two addresses", "ann@example.com, bob@example.com"},
		{"line break", "ann\r\n@example.com"},
		{"too long", strings.Repeat("a", 250) + "@example.com"},
		{"too long once the domain is an A-label", strings.Repeat("a", 230) + "@" + strings.Repeat("ä", 20) + ".com"},
		{"huge input", strings.Repeat("a", 5000) + "@example.com"},
		{"invalid UTF-8", "ann\xff@example.com"},
		{"quoted local part", `"ann smith"@example.com`},
		{"IP literal", "a@[127.0.0.1]"},
		{"IPv6 literal", "a@[IPv6:::1]"},
		{"numeric domain", "a@127.0.0.1"},
		{"numeric top-level domain", "a@example.123"},
		{"dotless domain", "a@localhost"},
		{"fullwidth dotless domain", "a@ｌｏｃａｌｈｏｓｔ"},
		{"trailing dot", "a@example.com."},
		{"empty label", "a@example..com"},
		{"leading hyphen", "a@-example.com"},
		{"trailing hyphen", "a@example-.com"},
		{"underscore", "a@my_host.example.com"},
		{"invalid punycode", "a@xn--zz.com"},
		{"zero-width space in the local part", "you\u200b@example.com"},
		{"zero-width space in the domain", "you@exa\u200bmple.com"},
		{"zero-width joiner", "you@exa\u200dmple.com"},
		{"zero-width non-joiner", "yo\u200cu@example.com"},
		{"word joiner", "you\u2060@example.com"},
		{"byte order mark", "\ufeffyou@example.com"},
		{"soft hyphen", "you@exam\u00adple.com"},
		{"left-to-right mark", "you\u200e@example.com"},
		{"right-to-left override", "you\u202e@example.com"},
		{"bidi isolate", "you\u2066@example.com"},
		{"Hangul filler", "you\u3164@example.com"},
		{"variation selector", "you\ufe0f@example.com"},
		{"combining grapheme joiner", "you\u034f@example.com"},
		{"tag character", "you\U000e0041@example.com"},
		{"private use", "you\ue000@example.com"},
		{"NUL", "you\x00@example.com"},
		{"DEL", "you\x7f@example.com"},
		{"C1 control", "you\u0085@example.com"},
		{"inner space", "y ou@example.com"},
		{"no-break space inside", "you\u00a0x@example.com"},
		{"line separator", "you\u2028@example.com"},
		{"unassigned code point", "you\U0003ffff@example.com"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := NormalizeEmail(c.in)
			if !errors.Is(err, user.ErrInvalidEmail) {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; want user.ErrInvalidEmail", c.in, got, err)
			}
		})
	}
}

// Look-alike spellings of one mailbox normalise to one address, so they
// cannot register separate accounts.
func TestLookAlikeEmailsAreOneMailbox(t *testing.T) {
	for want, spellings := range map[string][]string{
		"you@example.com":        {"you@example.com", "YOU@example.com", "ＹＯＵ@example.com", "ｙｏｕ@ＥＸＡＭＰＬＥ.ＣＯＭ", "you＠example．com", " you@example.com "},
		"you@xn--exmple-cua.com": {"you@exämple.com", "you@xn--exmple-cua.com", "you@EXÄMPLE.com", "you@exa\u0308mple.com"},
	} {
		for _, s := range spellings {
			if got, err := NormalizeEmail(s); err != nil || got != want {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", s, got, err, want)
			}
		}
	}
}

// legacyNormalizeEmail is the rule addresses were stored by before NFKC
// and IDNA: trimmed, lower-cased, one bare address.
func legacyNormalizeEmail(s string) (string, bool) {
	n := strings.ToLower(strings.TrimSpace(s))
	if n == "" || len(n) > maxEmailLength {
		return "", false
	}
	a, err := mail.ParseAddress(n)
	if err != nil || a.Name != "" || a.Address != n {
		return "", false
	}
	return n, true
}

// plainStoredEmail is the shape docs/identity.md's check query looks for:
// an ASCII address whose domain is two or more host-name labels (letters,
// digits, inner hyphens, at most 63 bytes) and does not end in a numeric
// label, with no "xn--" label. Every address the old rule stored in this
// shape normalises to itself under the new one, so such accounts need no
// migration; the query lists the others for review.
var plainStoredEmail = regexp.MustCompile("^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

// plainStoredEmailFlagged adds the query's two further conditions.
func plainStoredEmailFlagged(s string) bool {
	return !plainStoredEmail.MatchString(s) || regexp.MustCompile(`\.[0-9]+$`).MatchString(s) ||
		regexp.MustCompile(`[@.]xn--`).MatchString(s)
}

// Every address the old rule accepted and the check query does not flag
// is a fixed point of the new rule, over a generated corpus of such
// addresses; and addresses the query flags are exactly the ones whose
// owners might log in differently now.
func TestStoredPlainEmailsNeedNoMigration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const atext = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-"
	const ldh = "abcdefghijklmnopqrstuvwxyz0123456789-"
	pick := func(set string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[rng.IntN(len(set))]
		}
		return string(b)
	}
	label := func() string {
		l := pick(ldh, 1+rng.IntN(12))
		return strings.Trim(l, "-") + pick("abcdefghij", 1)
	}
	checked := 0
	for range 20_000 {
		local := pick(atext, 1+rng.IntN(10))
		if rng.IntN(3) == 0 {
			local += "." + pick(atext, 1+rng.IntN(5))
		}
		domain := label()
		for range 1 + rng.IntN(3) {
			domain += "." + label()
		}
		addr := local + "@" + domain
		stored, ok := legacyNormalizeEmail(addr)
		if !ok || plainStoredEmailFlagged(stored) {
			continue
		}
		checked++
		if got, err := NormalizeEmail(stored); err != nil || got != stored {
			t.Fatalf("stored %q normalises to %q, %v: an unflagged address must be a fixed point", stored, got, err)
		}
	}
	if checked < 10_000 {
		t.Fatalf("only %d generated addresses were checked", checked)
	}

	// What the old rule stored and the query flags: each one now
	// normalises to something else or is refused.
	for _, stored := range []string{
		"ｙｏｕ@example.com", "you@exämple.com", "you@localhost", "you@[127.0.0.1]", "you@127.0.0.1",
		"you@my_host.example.com", "you@-bad.example.com", "you\u200b@example.com", "you@xn--zz.com",
	} {
		legacy, ok := legacyNormalizeEmail(stored)
		if !ok {
			t.Fatalf("the old rule refused %q; the case shows nothing", stored)
		}
		if !plainStoredEmailFlagged(legacy) {
			t.Errorf("the check query misses %q", legacy)
		}
		if got, err := NormalizeEmail(legacy); err == nil && got == legacy {
			t.Errorf("%q is a fixed point; it need not be flagged", legacy)
		}
	}
}

// FuzzNormalizeEmail checks that every address NormalizeEmail returns is
// one it returns unchanged, and never holds what it refuses in the input.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"ann@example.com", "ＹＯＵ@example.com", "you@exämple.com", "a@[127.0.0.1]",
		"you\u200b@example.com", "ﬁnn@straße.de", "İ@example.com", "ǅ@example.com", "a@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeEmail(s)
		if err != nil {
			return
		}
		again, err := NormalizeEmail(n)
		if err != nil || again != n {
			t.Fatalf("NormalizeEmail(%q) = %q, but NormalizeEmail(%q) = %q, %v", s, n, n, again, err)
		}
		if len(n) > maxEmailLength || strings.ContainsFunc(n, invisibleInEmail) {
			t.Fatalf("NormalizeEmail(%q) = %q", s, n)
		}
	})
}
