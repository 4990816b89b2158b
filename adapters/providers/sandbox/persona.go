package sandbox

import (
	"strings"
	"time"
	"unicode"
)

// Persona is a behaviour of the sandbox chosen at authorisation, so that
// clients can reproduce a class of failure on purpose.
type Persona string

// The personas; docs/sandbox.md describes what each one does.
const (
	// PersonaDefault is a household with four accounts and ordinary tokens.
	PersonaDefault Persona = "default"
	// PersonaExpiring has tokens that expire early: access after a minute,
	// refresh ten minutes after the authorisation, then re-authorisation.
	PersonaExpiring Persona = "expiring"
	// PersonaFlaky fails data calls on a fixed rhythm: of every four calls,
	// the second answers 503 and the fourth 429 with Retry-After.
	PersonaFlaky Persona = "flaky"
	// PersonaLarge adds ten busy operating accounts: more than 100,000
	// transactions a year across its accounts.
	PersonaLarge Persona = "large"
)

// Personas lists every persona in the order the authorize page shows them.
var Personas = []Persona{PersonaDefault, PersonaExpiring, PersonaFlaky, PersonaLarge}

// personaDescriptions are the authorize page's explanations.
var personaDescriptions = map[Persona]string{
	PersonaDefault:  "Checking, savings, brokerage and retirement accounts with a year of history.",
	PersonaExpiring: "Access tokens last one minute and refresh stops after ten: the connection soon needs re-authorisation.",
	PersonaFlaky:    "Data calls fail on a fixed rhythm: the 2nd of every 4 answers 503, the 4th 429 with Retry-After.",
	PersonaLarge:    "Ten extra operating accounts with more than 100,000 transactions a year, for load.",
}

// Valid reports whether p is one of Personas.
func (p Persona) Valid() bool {
	_, ok := personaDescriptions[p]
	return ok
}

// PersonaForAlias maps a connection alias (or any login hint) to a persona:
// the first word of the alias, split at anything but letters and digits
// and compared without case, that names a persona other than the default
// chooses it; an alias naming none chooses PersonaDefault. So "Flaky
// test", "sandbox-large" and "my EXPIRING bank" choose flaky, large and
// expiring.
func PersonaForAlias(alias string) Persona {
	words := strings.FieldsFunc(alias, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		p := Persona(strings.ToLower(w))
		if p != PersonaDefault && p.Valid() {
			return p
		}
	}
	return PersonaDefault
}

// Token lifetimes of a persona.
type lifetimes struct {
	access  time.Duration
	refresh time.Duration // hard: counted from the authorisation, never extended
}

// Lifetimes of every persona but PersonaExpiring. Access tokens are short
// so that every client exercises refresh within a session.
const (
	accessTTL          = 5 * time.Minute
	refreshTTL         = 30 * 24 * time.Hour
	expiringAccessTTL  = time.Minute
	expiringRefreshTTL = 10 * time.Minute
	codeTTL            = 2 * time.Minute
	formTTL            = 15 * time.Minute
)

func (p Persona) lifetimes() lifetimes {
	if p == PersonaExpiring {
		return lifetimes{access: expiringAccessTTL, refresh: expiringRefreshTTL}
	}
	return lifetimes{access: accessTTL, refresh: refreshTTL}
}

// Flaky rhythm: of every flakyCycle authenticated data calls of one grant,
// the flakyUnavailable-th answers 503 and the flakyCycle-th 429, so a
// client that retries each failure once always gets through.
const (
	flakyCycle       = 4
	flakyUnavailable = 2
	flakyRetryAfter  = 2 * time.Second
)
