package sandbox

import (
	"math"
	"time"
)

// txnKind is a transaction's kind in the sandbox dialect.
type txnKind uint8

const (
	kACHCredit txnKind = iota + 1
	kCardPurchase
	kBillPayment
	kTransferOut
	kTransferIn
	kInterest
	kFee
	kATM
	kTradeBuy
	kTradeSell
	kDividend
)

// kindNames are the dialect's names of the kinds.
var kindNames = [...]string{
	kACHCredit: "ach_credit", kCardPurchase: "card_purchase", kBillPayment: "bill_payment",
	kTransferOut: "transfer_out", kTransferIn: "transfer_in", kInterest: "interest_credit",
	kFee: "service_fee", kATM: "atm_withdrawal", kTradeBuy: "trade_buy", kTradeSell: "trade_sell",
	kDividend: "dividend",
}

// Slots identify a transaction within its account and day; an id is a
// hash of (seed, account, day, slot), so ids are stable across calls.
const (
	slotPayroll uint16 = iota + 1
	slotRent
	slotUtilities
	slotPhone
	slotSweep
	slotToBrokerage
	slotToRetirement
	_ // retired
	slotFee
	slotATM
	slotHold
	slotInterest
	slotAutoInvest
	slotLotBuy
	slotLotSell
	slotPayout
	slotDividend = 20  // + instrument index
	slotCard     = 100 // + purchase number
)

// neverPosts is the postAt of a hold that is cancelled instead.
const neverPosts = math.MaxInt32

// txn is one transaction as the generator sees it: integers only (cents,
// thousandths of a unit, seconds), rendered into the dialect on demand.
// Times are seconds after the midnight of the transaction's booking day.
type txn struct {
	kind     txnKind
	table    uint8 // merchant table
	slot     uint16
	merchant int16 // index into the table, -1 for none
	store    uint16
	sym      int8 // instrument, -1 for none
	other    int8 // counterpart account of a transfer, -1 for none
	// at is when it happened; postAt when it posts (0: at once); cancelAt
	// when a pending hold disappears (0: never).
	at, postAt, cancelAt int32
	// auth is the amount while pending, final once posted.
	auth, final int64
	// Trades: signed quantity in thousandths, price, commission and fees.
	milli, price, commission, fees int64
}

// state says whether t (booked on day d) exists at Unix second now, and
// whether it has posted by then.
func (t *txn) state(d int, now int64) (exists, posted bool) {
	start := dayStart(d)
	if now < start+int64(t.at) {
		return false, false
	}
	if t.cancelAt != 0 && now >= start+int64(t.cancelAt) {
		return false, false
	}
	return true, t.postAt == 0 || now >= start+int64(t.postAt)
}

// Times of day, in seconds, of the scheduled transactions: fixed, so both
// sides of a transfer and the holdings agree on them.
const (
	hour           = 3600
	atTransfer     = 9 * hour
	atAutoInvest   = 14*hour + 30*60
	atLotBuy       = 11 * hour
	atLotSell      = 15 * hour
	atDividend     = 7 * hour
	atMonthEnd     = 23 * hour
	lotHoldingDays = 28
)

// day appends account a's transactions booked on day d to out, in no
// particular order. It is a pure function of the profile, a and d.
func (p *profile) day(a *account, d int, out []txn) []txn {
	if d < 0 {
		return out
	}
	c := civilOf(d)
	r := stream{hash(saltDay, p.seed, uint64(a.idx), uint64(d))}
	switch a.role {
	case roleChecking:
		return p.checkingDay(d, c, &r, out, true)
	case roleSavings:
		return p.savingsDay(a, c, out)
	case roleBrokerage, roleRetirement:
		return p.investmentDay(a, d, c, out)
	case roleOperating:
		return p.operatingDay(c, &r, out)
	}
	return out
}

func simple(kind txnKind, slot uint16, at int64, amount int64) txn {
	return txn{kind: kind, slot: slot, merchant: -1, sym: -1, other: -1, at: int32(at), auth: amount, final: amount}
}

func transfer(kind txnKind, slot uint16, other int, amount int64) txn {
	t := simple(kind, slot, atTransfer, amount)
	t.other = int8(other)
	return t
}

