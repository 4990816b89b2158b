package schwabtest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // New York dates on any host

	"github.com/shopspring/decimal"
)

// TransactionTypes are the types the transaction search knows.
var TransactionTypes = []string{
	"TRADE", "RECEIVE_AND_DELIVER", "DIVIDEND_OR_INTEREST", "ACH_RECEIPT", "ACH_DISBURSEMENT",
	"CASH_RECEIPT", "CASH_DISBURSEMENT", "ELECTRONIC_FUND", "WIRE_OUT", "WIRE_IN", "JOURNAL",
	"MEMORANDUM", "MARGIN_CALL", "MONEY_MARKET", "SMA_ADJUSTMENT",
}

// account is one securities account of the fake.
type account struct {
	number     string
	base       map[string]any // the securitiesAccount without positions
	positions  []json.RawMessage
	aggregated map[string]any
}

// envelope is the account as GET /accounts answers it: with positions
// when asked, with the aggregatedBalance sibling in the list.
func (a *account) envelope(positions, aggregated bool) json.RawMessage {
	sa := maps.Clone(a.base)
	if positions {
		sa["positions"] = a.positions
	}
	env := map[string]any{"securitiesAccount": sa}
	if aggregated && a.aggregated != nil {
		env["aggregatedBalance"] = a.aggregated
	}
	b, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	return b
}

// storedTx is one transaction record, kept as the raw JSON the search
// answers, with what the search filters on.
type storedTx struct {
	id      int64
	at      time.Time
	typ     string
	symbols []string
	raw     json.RawMessage
}

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

