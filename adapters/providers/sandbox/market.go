package sandbox

import "math"

// instrument is a security the sandbox's investment accounts hold.
type instrument struct {
	symbol, name, class string
	// base is the price in cents on the epoch; trendBps the yearly drift in
	// basis points; amp the amplitude of a slow wave of period days.
	base, trendBps, amp, period int64
	// dividend is paid per unit each quarter, in cents; 0 for none.
	dividend int64
}

// instruments are the securities of every investment account; indexes
// into this table are stable (they seed prices and ids).
var instruments = []instrument{
	{symbol: "AAPL", name: "Apple Inc.", class: "equity", base: 18500, trendBps: 900, amp: 1200, period: 173, dividend: 24},
	{symbol: "MSFT", name: "Microsoft Corporation", class: "equity", base: 37000, trendBps: 1100, amp: 900, period: 211, dividend: 75},
	{symbol: "VTI", name: "Vanguard Total Stock Market ETF", class: "etf", base: 23500, trendBps: 800, amp: 700, period: 241, dividend: 90},
	{symbol: "SCHD", name: "Schwab U.S. Dividend Equity ETF", class: "etf", base: 7600, trendBps: 400, amp: 500, period: 197, dividend: 60},
	{symbol: "BND", name: "Vanguard Total Bond Market ETF", class: "etf", base: 7250, trendBps: 100, amp: 250, period: 301, dividend: 61},
	{symbol: "VFIAX", name: "Vanguard 500 Index Fund Admiral Shares", class: "mutual_fund", base: 43000, trendBps: 850, amp: 650, period: 229, dividend: 160},
	{symbol: "VTIAX", name: "Vanguard Total International Stock Index Fund Admiral Shares", class: "mutual_fund", base: 3000, trendBps: 500, amp: 800, period: 263, dividend: 25},
	{symbol: "VBTLX", name: "Vanguard Total Bond Market Index Fund Admiral Shares", class: "mutual_fund", base: 980, trendBps: 100, amp: 200, period: 317, dividend: 9},
}

// Instrument indexes by role.
const (
	symAAPL = iota
	symMSFT
	symVTI
	symSCHD
	symBND
	symVFIAX
	symVTIAX
	symVBTLX
)

// sineTable holds sin(2πi/256) in basis points, computed once and rounded,
// so prices use integer arithmetic only and are identical on every
// architecture.
var sineTable = func() (t [256]int64) {
	for i := range t {
		t[i] = int64(math.Round(10000 * math.Sin(2*math.Pi*float64(i)/256)))
	}
	return t
}()

// price returns sym's price in cents at the close of day d (days since the
// epoch): a drift, a slow wave and a daily wobble of at most ±1%.
func price(sym, d int) int64 {
	in := &instruments[sym]
	dd := int64(d)
	phase := int64(sym) * 37
	wave := in.amp * sineTable[((dd*256)/in.period+phase)&255] / 10000
	noise := int64(hash(saltPrice, uint64(sym), uint64(d))%201) - 100
	bps := 10000 + in.trendBps*dd/365 + wave + noise
	if bps < 1000 {
		bps = 1000
	}
	return max(in.base*bps/10000, 1)
}