// checkingDay generates the checking account's day; the monthly sweep to
// savings only when withSweep, because the sweep is computed from the
// month before without it.
func (p *profile) checkingDay(d int, c civil, r *stream, out []txn, withSweep bool) []txn {
	if c.weekday == time.Friday && (d/7+p.payWeek)%2 == 0 {
		pay := p.salary * int64(100+3*(c.year-epoch.Year())) / 100
		out = append(out, simple(kACHCredit, slotPayroll, 6*hour+r.intn(1800), pay))
	}
	switch c.dom {
	case 1:
		out = append(out, simple(kBillPayment, slotRent, 8*hour, -p.rent))
	case 2:
		if withSweep {
			if amount := p.sweep(c.monthIndex); amount > 0 {
				out = append(out, transfer(kTransferOut, slotSweep, idxSavings, -amount))
			} else if amount < 0 {
				out = append(out, transfer(kTransferIn, slotSweep, idxSavings, -amount))
			}
		}
	case 5:
		out = append(out, transfer(kTransferOut, slotToBrokerage, idxBrokerage, -p.toBrokerage))
	case 12:
		bill := p.utilitiesBase + r.intn(4000)
		if c.month >= time.June && c.month <= time.September {
			bill += 6000 // air conditioning
		}
		out = append(out, simple(kBillPayment, slotUtilities, 7*hour, -bill))
	case 18:
		out = append(out, simple(kBillPayment, slotPhone, 7*hour, -6500))
	case 20:
		out = append(out, transfer(kTransferOut, slotToRetirement, idxRetirement, -p.toRetirement))
	}
	if c.dom == c.lastDOM {
		out = append(out, simple(kFee, slotFee, atMonthEnd, -500))
	}
	if r.intn(14) == 0 {
		t := simple(kATM, slotATM, r.between(12*hour, 20*hour), -[]int64{4000, 6000, 10000, 20000}[r.intn(4)])
		t.store = uint16(r.between(1000, 9999))
		out = append(out, t)
	}
	if (d+p.holdPhase)%9 == 0 {
		// A hotel's pre-authorisation: pending for two days, then cancelled.
		t := simple(kCardPurchase, slotHold, 15*hour+r.intn(hour), -(15000 + 5000*r.intn(3)))
		t.postAt = neverPosts
		t.cancelAt = 2*secondsPerDay + 3*hour
		out = append(out, t)
	}
	n := r.intn(4) // 1.5 purchases a day
	for i := range n {
		out = append(out, card(0, slotCard+uint16(i), r))
	}
	return out
}

// checkingSurplus is what checking keeps of each month's gain; the sweep
// moves the rest to savings, so the checking balance stays near its
// opening balance whatever the month's spending was.
const checkingSurplus = 15000

// sweep returns what moves from checking to savings on the 2nd of month m
// (since the epoch's month), negative when savings tops checking up: the
// month before's net flow of checking, sweep aside, less the surplus, in
// whole dollars.
func (p *profile) sweep(m int) int64 {
	if m <= 0 {
		return 0
	}
	first := dayOf(time.Date(epoch.Year(), epoch.Month()+time.Month(m-1), 1, 0, 0, 0, 0, time.UTC))
	end := dayOf(time.Date(epoch.Year(), epoch.Month()+time.Month(m), 1, 0, 0, 0, 0, time.UTC))
	var net int64
	buf := make([]txn, 0, 16)
	for d := first; d < end; d++ {
		r := stream{hash(saltDay, p.seed, idxChecking, uint64(d))}
		buf = p.checkingDay(d, civilOf(d), &r, buf[:0], false)
		for i := range buf {
			if buf[i].cancelAt == 0 {
				net += buf[i].final
			}
		}
	}
	return (net - checkingSurplus) / 100 * 100
}

// savingsAPYBps is the savings account's yearly rate in basis points.
const savingsAPYBps = 410

// typicalSweep is about what a month's sweep moves to savings, in cents.
const typicalSweep = 80000

func (p *profile) savingsDay(a *account, c civil, out []txn) []txn {
	if c.dom == 2 {
		if amount := p.sweep(c.monthIndex); amount > 0 {
			out = append(out, transfer(kTransferIn, slotSweep, idxChecking, amount))
		} else if amount < 0 {
			out = append(out, transfer(kTransferOut, slotSweep, idxChecking, amount))
		}
	}
	if c.dom == c.lastDOM {
		// Interest on an estimate of the month's balance (the opening
		// balance and a typical sweep a month): the exact balance would
		// need every earlier day, and a statement line needs no more.
		principal := a.opening + typicalSweep*int64(c.monthIndex+1)
		out = append(out, simple(kInterest, slotInterest, atMonthEnd+30*60, principal*savingsAPYBps/12/10000))
	}
	return out
}