// newYorkDate is t's New York calendar date at midnight UTC.
func newYorkDate(t time.Time) time.Time {
	y, m, d := t.In(newYork).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Timestamp forms Schwab uses, rotated through the generated records.
var timeFormats = []string{
	"2006-01-02T15:04:05-0700",      // 2024-04-04T15:56:07+0000, the common one
	"2006-01-02T15:04:05.000Z07:00", // 2024-04-04T15:56:07.000Z
	"2006-01-02T15:04:05-07:00",     // 2024-04-04T15:56:07+00:00
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

func num(s string) json.Number { return json.Number(decimal.RequireFromString(s).String()) }

func dnum(d decimal.Decimal) json.Number { return json.Number(d.String()) }

// seed builds the deterministic accounts and a year of transactions ending
// the New York day before now.
func (f *Fake) seed(now time.Time) {
	f.accounts = []*account{cashAccount(), marginAccount()}
	today := newYorkDate(now)
	for i := 360; i >= 1; i-- {
		y, m, d := today.AddDate(0, 0, -i).Date()
		day := func(h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, newYork) }
		f.seedCashDay(i, day)
		f.seedMarginDay(i, day)
	}
}

func cashAccount() *account {
	return &account{
		number: CashAccountNumber,
		base: map[string]any{
			"type": "CASH", "accountNumber": CashAccountNumber, "roundTrips": 0, "isDayTrader": false,
			"isClosingOnlyRestricted": false, "pfcbFlag": false,
			"initialBalances": map[string]any{
				"accruedInterest": num("0"), "cashAvailableForTrading": num("1480.33"), "cashAvailableForWithdrawal": num("1480.33"),
				"cashBalance": num("1520.33"), "bondValue": num("0"), "cashReceipts": num("0"), "liquidationValue": num("25790.12"),
				"longOptionMarketValue": num("0"), "longStockValue": num("24269.79"), "moneyMarketFund": num("0"),
				"mutualFundValue": num("0"), "shortOptionMarketValue": num("0"), "shortStockValue": num("0"),
				"isInCall": false, "unsettledCash": num("40"), "cashDebitCallValue": num("0"), "pendingDeposits": num("0"),
				"accountValue": num("25790.12"),
			},
			"currentBalances": map[string]any{
				"accruedInterest": num("0"), "cashBalance": num("1520.33"), "cashReceipts": num("0"),
				"longOptionMarketValue": num("0"), "liquidationValue": num("25890.12"), "longMarketValue": num("24369.79"),
				"moneyMarketFund": num("0"), "savings": num("0"), "shortMarketValue": num("0"), "pendingDeposits": num("0"),
				"mutualFundValue": num("2411.5"), "bondValue": num("0"), "shortOptionMarketValue": num("0"),
				"cashAvailableForTrading": num("1480.33"), "cashAvailableForWithdrawal": num("1480.33"), "cashCall": num("0"),
				"longNonMarginableMarketValue": num("1520.33"), "totalCash": num("1520.33"), "cashDebitCallValue": num("0"),
				"unsettledCash": num("40"),
			},
			"projectedBalances": map[string]any{"cashAvailableForTrading": num("1480.33"), "cashAvailableForWithdrawal": num("1480.33")},
		},
		positions: []json.RawMessage{
			// EQUITY in positions may lack a description.
			json.RawMessage(`{"shortQuantity":0.0,"averagePrice":150.1234,"currentDayProfitLoss":-12.5,"currentDayProfitLossPercentage":-0.15,"longQuantity":50.0,"settledLongQuantity":50.0,"settledShortQuantity":0.0,"instrument":{"assetType":"EQUITY","cusip":"037833100","symbol":"AAPL","netChange":-0.25},"marketValue":8479.0,"maintenanceRequirement":0.0,"averageLongPrice":150.1234,"taxLotAverageLongPrice":150.1234,"longOpenProfitLoss":973.83,"previousSessionLongQuantity":50.0,"currentDayCost":0.0}`),
			// ETFs are COLLECTIVE_INVESTMENT; settled can exceed long.
			json.RawMessage(`{"shortQuantity":0.0,"averagePrice":76.5,"currentDayProfitLoss":3.6,"currentDayProfitLossPercentage":0.04,"longQuantity":120.0,"settledLongQuantity":130.0,"settledShortQuantity":0.0,"instrument":{"assetType":"COLLECTIVE_INVESTMENT","cusip":"808524797","symbol":"SCHD","description":"SCHWAB US DIVIDEND EQUITY ETF","netChange":0.03,"type":"EXCHANGE_TRADED_FUND"},"marketValue":9426.0,"maintenanceRequirement":0.0,"averageLongPrice":76.5,"longOpenProfitLoss":246.0,"previousSessionLongQuantity":120.0,"currentDayCost":0.0}`),
			json.RawMessage(`{"shortQuantity":0.0,"averagePrice":95.12,"currentDayProfitLoss":1.1,"longQuantity":25.5,"settledLongQuantity":25.5,"settledShortQuantity":0.0,"instrument":{"assetType":"MUTUAL_FUND","cusip":"808509855","symbol":"SWTSX","description":"SCHWAB TOTAL STOCK MARKET INDEX","type":"NO_LOAD_TAXABLE"},"marketValue":2411.5,"maintenanceRequirement":0.0,"previousSessionLongQuantity":25.5,"currentDayCost":0.0}`),
			// A closed position still listed: quantity zero.
			json.RawMessage(`{"shortQuantity":0.0,"averagePrice":0.0,"currentDayProfitLoss":0.0,"longQuantity":0.0,"settledLongQuantity":0.0,"settledShortQuantity":0.0,"instrument":{"assetType":"EQUITY","cusip":"36467W109","symbol":"GME"},"marketValue":0.0,"maintenanceRequirement":0.0}`),
		},
		aggregated: map[string]any{"currentLiquidationValue": num("25890.12"), "liquidationValue": num("25890.12")},
	}
}

func marginAccount() *account {
	return &account{
		number: MarginAccountNumber,
		base: map[string]any{
			"type": "MARGIN", "accountNumber": MarginAccountNumber, "roundTrips": 1, "isDayTrader": false,
			"isClosingOnlyRestricted": false, "pfcbFlag": false,
			"initialBalances": map[string]any{
				"accruedInterest": num("0"), "availableFundsNonMarginableTrade": num("11900.55"), "bondValue": num("0"),
				"buyingPower": num("23801.1"), "cashBalance": num("-1200"), "cashAvailableForTrading": num("0"),
				"cashReceipts": num("0"), "dayTradingBuyingPower": num("47602.2"), "equity": num("40900.1"),
				"equityPercentage": num("97.1"), "liquidationValue": num("40900.1"), "longMarginValue": num("41010"),
				"longOptionMarketValue": num("1220"), "longStockValue": num("41010"), "maintenanceRequirement": num("12350.4"),
				"margin": num("-1200"), "marginEquity": num("40900.1"), "moneyMarketFund": num("0"), "mutualFundValue": num("0"),
				"shortMarginValue": num("172.1"), "shortOptionMarketValue": num("0"), "shortStockValue": num("-172.1"),
				"totalCash": num("-1200"), "isInCall": false, "pendingDeposits": num("0"), "marginBalance": num("-1200"),
				"shortBalance": num("175.5"), "accountValue": num("40900.1"),
			},
			"currentBalances": map[string]any{
				"accruedInterest": num("0"), "cashBalance": num("-1200"), "cashReceipts": num("0"), "longOptionMarketValue": num("1220"),
				"liquidationValue": num("41000.1"), "longMarketValue": num("41110"), "moneyMarketFund": num("0"), "savings": num("0"),
				"shortMarketValue": num("-172.1"), "pendingDeposits": num("0"), "mutualFundValue": num("0"), "bondValue": num("0"),
				"shortOptionMarketValue": num("0"), "availableFunds": num("12000.55"), "availableFundsNonMarginableTrade": num("12000.55"),
				"buyingPower": num("24001.1"), "buyingPowerNonMarginableTrade": num("12000.55"), "dayTradingBuyingPower": num("48002.2"),
				"equity": num("41000.1"), "equityPercentage": num("97.2"), "longMarginValue": num("41110"),
				"maintenanceCall": num("0"), "maintenanceRequirement": num("12400.4"), "marginBalance": num("-1200"),
				"regTCall": num("0"), "shortBalance": num("175.5"), "shortMarginValue": num("172.1"), "sma": num("12000.55"),
			},
			"projectedBalances": map[string]any{"availableFunds": num("12000.55"), "buyingPower": num("24001.1")},
		},
		positions: []json.RawMessage{
			json.RawMessage(`{"shortQuantity":0.0,"averagePrice":5.25,"currentDayProfitLoss":40.0,"currentDayProfitLossPercentage":3.39,"longQuantity":2.0,"settledLongQuantity":2.0,"settledShortQuantity":0.0,"instrument":{"assetType":"OPTION","cusip":"0SPY..EA40520000","symbol":"SPY   240510C00520000","description":"SPDR S&P 500 05/10/2024 $520 Call","netChange":0.2,"type":"VANILLA","putCall":"CALL","underlyingSymbol":"SPY"},"marketValue":1220.0,"maintenanceRequirement":0.0,"averageLongPrice":5.25,"longOpenProfitLoss":170.0,"previousSessionLongQuantity":2.0,"currentDayCost":0.0}`),
			// A short position: shortQuantity 1, settled -1, negative value.
			json.RawMessage(`{"shortQuantity":1.0,"averagePrice":175.5,"currentDayProfitLoss":-2.1,"currentDayProfitLossPercentage":-1.2,"longQuantity":0.0,"settledLongQuantity":0.0,"settledShortQuantity":-1.0,"instrument":{"assetType":"EQUITY","cusip":"88160R101","symbol":"TSLA","netChange":2.1},"marketValue":-172.1,"maintenanceRequirement":51.63,"averageShortPrice":175.5,"taxLotAverageShortPrice":175.5,"shortOpenProfitLoss":3.4,"previousSessionShortQuantity":1.0,"currentDayCost":0.0}`),
			json.RawMessage(`{"shortQuantity":0.0,"averagePrice":380.0,"currentDayProfitLoss":11.0,"longQuantity":100.0,"settledLongQuantity":100.0,"settledShortQuantity":0.0,"instrument":{"assetType":"EQUITY","cusip":"594918104","symbol":"MSFT","description":"MICROSOFT CORP","netChange":0.11},"marketValue":39890.0,"maintenanceRequirement":11967.0,"averageLongPrice":380.0,"longOpenProfitLoss":1890.0,"previousSessionLongQuantity":100.0,"currentDayCost":0.0}`),
		},
	}
}

// Instruments of the generated records.
var (
	usd  = map[string]any{"assetType": "CURRENCY", "status": "ACTIVE", "symbol": "CURRENCY_USD", "description": "USD currency", "instrumentId": 1, "closingPrice": num("0")}
	aapl = map[string]any{"assetType": "EQUITY", "status": "ACTIVE", "symbol": "AAPL", "instrumentId": 1973757747, "closingPrice": num("169.58"), "type": "COMMON_STOCK"}
	msft = map[string]any{"assetType": "EQUITY", "status": "ACTIVE", "symbol": "MSFT", "instrumentId": 1904150, "closingPrice": num("410"), "type": "COMMON_STOCK"}
	tsla = map[string]any{"assetType": "EQUITY", "status": "ACTIVE", "symbol": "TSLA", "instrumentId": 2045566, "closingPrice": num("172.1"), "type": "COMMON_STOCK"}
	schd = map[string]any{"assetType": "COLLECTIVE_INVESTMENT", "status": "ACTIVE", "symbol": "SCHD", "description": "Schwab US Dividend Equity ETF", "instrumentId": 2187634, "closingPrice": num("78.55"), "type": "EXCHANGE_TRADED_FUND"}
	spyC = map[string]any{"assetType": "OPTION", "status": "ACTIVE", "symbol": "SPY   240510C00520000", "description": "SPDR S&P 500 05/10/2024 $520 Call", "instrumentId": 218927368, "closingPrice": num("6.1"), "expirationDate": "2024-05-10T20:00:00.000+00:00", "optionPremiumMultiplier": 100, "putCall": "CALL", "strikePrice": num("520"), "type": "VANILLA", "underlyingSymbol": "SPY", "underlyingCusip": "78462F103"}
)

// fee is a fee leg's type and (positive) amount.
type fee struct {
	typ    string
	amount string
}

// withZeroFees lists the fee legs Schwab puts on every trade, charged or
// not, with the given amounts and zero for the rest.
func withZeroFees(fees ...fee) []fee {
	out := []fee{{"COMMISSION", "0"}, {"SEC_FEE", "0"}, {"OPT_REG_FEE", "0"}, {"TAF_FEE", "0"}}
	for _, f := range fees {
		for i := range out {
			if out[i].typ == f.typ {
				out[i].amount = f.amount
			}
		}
	}
	return out
}

// record starts a transaction record; f.mu need not be held during seed.
func (f *Fake) record(acct string, at time.Time, typ, status string, net decimal.Decimal) map[string]any {
	f.nextID++
	id := f.nextID
	format := timeFormats[id%int64(len(timeFormats))]
	tradeDate := newYorkMidnight(at)
	return map[string]any{
		"activityId":     id,
		"time":           at.UTC().Format(format),
		"accountNumber":  acct,
		"type":           typ,
		"status":         status,
		"subAccount":     "CASH",
		"tradeDate":      tradeDate.UTC().Format(timeFormats[0]),
		"settlementDate": tradeDate.AddDate(0, 0, 1).UTC().Format(timeFormats[0]),
		"positionId":     3_000_000_000 + id%1_000_000,
		"netAmount":      dnum(net),
		"activityType":   "ACTIVITY_CORRECTION",
		"transferItems":  []any{},
	}
}

// newYorkMidnight is the New York midnight starting t's New York day.
func newYorkMidnight(t time.Time) time.Time {
	y, m, d := t.In(newYork).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, newYork)
}

