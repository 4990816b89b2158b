package sandbox

import (
	"testing"
	"time"
)

// yearCount counts what the generator books for every account of p in the
// year before now, without HTTP or JSON.
func yearCount(p *profile, now time.Time) int {
	n := 0
	buf := make([]txn, 0, 64)
	last := dayOf(now)
	for _, a := range p.accounts {
		for d := last - 364; d <= last; d++ {
			buf = p.day(a, d, buf[:0])
			for i := range buf {
				if ok, _ := buf[i].state(d, now.Unix()); ok {
					n++
				}
			}
		}
	}
	return n
}

// The large persona must feed an ingest benchmark of 100,000 transactions.
func TestLargePersonaHasOver100kTransactionsAYear(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	if n := yearCount(newProfile(SeedForUser("bench"), PersonaLarge), now); n < 100_000 {
		t.Fatalf("%d transactions in a year, want at least 100,000", n)
	}
	if n := yearCount(newProfile(SeedForUser("bench"), PersonaDefault), now); n < 600 || n > 2000 {
		t.Fatalf("%d transactions in a year of the default persona", n)
	}
}

// Whatever the user, balances stay plausible for years: no account's cash
// ever falls below zero, and every price stays positive.
func TestBalancesStayPlausible(t *testing.T) {
	end := dayOf(time.Date(2028, 12, 31, 0, 0, 0, 0, time.UTC))
	check := func(p *profile, a *account) {
		cash, lowest := a.opening, a.opening
		buf := make([]txn, 0, 64)
		for d := 0; d <= end; d++ {
			buf = p.day(a, d, buf[:0])
			for i := range buf {
				if buf[i].cancelAt == 0 {
					cash += buf[i].final
				}
			}
			lowest = min(lowest, cash)
		}
		if lowest < 0 {
			t.Errorf("seed %x, %s: cash fell to %s", p.seed, a.name, cents(lowest))
		}
	}
	for seed := range uint64(24) {
		p := newProfile(mix(seed), PersonaDefault)
		for _, a := range p.accounts {
			check(p, a)
		}
	}
	large := newProfile(mix(99), PersonaLarge)
	for _, a := range large.accounts[householdAccounts:] {
		check(large, a)
	}
	for sym := range instruments {
		for d := 0; d <= end; d += 7 {
			if price(sym, d) <= 0 {
				t.Fatalf("%s: price %d on day %d", instruments[sym].symbol, price(sym, d), d)
			}
		}
	}
}

// Ids are unique within an account over years, so a sync never merges two
// transactions.
func TestTransactionIDsAreUnique(t *testing.T) {
	p := newProfile(SeedForUser("ids"), PersonaDefault)
	for _, a := range p.accounts {
		seen := map[string]bool{}
		buf := make([]txn, 0, 64)
		for d := 0; d < 3*365; d++ {
			buf = p.day(a, d, buf[:0])
			for i := range buf {
				id := p.txnID(a, d, buf[i].slot)
				if seen[id] {
					t.Fatalf("%s: id %s twice", a.name, id)
				}
				seen[id] = true
			}
		}
	}
}