func (p *profile) operatingDay(c civil, r *stream, out []txn) []txn {
	// The day's card takings slightly exceed its ~$1,775 of purchases.
	out = append(out, simple(kACHCredit, slotPayout, 5*hour+r.intn(hour), r.between(170000, 200000)))
	if c.dom == c.lastDOM {
		out = append(out, simple(kFee, slotFee, atMonthEnd, -1500))
	}
	n := r.between(25, 35)
	for i := range n {
		out = append(out, card(1, slotCard+uint16(i), r))
	}
	return out
}

// card returns a card purchase at a merchant of table tab: pending for one
// to three days, then posted, sometimes for another amount (a tip, a fuel
// pump's hold replaced by the real fill).
func card(tab int, slot uint16, r *stream) txn {
	mi := pickMerchant(tab, r)
	m := &merchantTables[tab][mi]
	amount := r.between(m.min, m.max)
	t := txn{kind: kCardPurchase, table: uint8(tab), slot: slot, merchant: int16(mi), sym: -1, other: -1,
		store: uint16(r.between(1000, 9999)), at: int32(r.between(7*hour, 22*hour)), auth: -amount, final: -amount}
	t.postAt = int32(r.between(1, 3)*secondsPerDay + r.between(3*hour, 6*hour))
	if m.tip {
		t.final = -(amount + amount*r.between(15, 22)/100)
	}
	if m.preauth > 0 {
		t.auth = -m.preauth
	}
	return t
}

func (p *profile) investmentDay(a *account, d int, c civil, out []txn) []txn {
	contribution, slot := p.toBrokerage, slotToBrokerage
	if a.role == roleRetirement {
		contribution, slot = p.toRetirement, slotToRetirement
	}
	if c.dom == contributionDay(a) {
		out = append(out, transfer(kTransferIn, slot, idxChecking, contribution))
	}
	if ai, ok := p.autoInvest(a, c.monthIndex); ok && ai.day == d {
		out = append(out, trade(kTradeBuy, slotAutoInvest, atAutoInvest, ai.sym, ai.milli, ai.price, ai.commission))
	}
	if l, ok := p.lotOn(a, d); ok {
		out = append(out, trade(kTradeBuy, slotLotBuy, atLotBuy, l.sym, l.milli, price(l.sym, d), lotCommission))
	}
	if l, ok := p.lotOn(a, d-lotHoldingDays); ok {
		out = append(out, trade(kTradeSell, slotLotSell, atLotSell, l.sym, -l.milli, price(l.sym, d), lotCommission))
	}
	if c.dom == 15 && c.month%3 == 0 {
		for _, sym := range a.instruments() {
			if instruments[sym].dividend == 0 {
				continue
			}
			held, _ := p.holding(a, sym, dayStart(d)+atDividend)
			if amount := held * instruments[sym].dividend / 1000; amount > 0 {
				t := simple(kDividend, slotDividend+uint16(sym), atDividend, amount)
				t.sym = int8(sym)
				out = append(out, t)
			}
		}
	}
	return out
}

// Commissions in cents: the monthly automatic investment and a lot bought
// or sold by hand in the brokerage account; the retirement account's
// funds trade without commission.
const (
	autoInvestCommission = 100
	lotCommission        = 495
)