// cash is a money movement: one currency leg.
func (f *Fake) cash(acct string, at time.Time, typ, desc, amount string) map[string]any {
	net := decimal.RequireFromString(amount)
	r := f.record(acct, at, typ, "VALID", net)
	r["description"] = desc
	r["transferItems"] = []any{map[string]any{"instrument": usd, "amount": dnum(net), "cost": num("0")}}
	return r
}

// trade is an execution: fee legs first, the security leg last, as
// Schwab lists them; description and settlement date absent, as often.
func (f *Fake) trade(acct, subAccount string, at time.Time, inst map[string]any, qty, price string, multiplier int64, effect string, fees []fee) map[string]any {
	q, p := decimal.RequireFromString(qty), decimal.RequireFromString(price)
	cost := q.Mul(p).Mul(decimal.NewFromInt(multiplier)).Neg()
	net := cost
	var items []any
	for _, fe := range fees {
		a := decimal.RequireFromString(fe.amount)
		net = net.Sub(a)
		items = append(items, map[string]any{"instrument": usd, "amount": dnum(a), "cost": dnum(a.Neg()), "feeType": fe.typ})
	}
	items = append(items, map[string]any{"instrument": inst, "amount": dnum(q), "cost": dnum(cost), "price": dnum(p), "positionEffect": effect})
	r := f.record(acct, at, "TRADE", "VALID", net)
	r["subAccount"] = subAccount
	r["orderId"] = 1_000_000_000 + r["activityId"].(int64)%1_000_000
	r["activityType"] = "EXECUTION"
	r["transferItems"] = items
	delete(r, "settlementDate")
	return r
}

