package sandbox

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cents formats an amount in cents as a decimal string with two places.
func cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// millis formats thousandths as a decimal string without trailing zeros.
func millis(m int64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	s := fmt.Sprintf("%s%d.%03d", sign, m/1000, m%1000)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

func money(c int64) wireMoney { return wireMoney{Value: cents(c), Currency: currency} }

func isoDate(d int) string { return dateOf(d).Format(time.DateOnly) }

func instant(u int64) string { return time.Unix(u, 0).UTC().Format(time.RFC3339) }

// nextBusinessDay returns the first Monday-to-Friday day after d.
func nextBusinessDay(d int) int {
	d++
	for d%7 >= 5 { // the epoch is a Monday
		d++
	}
	return d
}

// txnID is a transaction's stable id.
func (p *profile) txnID(a *account, d int, slot uint16) string {
	return fmt.Sprintf("txn_%016x", hash(saltID, p.seed, uint64(a.idx), uint64(d), uint64(slot)))
}

// render returns t, booked on day d in a, as the dialect shows it at now.
func (p *profile) render(a *account, d int, t *txn, now int64) wireTransaction {
	start := dayStart(d)
	_, posted := t.state(d, now)
	w := wireTransaction{
		ID: p.txnID(a, d, t.slot), AccountID: a.id, Status: "pending", Kind: kindNames[t.kind],
		Description: p.describe(t), Amount: money(t.auth), BookingDate: isoDate(d),
		AuthorizedAt: instant(start + int64(t.at)),
	}
	if posted {
		at := start + int64(t.at)
		if t.postAt != 0 {
			at = start + int64(t.postAt)
		}
		w.Status, w.Amount, w.PostedAt, w.ValueDate = "posted", money(t.final), instant(at), isoDate(dayOfUnix(at))
		if t.final != t.auth {
			m := money(t.auth)
			w.AuthorizedAmount = &m
		}
	}
	if t.merchant >= 0 {
		m := &merchantTables[t.table][t.merchant]
		w.Merchant = &wireMerchant{Name: m.name, Category: m.category, City: m.city}
	}
	if t.other >= 0 {
		w.CounterpartyAccountID = p.accounts[t.other].id
	}
	if t.kind == kTradeBuy || t.kind == kTradeSell {
		side := "buy"
		if t.milli < 0 {
			side = "sell"
		}
		w.ValueDate = isoDate(nextBusinessDay(d))
		w.Trade = &wireTrade{Symbol: instruments[t.sym].symbol, Side: side, Quantity: millis(t.milli),
			Price: cents(t.price), Commission: cents(t.commission), Fees: cents(t.fees)}
	}
	return w
}

// describe returns the statement line of t.
func (p *profile) describe(t *txn) string {
	if t.merchant >= 0 {
		m := &merchantTables[t.table][t.merchant]
		return fmt.Sprintf("%s #%d %s", strings.ToUpper(m.name), t.store, m.city)
	}
	other := func() string {
		o := p.accounts[t.other]
		return fmt.Sprintf("%s ...%s", strings.ToUpper(o.name), o.last4)
	}
	switch {
	case t.slot == slotPayroll:
		return "PAYROLL ACME CORP DIR DEP"
	case t.slot == slotPayout:
		return "CARD PROCESSOR PAYOUT"
	case t.slot == slotRent:
		return "PROPERTY MGMT RENT ONLINE PMT"
	case t.slot == slotUtilities:
		return "CITY POWER & LIGHT AUTOPAY"
	case t.slot == slotPhone:
		return "MOBILE CARRIER AUTOPAY"
	case t.slot == slotHold:
		return "GRAND HOTEL AUSTIN PRE-AUTHORIZATION"
	case t.kind == kTransferOut:
		return "ONLINE TRANSFER TO " + other()
	case t.kind == kTransferIn:
		return "ONLINE TRANSFER FROM " + other()
	case t.kind == kFee:
		return "MONTHLY MAINTENANCE FEE"
	case t.kind == kATM:
		return fmt.Sprintf("ATM WITHDRAWAL #%d AUSTIN TX", t.store)
	case t.kind == kInterest:
		return "INTEREST PAYMENT"
	case t.kind == kTradeBuy:
		return fmt.Sprintf("BOUGHT %s %s @ %s", millis(t.milli), instruments[t.sym].symbol, cents(t.price))
	case t.kind == kTradeSell:
		return fmt.Sprintf("SOLD %s %s @ %s", millis(-t.milli), instruments[t.sym].symbol, cents(t.price))
	case t.kind == kDividend:
		return "QUALIFIED DIVIDEND " + strings.ToUpper(instruments[t.sym].name)
	}
	return kindNames[t.kind]
}

// accountRecord returns a as the dialect shows it at now.
func (p *profile) accountRecord(a *account, now int64) wireAccount {
	cash, pending := p.balances(a, now)
	w := wireAccount{ID: a.id, Name: a.name, Product: a.product, NumberLast4: a.last4, Currency: currency,
		Status: "open", OpenedOn: isoDate(0)}
	switch a.role {
	case roleBrokerage, roleRetirement:
		var securities int64
		for _, pos := range p.positions(a, now) {
			securities += pos.value
		}
		c, s := cents(cash), cents(securities)
		w.Balances = wireBalances{Current: cents(cash + securities), Available: &c, Cash: &c, Securities: &s}
	default:
		avail := cents(cash + pending)
		w.Balances = wireBalances{Current: cents(cash), Available: &avail}
	}
	return w
}

// heldPosition is one position with its value in cents.
type heldPosition struct {
	sym          int
	milli, cost  int64
	price, value int64
}

// positions returns a's non-zero positions at now, valued at the day's price.
func (p *profile) positions(a *account, now int64) []heldPosition {
	var out []heldPosition
	today := max(dayOfUnix(now), 0)
	for _, sym := range a.instruments() {
		milli, cost := p.holding(a, sym, now)
		if milli == 0 {
			continue
		}
		px := price(sym, today)
		out = append(out, heldPosition{sym: sym, milli: milli, cost: cost, price: px, value: milli * px / 1000})
	}
	return out
}

// positionRecords returns a's positions as the dialect shows them.
func (p *profile) positionRecords(a *account, now int64) []wirePosition {
	out := []wirePosition{}
	for _, h := range p.positions(a, now) {
		in := &instruments[h.sym]
		avg := cents(h.cost * 1000 / h.milli)
		out = append(out, wirePosition{Symbol: in.symbol, Name: in.name, AssetClass: in.class,
			Quantity: millis(h.milli), Price: cents(h.price), CostBasisPerUnit: &avg, MarketValue: money(h.value)})
	}
	return out
}

// cursor is a position in an account's transactions, ordered by booking
// day, time and slot: a keyset, so a page boundary stays put when earlier
// transactions post or disappear between two calls.
type cursor struct {
	day  int
	at   int32
	slot uint16
}

func (c cursor) less(o cursor) bool {
	if c.day != o.day {
		return c.day < o.day
	}
	if c.at != o.at {
		return c.at < o.at
	}
	return c.slot < o.slot
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d:%d", c.day, c.at, c.slot))
}

func parseCursor(s string) (cursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 64 {
		return cursor{}, false
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 {
		return cursor{}, false
	}
	d, err1 := strconv.Atoi(parts[0])
	at, err2 := strconv.ParseInt(parts[1], 10, 32)
	slot, err3 := strconv.ParseUint(parts[2], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil {
		return cursor{}, false
	}
	return cursor{day: d, at: int32(at), slot: uint16(slot)}, true
}

// transactions returns up to limit of a's transactions booked on days
// first..last (inclusive) that exist at now, after the cursor when one is
// given, and the cursor of the next page when more exist. Days outside
// the history window and in the future hold nothing.
func (p *profile) transactions(a *account, now int64, first, last int, after *cursor, limit int) ([]wireTransaction, *cursor) {
	today := dayOfUnix(now)
	first = max(first, 0, today-historyDays)
	last = min(last, today)
	if after != nil {
		first = max(first, after.day)
	}
	var (
		out  []wireTransaction
		buf  = make([]txn, 0, 64)
		keys []cursor
	)
	for d := first; d <= last; d++ {
		buf = p.day(a, d, buf[:0])
		slices.SortFunc(buf, func(x, y txn) int {
			if x.at != y.at {
				return int(x.at - y.at)
			}
			return int(x.slot) - int(y.slot)
		})
		for i := range buf {
			t := &buf[i]
			if exists, _ := t.state(d, now); !exists {
				continue
			}
			k := cursor{day: d, at: t.at, slot: t.slot}
			if after != nil && !after.less(k) {
				continue
			}
			if len(out) == limit {
				next := keys[len(keys)-1]
				return out, &next
			}
			out = append(out, p.render(a, d, t, now))
			keys = append(keys, k)
		}
	}
	return out, nil
}