// trade returns a buy (milli > 0) or sell (milli < 0) of sym at px; a sale
// also pays the SEC's transaction fee of $27.80 per million of proceeds.
func trade(kind txnKind, slot uint16, at int64, sym int, milli, px, commission int64) txn {
	gross := abs(milli) * px / 1000
	t := txn{kind: kind, slot: slot, merchant: -1, sym: int8(sym), other: -1, at: int32(at),
		milli: milli, price: px, commission: commission}
	if milli < 0 {
		t.fees = max((gross*278+9_999_999)/10_000_000, 1)
		t.final = gross - commission - t.fees
	} else {
		t.final = -gross - commission
	}
	t.auth = t.final
	return t
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// contributionDay is the day of the month on which checking pays into a.
func contributionDay(a *account) int {
	if a.role == roleRetirement {
		return 20
	}
	return 5
}

// autoInvestment is one month's automatic purchase.
type autoInvestment struct {
	day                      int
	sym                      int
	milli, price, commission int64
}

// autoInvest returns the automatic purchase of month m (since the epoch's
// month): on the first business day on or after the 10th (brokerage:
// whole units, commission) or the 21st (retirement: fractional units).
func (p *profile) autoInvest(a *account, m int) (autoInvestment, bool) {
	if len(a.autoInvest) == 0 || m < 0 {
		return autoInvestment{}, false
	}
	from, budget, commission := 10, p.toBrokerage*9/10, int64(autoInvestCommission)
	if a.role == roleRetirement {
		from, budget, commission = 21, p.toRetirement, 0
	}
	t := time.Date(epoch.Year(), epoch.Month()+time.Month(m), from, 0, 0, 0, 0, time.UTC)
	switch t.Weekday() {
	case time.Saturday:
		t = t.AddDate(0, 0, 2)
	case time.Sunday:
		t = t.AddDate(0, 0, 1)
	}
	d := dayOf(t)
	sym := a.autoInvest[m%len(a.autoInvest)]
	px := price(sym, d)
	milli := budget * 1000 / px
	if a.role != roleRetirement {
		milli = milli / 1000 * 1000
	}
	if milli == 0 {
		return autoInvestment{}, false
	}
	return autoInvestment{day: d, sym: sym, milli: milli, price: px, commission: commission}, true
}

// lot is a position bought by hand on one day and sold lotHoldingDays later.
type lot struct {
	sym   int
	milli int64
}

// lotOn returns the lot a's owner buys on day d, if any: on about one
// business day in twelve, one to five units of one of a.trades.
func (p *profile) lotOn(a *account, d int) (lot, bool) {
	if len(a.trades) == 0 || d < 0 || d%7 >= 5 { // the epoch is a Monday
		return lot{}, false
	}
	h := hash(saltLot, p.seed, uint64(a.idx), uint64(d))
	if h%12 != 0 {
		return lot{}, false
	}
	return lot{sym: a.trades[(h>>8)%uint64(len(a.trades))], milli: int64(1+(h>>16)%5) * 1000}, true
}

// instruments lists every instrument a may hold, without duplicates.
func (a *account) instruments() []int {
	var out []int
	seen := map[int]bool{}
	add := func(s int) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, h := range a.holdings {
		add(h.sym)
	}
	for _, s := range a.autoInvest {
		add(s)
	}
	for _, s := range a.trades {
		add(s)
	}
	return out
}

// holding returns a's quantity of sym (thousandths) held at Unix second t
// and what it cost: the initial position (bought at the epoch's price),
// every automatic purchase made by t and the lots open at t.
func (p *profile) holding(a *account, sym int, t int64) (milli, cost int64) {
	for _, h := range a.holdings {
		if h.sym == sym {
			milli += h.milli
			cost += h.milli * price(sym, 0) / 1000
		}
	}
	today := dayOfUnix(t)
	if today >= 0 {
		for m := 0; m <= civilOf(today).monthIndex; m++ {
			if ai, ok := p.autoInvest(a, m); ok && ai.sym == sym && dayStart(ai.day)+atAutoInvest <= t {
				milli += ai.milli
				cost += ai.milli * ai.price / 1000
			}
		}
	}
	for b := today - lotHoldingDays; b <= today; b++ {
		l, ok := p.lotOn(a, b)
		if !ok || l.sym != sym {
			continue
		}
		if dayStart(b)+atLotBuy <= t && t < dayStart(b+lotHoldingDays)+atLotSell {
			milli += l.milli
			cost += l.milli * price(sym, b) / 1000
		}
	}
	return milli, cost
}

// balances returns a's cash at Unix second now (the opening balance plus
// every posted transaction) and the sum of its pending transactions.
func (p *profile) balances(a *account, now int64) (cash, pending int64) {
	cash = a.opening
	buf := make([]txn, 0, 64)
	for d := 0; d <= dayOfUnix(now); d++ {
		buf = p.day(a, d, buf[:0])
		for i := range buf {
			switch exists, posted := buf[i].state(d, now); {
			case !exists:
			case posted:
				cash += buf[i].final
			default:
				pending += buf[i].auth
			}
		}
	}
	return cash, pending
}