// store appends a record built by the generators; f.mu is held or the
// fake is not yet serving.
func (f *Fake) store(acct string, r map[string]any) storedTx {
	raw, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	tx, err := index(raw)
	if err != nil {
		panic(err)
	}
	f.txs[acct] = append(f.txs[acct], tx)
	return tx
}

func (f *Fake) seedCashDay(i int, day func(h, m int) time.Time) {
	const a = CashAccountNumber
	if i%30 == 3 {
		r := f.cash(a, day(6, 0), "ELECTRONIC_FUND", "ACH Credit Received", "2500")
		if i == 3 {
			r["status"] = "PENDING"
		}
		f.store(a, r)
	}
	if i%30 == 8 {
		price := decimal.NewFromInt(75).Add(decimal.NewFromInt(int64(i % 7))).String()
		f.store(a, f.trade(a, "CASH", day(10, 30), schd, "10", price, 1, "OPENING", withZeroFees()))
	}
	if i%90 == 20 {
		f.store(a, f.trade(a, "CASH", day(14, 5), aapl, "-5", "170.25", 1, "CLOSING",
			withZeroFees(fee{"SEC_FEE", "0.02"}, fee{"TAF_FEE", "0.01"})))
	}
	if i%91 == 40 {
		r := f.cash(a, day(7, 0), "DIVIDEND_OR_INTEREST", "QUALIFIED DIVIDEND", "12.5")
		r["transferItems"] = append(r["transferItems"].([]any), map[string]any{"instrument": aapl, "amount": num("0"), "cost": num("0")})
		f.store(a, r)
	}
	if i%30 == 25 {
		f.store(a, f.cash(a, day(7, 30), "DIVIDEND_OR_INTEREST", "SCHWAB1 INT 03/27-04/25", "0.42"))
	}
	if i%60 == 10 {
		// Journals name the other account in full.
		f.store(a, f.cash(a, day(12, 0), "JOURNAL", "JOURNAL TO "+MarginAccountNumber, "-500"))
	}
	if i%45 == 20 {
		f.store(a, f.cash(a, day(9, 15), "ACH_DISBURSEMENT", "ACH Debit Sent", "-300"))
	}
	switch i {
	case 100:
		// An order Schwab cancelled: INVALID.
		r := f.trade(a, "CASH", day(11, 0), aapl, "3", "168.1", 1, "OPENING", withZeroFees())
		r["status"] = "INVALID"
		f.store(a, r)
	case 50:
		// A fee with no other leg.
		r := f.record(a, day(8, 0), "DIVIDEND_OR_INTEREST", "VALID", decimal.RequireFromString("-0.6"))
		r["description"] = "ADR MGMT FEE"
		r["transferItems"] = []any{map[string]any{"instrument": usd, "amount": num("0.6"), "cost": num("-0.6"), "feeType": "ADR_FEE"}}
		f.store(a, r)
	case 70:
		r := f.record(a, day(8, 0), "MEMORANDUM", "VALID", decimal.Zero)
		r["description"] = "MEMO: ADDRESS CHANGE"
		f.store(a, r)
	}
}

