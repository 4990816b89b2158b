package sandbox

import (
	"fmt"
	"time"
)

// epoch is day 0 of every sandbox ledger: balances are the opening balance
// plus everything since, so they move exactly with the transactions.
var epoch = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// historyDays is how far back the institution serves transactions, like a
// bank that keeps about thirteen months online.
const historyDays = 400

const secondsPerDay = 24 * 60 * 60

// dayOf returns t's day index since the epoch (negative before it).
func dayOf(t time.Time) int { return dayOfUnix(t.Unix()) }

// dayOfUnix returns the day index of Unix second u.
func dayOfUnix(u int64) int {
	s := u - epoch.Unix()
	if s < 0 {
		return int((s - secondsPerDay + 1) / secondsPerDay)
	}
	return int(s / secondsPerDay)
}

// dayStart returns the Unix second at which day d begins (UTC).
func dayStart(d int) int64 { return epoch.Unix() + int64(d)*secondsPerDay }

// dateOf returns day d as a calendar date at midnight UTC.
func dateOf(d int) time.Time { return time.Unix(dayStart(d), 0).UTC() }

// role is what an account does in the household's story.
type role uint8

const (
	roleChecking role = iota
	roleSavings
	roleBrokerage
	roleRetirement
	roleOperating
)

// account is one account of a profile.
type account struct {
	idx     int
	role    role
	id      string
	name    string
	product string
	last4   string
	// opening is the cash balance at the epoch, in cents.
	opening int64
	// holdings are the initial positions of an investment account.
	holdings []position
	// trades are the instruments random lots are bought in.
	trades []int
	// autoInvest are the instruments the monthly contribution buys, in turn.
	autoInvest []int
}

// position is an instrument and a quantity in thousandths of a unit.
type position struct {
	sym   int
	milli int64
}

// profile is the sandbox user's household: its accounts and the amounts
// that recur. It is a pure function of the seed and the persona.
type profile struct {
	seed     uint64
	persona  Persona
	accounts []*account
	// Per paycheck, per month: cents.
	salary, rent, utilitiesBase, toBrokerage, toRetirement int64
	// payWeek (0 or 1) picks which Fridays are paydays; holdPhase (0–8)
	// the days a hotel pre-authorisation appears and is later cancelled.
	payWeek, holdPhase int
}

// Account indexes of the household accounts every persona has.
const (
	idxChecking = iota
	idxSavings
	idxBrokerage
	idxRetirement
	householdAccounts
)

// operatingAccounts is how many busy accounts PersonaLarge adds.
const operatingAccounts = 10

func newProfile(seed uint64, persona Persona) *profile {
	r := stream{hash(saltProfile, seed)}
	p := &profile{seed: seed, persona: persona}
	// Of the monthly pay, 28% goes to rent and 8% to the brokerage
	// account; bills and about $2,900 of card and cash spending take most
	// of the rest, and the monthly sweep saves what is left.
	p.salary = r.between(3100, 3500) * 100
	monthly := p.salary * 26 / 12
	p.rent = monthly * 28 / 100 / 100 * 100
	p.toBrokerage = monthly * 8 / 100 / 1000 * 1000
	p.utilitiesBase = r.between(70, 110) * 100
	p.toRetirement = 50000
	p.payWeek = int(r.intn(2))
	p.holdPhase = int(r.intn(9))

	add := func(ro role, name, product string, opening int64) *account {
		a := &account{idx: len(p.accounts), role: ro, name: name, product: product, opening: opening}
		h := hash(saltAccount, seed, uint64(a.idx))
		a.id = fmt.Sprintf("acc_%012x", h>>16)
		a.last4 = fmt.Sprintf("%04d", h%10000)
		p.accounts = append(p.accounts, a)
		return a
	}
	add(roleChecking, "Everyday Checking", "checking", r.between(6000, 10000)*100)
	add(roleSavings, "High-Yield Savings", "savings", r.between(8000, 20000)*100)
	// Enough cash for the few lots bought by hand that are open at once.
	b := add(roleBrokerage, "Individual Brokerage", "brokerage", r.between(15000, 25000)*100)
	for _, s := range []int{symAAPL, symMSFT, symVTI, symSCHD, symBND} {
		b.holdings = append(b.holdings, position{sym: s, milli: r.between(10, 60) * 1000})
	}
	b.trades = []int{symAAPL, symMSFT, symSCHD}
	b.autoInvest = []int{symVTI, symSCHD, symBND}
	ira := add(roleRetirement, "Roth IRA", "roth_ira", r.between(100, 500)*100)
	for _, s := range []int{symVFIAX, symVTIAX, symVBTLX} {
		ira.holdings = append(ira.holdings, position{sym: s, milli: r.between(20, 120)*1000 + r.intn(1000)})
	}
	ira.autoInvest = []int{symVFIAX, symVTIAX, symVBTLX}
	if persona == PersonaLarge {
		for i := 1; i <= operatingAccounts; i++ {
			add(roleOperating, fmt.Sprintf("Operating Account %02d", i), "business_checking", r.between(20000, 60000)*100)
		}
	}
	return p
}

// accountByID returns the profile's account with id, or nil.
func (p *profile) accountByID(id string) *account {
	for _, a := range p.accounts {
		if a.id == id {
			return a
		}
	}
	return nil
}

// civil is a day's calendar facts the generators need.
type civil struct {
	year         int
	month        time.Month
	dom, lastDOM int
	weekday      time.Weekday
	monthIndex   int // months since the epoch's month
}

func civilOf(d int) civil {
	t := dateOf(d)
	y, m, dom := t.Date()
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return civil{year: y, month: m, dom: dom, lastDOM: last, weekday: t.Weekday(), monthIndex: (y-epoch.Year())*12 + int(m) - 1}
}