func (f *Fake) seedMarginDay(i int, day func(h, m int) time.Time) {
	const a = MarginAccountNumber
	if i%20 == 5 {
		f.store(a, f.trade(a, "MARGIN", day(10, 0), spyC, "1", "5.25", 100, "OPENING",
			withZeroFees(fee{"COMMISSION", "0.65"}, fee{"OPT_REG_FEE", "0.01"})))
	}
	if i%20 == 12 {
		f.store(a, f.trade(a, "MARGIN", day(15, 45), spyC, "-1", "6.1", 100, "CLOSING",
			withZeroFees(fee{"COMMISSION", "0.65"}, fee{"OPT_REG_FEE", "0.01"}, fee{"SEC_FEE", "0.01"}, fee{"TAF_FEE", "0.01"})))
	}
	if i%30 == 15 {
		f.store(a, f.cash(a, day(7, 0), "DIVIDEND_OR_INTEREST", "MARGIN INTEREST", "-3.21"))
	}
	if i%60 == 10 {
		f.store(a, f.cash(a, day(12, 0), "JOURNAL", "JOURNAL FRM "+CashAccountNumber, "500"))
	}
	switch i {
	case 200:
		f.store(a, f.cash(a, day(11, 0), "WIRE_IN", "WIRED FUNDS RECEIVED", "10000"))
	case 60:
		f.store(a, f.cash(a, day(11, 0), "WIRE_OUT", "WIRED FUNDS DISBURSED", "-2000"))
	case 150:
		r := f.record(a, day(9, 0), "RECEIVE_AND_DELIVER", "VALID", decimal.Zero)
		r["description"] = "TRANSFER OF SECURITY OR OPTION IN"
		r["transferItems"] = []any{map[string]any{"instrument": msft, "amount": num("20"), "cost": num("0"), "positionEffect": "OPENING"}}
		f.store(a, r)
	case 30:
		r := f.trade(a, "SHORT", day(13, 20), tsla, "-1", "175.5", 1, "OPENING",
			withZeroFees(fee{"SEC_FEE", "0.01"}, fee{"TAF_FEE", "0.01"}))
		f.store(a, r)
	case 45:
		if _, err := f.storeRaw(a, duplicateAssetTypeTrade(f.nextIDLocked(), day(15, 56), a)); err != nil {
			panic(err)
		}
	}
}

func (f *Fake) nextIDLocked() int64 {
	f.nextID++
	return f.nextID
}

// duplicateAssetTypeTrade is a trade written by hand: +0000 timestamps
// without fraction and an instrument with the key assetType twice.
func duplicateAssetTypeTrade(id int64, at time.Time, acct string) string {
	td := newYorkMidnight(at)
	return fmt.Sprintf(`{"activityId":%d,"time":"%s","accountNumber":"%s","type":"TRADE","status":"VALID","subAccount":"MARGIN","tradeDate":"%s","settlementDate":"%s","positionId":%d,"orderId":%d,"netAmount":-820.0,"activityType":"EXECUTION","transferItems":[{"instrument":{"assetType":"CURRENCY","status":"ACTIVE","symbol":"CURRENCY_USD","description":"USD currency","instrumentId":1,"closingPrice":0.0},"amount":0.0,"cost":0.0,"feeType":"COMMISSION"},{"instrument":{"assetType":"CURRENCY","status":"ACTIVE","symbol":"CURRENCY_USD","description":"USD currency","instrumentId":1,"closingPrice":0.0},"amount":0.0,"cost":0.0,"feeType":"SEC_FEE"},{"instrument":{"assetType":"EQUITY","status":"ACTIVE","symbol":"MSFT","instrumentId":1904150,"closingPrice":410.0,"assetType":"EQUITY","type":"COMMON_STOCK"},"amount":2.0,"cost":-820.0,"price":410.0,"positionEffect":"OPENING"}]}`,
		id, at.UTC().Format(timeFormats[0]), acct, td.UTC().Format(timeFormats[0]), td.AddDate(0, 0, 1).UTC().Format(timeFormats[0]),
		3_000_000_000+id%1_000_000, 1_000_000_000+id%1_000_000)
}

// storeRaw appends a hand-written record; f.mu is held or the fake is not
// yet serving.
func (f *Fake) storeRaw(acct, raw string) (storedTx, error) {
	tx, err := index(json.RawMessage(raw))
	if err != nil {
		return storedTx{}, err
	}
	list := f.txs[acct]
	for i := range list {
		if list[i].id == tx.id {
			list[i] = tx
			return tx, nil
		}
	}
	f.txs[acct] = append(list, tx)
	return tx, nil
}

// index reads what the search filters on from a record.
func index(raw json.RawMessage) (storedTx, error) {
	var r struct {
		ActivityID    json.Number `json:"activityId"`
		Time          string      `json:"time"`
		TradeDate     string      `json:"tradeDate"`
		Type          string      `json:"type"`
		TransferItems []struct {
			Instrument struct {
				Symbol string `json:"symbol"`
			} `json:"instrument"`
		} `json:"transferItems"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return storedTx{}, fmt.Errorf("record: %w", err)
	}
	id, err := r.ActivityID.Int64()
	if err != nil {
		return storedTx{}, fmt.Errorf("record without integer activityId: %w", err)
	}
	stamp := r.Time
	if stamp == "" {
		stamp = r.TradeDate
	}
	at, err := parseTime(stamp)
	if err != nil {
		return storedTx{}, err
	}
	tx := storedTx{id: id, at: at, typ: r.Type, raw: raw}
	for _, it := range r.TransferItems {
		if it.Instrument.Symbol != "" {
			tx.symbols = append(tx.symbols, it.Instrument.Symbol)
		}
	}
	return tx, nil
}

// parseTime reads the timestamp forms Schwab uses.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable timestamp %q", s)
}

// AddTransaction adds (or replaces, by activityId) a record written in the
// dialect to an account's history, exactly as given: the search answers
// it byte for byte. It needs an integer activityId and a time (or
// tradeDate) the search can match.
func (f *Fake) AddTransaction(tb testing.TB, accountNumber, raw string) int64 {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	tx, err := f.storeRaw(accountNumber, raw)
	if err != nil {
		tb.Fatalf("schwabtest: add transaction: %v", err)
	}
	return tx.id
}

// ClearTransactions empties an account's history.
func (f *Fake) ClearTransactions(accountNumber string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.txs, accountNumber)
}

// TransactionCount is how many records an account's history holds,
// INVALID ones included.
func (f *Fake) TransactionCount(accountNumber string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.txs[accountNumber])
}

// GenerateTransactions adds n "ACH Credit Received" deposits to an
// account, spread evenly over [from, to) on whole seconds, and returns
// their activityIds: bulk for the 3000-record cap.
func (f *Fake) GenerateTransactions(accountNumber string, n int, from, to time.Time) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]int64, 0, n)
	span := to.Sub(from)
	for k := range n {
		at := from.Add(time.Duration(float64(span) * float64(k) / float64(n))).Truncate(time.Second)
		if at.Before(from) {
			at = at.Add(time.Second)
		}
		amount := decimal.New(int64(100+k%900), -2).String()
		tx := f.store(accountNumber, f.cash(accountNumber, at, "ELECTRONIC_FUND", "ACH Credit Received", amount))
		ids = append(ids, tx.id)
	}
	return ids
}
