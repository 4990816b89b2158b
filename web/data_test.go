package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/projections/financialtest"
	"github.com/dashtam/dashtam/web"
)

// dataServer is a server whose data routes read a real financial_data read
// model over PostgreSQL, fed by a real projector from events a ledger
// appends; callers authenticate with the fake identity's tokens.
type dataServer struct {
	*testServer
	Identity *fakeIdentity
	Clock    *fakeClock
	// Positions is the server's read-your-writes waiter; set its bound.
	Positions *waiterSwitch
	Ledger    *financialtest.Ledger
	Store     *eventstore.Store
	Manager   *projections.Manager
	// stopProjector stops the projector (once); startProjector starts it.
	startProjector, stopProjector func()
}

// waiterSwitch is the real projections.Positions whose bound a test may
// change while the server runs.
type waiterSwitch struct {
	mu        sync.Mutex
	cur       web.PositionWaiter
	newWaiter func(time.Duration) web.PositionWaiter
}

func (w *waiterSwitch) set(d time.Duration) {
	p := w.newWaiter(d)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur = p
}

func (w *waiterSwitch) WaitApplied(ctx context.Context, names []string, pos int64) error {
	w.mu.Lock()
	cur := w.cur
	w.mu.Unlock()
	return cur.WaitApplied(ctx, names, pos)
}

// dataServerOptions adjust a dataServer.
type dataServerOptions struct {
	positionWait time.Duration // the read-your-writes bound; default a minute (other tests' transactions hold the horizon)
	stopped      bool          // leave the projector stopped
	routes       func(store *eventstore.Store) func(e *echo.Echo)
}

func mustDataServer(t testing.TB, o dataServerOptions) *dataServer {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 40
	testdb.ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	store, err := eventstore.New(pool, reg)
	require.NoError(t, err)
	m, err := projections.NewManager(store, []projections.Projector{projections.FinancialData{}},
		projections.WithOwnerPool(testdb.Owner(t, pool)), projections.WithPollInterval(20*time.Millisecond),
		projections.WithStandbyInterval(20*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, m.Ensure(ctx))
	reader, err := projections.NewFinancialReader(pool)
	require.NoError(t, err)
	if o.positionWait == 0 {
		o.positionWait = time.Minute
	}
	positions := &waiterSwitch{newWaiter: func(d time.Duration) web.PositionWaiter {
		p, err := projections.NewPositions(pool, m.Applied(), d)
		require.NoError(t, err)
		return p
	}}
	positions.set(o.positionWait)

	clock := &fakeClock{now: testEpoch}
	id := newFakeIdentity(t, clock)
	opts := web.Options{Identity: id, Now: clock.Now, Data: reader, Positions: positions}
	if o.routes != nil {
		opts.Routes = o.routes(store)
	}
	s := &dataServer{testServer: MustServer(t, opts), Identity: id, Clock: clock, Positions: positions, Ledger: financialtest.New(t, store), Store: store, Manager: m}
	var (
		mu     sync.Mutex
		cancel func()
		done   chan struct{}
	)
	s.startProjector = func() {
		mu.Lock()
		defer mu.Unlock()
		runCtx, c := context.WithCancel(ctx)
		cancel, done = c, make(chan struct{})
		go func() { defer close(done); _ = m.Start(runCtx) }()
	}
	s.stopProjector = func() {
		mu.Lock()
		defer mu.Unlock()
		if cancel != nil {
			cancel()
			<-done
			cancel = nil
		}
	}
	t.Cleanup(s.stopProjector)
	if !o.stopped {
		s.startProjector()
	}
	return s
}

// get sends an authenticated GET to path (with its query).
func (s *dataServer) get(t testing.TB, token, path string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return MustDo(t, req)
}

// getJSON sends a GET that must answer 200 and decodes the body into v.
func (s *dataServer) getJSON(t testing.TB, token, path string, v any) response {
	t.Helper()
	r := s.get(t, token, path)
	require.Equal(t, http.StatusOK, r.Status, "GET %s: %s", path, r.Body)
	require.NoError(t, json.Unmarshal(r.Body, v), "GET %s", path)
	return r
}

// caughtUp waits, through the API's own read-your-writes, until the read
// model has applied everything the ledger appended.
func (s *dataServer) caughtUp(t testing.TB, token string) {
	t.Helper()
	r := s.get(t, token, "/api/v1/holdings?min_position="+strconv.FormatInt(s.Ledger.LastPosition(), 10))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
}

// JSON shapes of the answers, as a client reads them.
type (
	accountJSON struct {
		ID                  uuid.UUID `json:"id"`
		ConnectionID        uuid.UUID `json:"connection_id"`
		Name                string    `json:"name"`
		AccountType         string    `json:"account_type"`
		Subtype             *string   `json:"subtype"`
		AccountNumberMasked *string   `json:"account_number_masked"`
		Balance             *string   `json:"balance"`
		AvailableBalance    *string   `json:"available_balance"`
		Currency            string    `json:"currency"`
		IsActive            bool      `json:"is_active"`
		LastSyncedAt        *string   `json:"last_synced_at"`
	}
	totalJSON struct {
		Currency         string  `json:"currency"`
		Balance          string  `json:"balance"`
		AvailableBalance *string `json:"available_balance"`
		Accounts         int     `json:"accounts"`
	}
	accountListJSON struct {
		Items      []accountJSON `json:"items"`
		NextCursor *string       `json:"next_cursor"`
		Totals     []totalJSON   `json:"totals"`
	}
	transactionListJSON struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	listJSON struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
)

// dataWorld is what the data tests append: alice's connection with a
// checking and a brokerage account, an empty connection of hers, and bob's
// account with a transaction.
type dataWorld struct {
	aliceToken, bobToken            string
	alice, bob                      uuid.UUID
	conn, emptyConn, bobConn        uuid.UUID
	checking, brokerage, bobAccount uuid.UUID
	deposit, pending, trade, bobTx  uuid.UUID
}

func buildDataWorld(t testing.TB, s *dataServer) dataWorld {
	t.Helper()
	l := s.Ledger
	var w dataWorld
	var p commands.Principal
	w.aliceToken, p = s.Identity.MustToken(t, user.RoleUser)
	w.alice = p.UserID
	w.bobToken, p = s.Identity.MustToken(t, user.RoleReadonly)
	w.bob = p.UserID
	day := func(n int) time.Time { return financialtest.Epoch.AddDate(0, 0, n) }

	w.conn, w.emptyConn, w.bobConn = l.Connection(w.alice), l.Connection(w.alice), l.Connection(w.bob)
	chk := financialtest.Details("chk", commands.AccountTypeChecking)
	chk.MaskedNumber = "0000111122223333" // a provider that sends the whole number
	w.checking = l.Account(w.conn, w.alice, chk, day(0))
	w.brokerage = l.Account(w.conn, w.alice, financialtest.Details("brk", commands.AccountTypeBrokerage), day(0).Add(time.Second))
	w.bobAccount = l.Account(w.bobConn, w.bob, financialtest.Details("chk", commands.AccountTypeChecking), day(0))
	l.Balance(w.alice, w.checking, "1000.50", "990.25", "USD", day(0))
	l.Balance(w.alice, w.checking, "1200.75", "1200.75", "USD", day(2))
	l.Balance(w.alice, w.brokerage, "5000", "", "USD", day(0))
	l.Balance(w.bob, w.bobAccount, "3", "3", "USD", day(0))
	l.Holdings(w.alice, w.brokerage, []account.Holding{{Symbol: "AAPL", Description: "Apple", AssetType: "equity",
		Quantity: financialtest.Dec("12.5"), AveragePrice: financialtest.DecPtr("140.25"), MarketValue: financialtest.Dec("1800.5"), Currency: "USD"}}, day(0))
	w.deposit = l.Transaction(w.alice, w.checking, w.conn, financialtest.Tx("d-1", "2026-02-01", commands.TransactionTypeDeposit, "100.5"), day(0))
	pending := financialtest.Tx("p-1", "2026-02-03", commands.TransactionTypeWithdrawal, "-25.5")
	pending.Pending = true
	w.pending = l.Transaction(w.alice, w.checking, w.conn, pending, day(0))
	buy := financialtest.Tx("b-1", "2026-02-02", commands.TransactionTypeBuy, "-1502.51")
	buy.Symbol, buy.Quantity, buy.UnitPrice = "AAPL", financialtest.DecPtr("10"), financialtest.DecPtr("150.25")
	buy.Commission, buy.Fees, buy.SettlementDate = financialtest.DecPtr("0"), financialtest.DecPtr("0.01"), "2026-02-04"
	w.trade = l.Transaction(w.alice, w.brokerage, w.conn, buy, day(0))
	w.bobTx = l.Transaction(w.bob, w.bobAccount, w.bobConn, financialtest.Tx("d-1", "2026-02-01", commands.TransactionTypeDeposit, "1"), day(0))
	l.SyncCompleted(w.alice, w.conn, day(3))
	s.caughtUp(t, w.aliceToken)
	return w
}

func TestDataRoutesAnswerTheCallersData(t *testing.T) {
	t.Parallel()
	s := mustDataServer(t, dataServerOptions{})
	w := buildDataWorld(t, s)

	var accts accountListJSON
	s.getJSON(t, w.aliceToken, "/api/v1/accounts", &accts)
	require.Len(t, accts.Items, 2)
	chk := accts.Items[0]
	assert.Equal(t, w.checking, chk.ID)
	assert.Equal(t, w.conn, chk.ConnectionID)
	assert.Equal(t, "checking", chk.AccountType)
	assert.Equal(t, "****3333", *chk.AccountNumberMasked, "never more than the last four")
	assert.Equal(t, "1200.75", *chk.Balance, "a decimal string, as recorded")
	assert.Equal(t, "1200.75", *chk.AvailableBalance)
	assert.Equal(t, "USD", chk.Currency)
	assert.True(t, chk.IsActive)
	assert.Equal(t, "2026-03-04T12:00:00Z", *chk.LastSyncedAt)
	assert.Nil(t, accts.Items[1].AvailableBalance)
	assert.Nil(t, accts.NextCursor)
	assert.Equal(t, []totalJSON{{Currency: "USD", Balance: "6200.75", AvailableBalance: ref("1200.75"), Accounts: 2}}, accts.Totals)
	raw := s.get(t, w.aliceToken, "/api/v1/accounts")
	assert.NotContains(t, string(raw.Body), "0000111122223333")

	var filtered accountListJSON
	s.getJSON(t, w.aliceToken, "/api/v1/accounts?account_type=brokerage&is_active=true&connection_id="+w.conn.String(), &filtered)
	require.Len(t, filtered.Items, 1)
	assert.Equal(t, w.brokerage, filtered.Items[0].ID)
	assert.Equal(t, []totalJSON{{Currency: "USD", Balance: "5000", Accounts: 1}}, filtered.Totals)

	var one accountJSON
	s.getJSON(t, w.aliceToken, "/api/v1/accounts/"+w.checking.String(), &one)
	assert.Equal(t, chk, one)

	// Another user's ids answer exactly as missing ones.
	for _, path := range []string{
		"/api/v1/accounts/%s", "/api/v1/accounts/%s/transactions", "/api/v1/accounts/%s/holdings",
		"/api/v1/accounts/%s/balance-history", "/api/v1/transactions/%s", "/api/v1/connections/%s/accounts",
	} {
		theirs := map[string]uuid.UUID{"/api/v1/transactions/%s": w.bobTx, "/api/v1/connections/%s/accounts": w.bobConn}[path]
		if theirs == uuid.Nil {
			theirs = w.bobAccount
		}
		missing := uuid.New()
		a := MustProblem(t, s.get(t, w.aliceToken, fmt.Sprintf(path, theirs)), http.StatusNotFound, fmt.Sprintf(path, theirs))
		b := MustProblem(t, s.get(t, w.aliceToken, fmt.Sprintf(path, missing)), http.StatusNotFound, fmt.Sprintf(path, missing))
		a.TraceID, b.TraceID, a.Instance, b.Instance = "", "", "", ""
		assert.Equal(t, b, a, path)
		// ... while bob reads his own.
		assert.Equal(t, http.StatusOK, s.get(t, w.bobToken, fmt.Sprintf(path, theirs)).Status, path)
	}

	var txs transactionListJSON
	s.getJSON(t, w.aliceToken, "/api/v1/accounts/"+w.checking.String()+"/transactions", &txs)
	require.Len(t, txs.Items, 2)
	assert.Equal(t, w.pending.String(), txs.Items[0]["id"], "newest date first")
	assert.Equal(t, "pending", txs.Items[0]["status"])
	assert.Equal(t, "-25.5", txs.Items[0]["amount"])
	deposit := txs.Items[1]
	assert.Equal(t, map[string]any{
		"id": w.deposit.String(), "account_id": w.checking.String(), "provider_transaction_id": "d-1",
		"transaction_type": "deposit", "subtype": "sandbox_deposit", "status": "posted", "amount": "100.5",
		"currency": "USD", "description": "Transaction d-1", "transaction_date": "2026-02-01", "settlement_date": nil,
	}, deposit, "no trade fields on a deposit")

	var trade map[string]any
	s.getJSON(t, w.aliceToken, "/api/v1/transactions/"+w.trade.String(), &trade)
	for k, v := range map[string]any{"symbol": "AAPL", "quantity": "10", "unit_price": "150.25", "commission": "0",
		"fees": "0.01", "amount": "-1502.51", "settlement_date": "2026-02-04", "transaction_type": "buy"} {
		assert.Equal(t, v, trade[k], k)
	}
	var all transactionListJSON
	s.getJSON(t, w.aliceToken, "/api/v1/transactions?status=posted&start_date=2026-02-01&end_date=2026-02-02", &all)
	assert.Len(t, all.Items, 2, "the deposit and the trade, across accounts; not bob's")

	var holdings listJSON
	s.getJSON(t, w.aliceToken, "/api/v1/holdings", &holdings)
	require.Len(t, holdings.Items, 1)
	assert.Equal(t, "12.5", holdings.Items[0]["quantity"])
	assert.Equal(t, "140.25", holdings.Items[0]["average_price"])
	s.getJSON(t, w.aliceToken, "/api/v1/accounts/"+w.checking.String()+"/holdings", &holdings)
	assert.Empty(t, holdings.Items)

	var snaps listJSON
	s.getJSON(t, w.aliceToken, "/api/v1/balance-snapshots?account_id="+w.checking.String(), &snaps)
	require.Len(t, snaps.Items, 2)
	assert.Equal(t, "1200.75", snaps.Items[0]["balance"], "newest first")
	s.getJSON(t, w.aliceToken, "/api/v1/balance-snapshots?account_id="+w.bobAccount.String(), &snaps)
	assert.Empty(t, snaps.Items, "another user's account filters to nothing")

	var history struct {
		StartDate string           `json:"start_date"`
		EndDate   string           `json:"end_date"`
		Points    []map[string]any `json:"points"`
	}
	s.getJSON(t, w.aliceToken, "/api/v1/accounts/"+w.checking.String()+"/balance-history", &history)
	assert.Equal(t, "2026-01-31", history.StartDate, "30 days ending today by default")
	assert.Equal(t, "2026-03-01", history.EndDate, "the server's today")
	assert.Len(t, history.Points, 1, "the first balance was recorded today")
	s.getJSON(t, w.aliceToken, "/api/v1/accounts/"+w.checking.String()+"/balance-history?start_date=2026-02-27&end_date=2026-03-10", &history)
	assert.Equal(t, "2026-03-01", history.EndDate, "capped at today")
	s.Clock.Advance(4 * 24 * time.Hour)
	// Four days on, alice's token has expired: she logs in again.
	fresh, _, err := s.Identity.JWT.Issue(commands.AccessClaims{Subject: w.alice, SessionID: uuid.New(), Roles: []string{"user"}})
	require.NoError(t, err)
	w.aliceToken = fresh
	s.getJSON(t, fresh, "/api/v1/accounts/"+w.checking.String()+"/balance-history?start_date=2026-02-27&end_date=2026-03-10", &history)
	var days []string
	for _, p := range history.Points {
		days = append(days, p["date"].(string)+"="+p["balance"].(string))
	}
	assert.Equal(t, []string{"2026-03-01=1000.5", "2026-03-02=1000.5", "2026-03-03=1200.75", "2026-03-04=1200.75", "2026-03-05=1200.75"}, days,
		"no point before the first balance, then each day's last, carried forward to today")
	assert.Equal(t, "2026-03-05", history.EndDate)
	s.getJSON(t, w.aliceToken, "/api/v1/accounts/"+w.checking.String()+"/balance-history?start_date=2027-01-01", &history)
	assert.Empty(t, history.Points, "the future has no balance")

	var conn accountListJSON
	s.getJSON(t, w.aliceToken, "/api/v1/connections/"+w.conn.String()+"/accounts?limit=1", &conn)
	require.Len(t, conn.Items, 1)
	require.NotNil(t, conn.NextCursor)
	s.getJSON(t, w.aliceToken, "/api/v1/connections/"+w.conn.String()+"/accounts?limit=1&cursor="+url.QueryEscape(*conn.NextCursor), &conn)
	require.Len(t, conn.Items, 1)
	assert.Equal(t, w.brokerage, conn.Items[0].ID)
	assert.Nil(t, conn.NextCursor)
	s.getJSON(t, w.aliceToken, "/api/v1/connections/"+w.emptyConn.String()+"/accounts", &conn)
	assert.Empty(t, conn.Items, "a connection of the caller's without accounts")
}

func ref[T any](v T) *T { return &v }

// TestDataRoutesRefuseBadInput: values of the right shape the API does not
// accept are 422 with a field error each; shape violations stay 400.
func TestDataRoutesRefuseBadInput(t *testing.T) {
	t.Parallel()
	s := mustDataServer(t, dataServerOptions{})
	w := buildDataWorld(t, s)
	txPath := "/api/v1/accounts/" + w.checking.String() + "/transactions"
	var page transactionListJSON
	s.getJSON(t, w.aliceToken, txPath+"?limit=1", &page)
	require.NotNil(t, page.NextCursor)
	cursor := url.QueryEscape(*page.NextCursor)
	var acrossPage transactionListJSON
	s.getJSON(t, w.aliceToken, "/api/v1/transactions?limit=1", &acrossPage)
	require.NotNil(t, acrossPage.NextCursor)

	for _, c := range []struct {
		path   string
		fields []string
	}{
		{txPath + "?start_date=2026-13-01", []string{"start_date"}},
		{txPath + "?end_date=2026-02-30", []string{"end_date"}},
		{txPath + "?start_date=yesterday&end_date=1%2F2%2F2026", []string{"start_date", "end_date"}},
		{txPath + "?start_date=2026-02-02&end_date=2026-02-01", []string{"start_date"}},
		{txPath + "?transaction_type=purchase&status=settled", []string{"transaction_type", "status"}},
		{"/api/v1/accounts?account_type=loan", []string{"account_type"}},
		{txPath + "?cursor=not-a-cursor", []string{"cursor"}},
		{txPath + "?status=posted&cursor=" + cursor, []string{"cursor"}},                                               // another filter
		{txPath + "?start_date=2000-01-01&cursor=" + cursor, []string{"cursor"}},                                       // another filter
		{"/api/v1/transactions?cursor=" + cursor, []string{"cursor"}},                                                  // another endpoint
		{"/api/v1/accounts/" + w.brokerage.String() + "/transactions?cursor=" + cursor, []string{"cursor"}},            // another account
		{"/api/v1/accounts/" + w.checking.String() + "/balance-history?start_date=2010-01-01", []string{"start_date"}}, // too long
		{"/api/v1/balance-snapshots?start_date=2026-03-02&end_date=2026-03-01", []string{"start_date"}},
		{"/api/v1/holdings?cursor=" + cursor, []string{"cursor"}},
	} {
		r := s.get(t, w.aliceToken, c.path)
		p := MustProblem(t, r, http.StatusUnprocessableEntity, strings.SplitN(c.path, "?", 2)[0])
		assert.Equal(t, "unprocessable", p.Code, c.path)
		var got []string
		for _, f := range p.Errors {
			got = append(got, f.Field)
			assert.NotContains(t, f.Message, "2026-13-01", "a message never repeats the value")
		}
		assert.Equal(t, c.fields, got, c.path)
	}
	// The same endpoint and filter, another user: refused too.
	r := s.get(t, w.bobToken, "/api/v1/transactions?limit=1&cursor="+url.QueryEscape(*acrossPage.NextCursor))
	assert.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s", r.Body)
	r = s.get(t, w.aliceToken, "/api/v1/transactions?limit=1&cursor="+url.QueryEscape(*acrossPage.NextCursor))
	assert.Equal(t, http.StatusOK, r.Status, "while its own user pages on: %s", r.Body)

	for _, path := range []string{txPath + "?limit=0", txPath + "?limit=101", txPath + "?min_position=abc",
		txPath + "?min_position=0", "/api/v1/accounts?is_active=maybe", "/api/v1/accounts/not-a-uuid"} {
		r := s.get(t, w.aliceToken, path)
		assert.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", path, r.Body)
	}
}

// TestTransactionPagesStayStableUnderConcurrentInserts pages through an
// account's transactions while others are recorded all along, on dates
// behind and ahead of the cursor: every transaction that existed before
// the first page appears exactly once, none appears twice, and the order
// never goes back.
func TestTransactionPagesStayStableUnderConcurrentInserts(t *testing.T) {
	t.Parallel()
	s := mustDataServer(t, dataServerOptions{})
	w := buildDataWorld(t, s)
	l := s.Ledger
	var data = make([]financialtestData, 0, 600)
	for i := range 600 {
		data = append(data, financialtestData{id: fmt.Sprintf("old-%d", i), date: fmt.Sprintf("2025-%02d-%02d", 1+i%12, 1+i%28)})
	}
	before := map[string]bool{w.deposit.String(): true, w.pending.String(): true}
	for _, id := range l.BulkTransactions(w.alice, w.checking, w.conn, txData(data), financialtest.Epoch) {
		before[id.String()] = true
	}
	s.caughtUp(t, w.aliceToken)

	stop := make(chan struct{})
	inserted := make(chan error, 1)
	var during atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				inserted <- nil
				return
			default:
			}
			// Alternately far ahead of any cursor (newest) and behind it.
			date := "2027-01-01"
			if i%2 == 1 {
				date = fmt.Sprintf("2025-%02d-15", 1+i%12)
			}
			d := financialtest.Tx(fmt.Sprintf("new-%d", i), date, commands.TransactionTypeFee, "-0.5")
			if _, err := l.TryTransaction(w.alice, w.checking, w.conn, d, financialtest.Epoch); err != nil {
				inserted <- err
				return
			}
			during.Add(1)
		}
	}()
	seen := map[string]int{}
	var lastKey string
	next := "/api/v1/accounts/" + w.checking.String() + "/transactions?limit=37"
	pages := 0
	for next != "" {
		var page transactionListJSON
		s.getJSON(t, w.aliceToken, next, &page)
		pages++
		for _, it := range page.Items {
			id := it["id"].(string)
			seen[id]++
			key := it["transaction_date"].(string) + "/" + id
			if lastKey != "" {
				assert.Less(t, key, lastKey, "the order went back")
			}
			lastKey = key
		}
		next = ""
		if page.NextCursor != nil {
			next = "/api/v1/accounts/" + w.checking.String() + "/transactions?limit=37&cursor=" + url.QueryEscape(*page.NextCursor)
		}
	}
	close(stop)
	require.NoError(t, <-inserted)
	assert.Greater(t, pages, 16)
	assert.Positive(t, during.Load(), "transactions were recorded while the pages were read")
	for id := range before {
		assert.Equal(t, 1, seen[id], "transaction %s, there before paging began", id)
	}
	for id, n := range seen {
		assert.Equal(t, 1, n, "transaction %s seen %d times", id, n)
	}
}

type financialtestData struct{ id, date string }

func txData(ds []financialtestData) []transaction.Data {
	out := make([]transaction.Data, len(ds))
	for i, d := range ds {
		out[i] = financialtest.Tx(d.id, d.date, commands.TransactionTypeFee, "-1.25")
	}
	return out
}

// TestTransactionsCSV streams an account's transactions as CSV: a header,
// every matching row across several chunks, RFC 4180 quoting, amounts as
// recorded, formulas defused; JSON stays the default.
func TestTransactionsCSV(t *testing.T) {
	t.Parallel()
	s := mustDataServer(t, dataServerOptions{})
	w := buildDataWorld(t, s)
	l := s.Ledger
	tricky := map[string]string{
		"f-eq":    `=HYPERLINK("http://evil.example","click")`,
		"f-plus":  "+1+1",
		"f-minus": "-2+3",
		"f-at":    "@SUM(A1:A2)",
		"f-tab":   "\tindented",
		"quotes":  `He said "hi", then left`,
		"lines":   "line one\nline two",
		"plain":   "Coffee, beans & more",
	}
	for id, desc := range tricky {
		d := financialtest.Tx(id, "2026-02-10", commands.TransactionTypeWithdrawal, "-3.10")
		d.Description = desc
		l.Transaction(w.alice, w.checking, w.conn, d, financialtest.Epoch)
	}
	var bulk []financialtestData
	for i := range 2500 {
		bulk = append(bulk, financialtestData{id: fmt.Sprintf("bulk-%d", i), date: fmt.Sprintf("2024-%02d-%02d", 1+i%12, 1+i%28)})
	}
	l.BulkTransactions(w.alice, w.checking, w.conn, txData(bulk), financialtest.Epoch)
	s.caughtUp(t, w.aliceToken)

	path := "/api/v1/accounts/" + w.checking.String() + "/transactions"
	r := s.get(t, w.aliceToken, path, "Accept", "text/csv")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.Equal(t, "text/csv; charset=utf-8", r.Header.Get("Content-Type"))
	assert.Equal(t, `attachment; filename="transactions-`+w.checking.String()+`.csv"`, r.Header.Get("Content-Disposition"))
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	assert.True(t, bytes.HasSuffix(r.Body, []byte("\r\n")), "CRLF line ends (RFC 4180)")
	rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"id", "account_id", "provider_transaction_id", "transaction_date", "settlement_date",
		"transaction_type", "subtype", "status", "amount", "currency", "description", "symbol", "quantity", "unit_price",
		"commission", "fees"}, rows[0])
	require.Len(t, rows, 1+2+len(tricky)+2500, "every transaction, not one page")
	byID := map[string][]string{}
	ids := map[string]bool{}
	for _, row := range rows[1:] {
		byID[row[2]] = row
		assert.False(t, ids[row[0]], "row %s twice", row[0])
		ids[row[0]] = true
	}
	assert.Equal(t, "'"+tricky["f-eq"], byID["f-eq"][10])
	assert.Equal(t, "'+1+1", byID["f-plus"][10])
	assert.Equal(t, "'-2+3", byID["f-minus"][10])
	assert.Equal(t, "'@SUM(A1:A2)", byID["f-at"][10])
	assert.Equal(t, "'\tindented", byID["f-tab"][10])
	assert.Equal(t, tricky["quotes"], byID["quotes"][10], "quotes survive RFC 4180 quoting")
	assert.Equal(t, tricky["lines"], byID["lines"][10])
	assert.Equal(t, tricky["plain"], byID["plain"][10])
	assert.Equal(t, "-3.1", byID["plain"][8], "an amount as recorded, its minus sign kept: it is a number")
	assert.Equal(t, "-25.5", byID["p-1"][8])
	assert.Equal(t, "pending", byID["p-1"][7])
	assert.Contains(t, string(r.Body), `"He said ""hi"", then left"`)

	r = s.get(t, w.aliceToken, path+"?status=pending&start_date=2026-01-01", "Accept", "text/csv")
	rows, err = csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	require.NoError(t, err)
	assert.Len(t, rows, 2, "filters apply: the one pending transaction")

	for accept, csvWanted := range map[string]bool{
		"":                                 false,
		"application/json":                 false,
		"text/csv;q=0.5, application/json": false,
		"application/json;q=0.5, text/csv": true,
		"text/*, text/csv":                 true,
		"text/csv;q=0":                     false,
	} {
		r := s.get(t, w.aliceToken, path+"?limit=1", "Accept", accept)
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, csvWanted, strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv"), "Accept: %q", accept)
	}
	MustProblem(t, s.get(t, w.aliceToken, "/api/v1/accounts/"+w.bobAccount.String()+"/transactions", "Accept", "text/csv"),
		http.StatusNotFound, "/api/v1/accounts/"+w.bobAccount.String()+"/transactions")
	p := MustProblem(t, s.get(t, w.aliceToken, path+"?status=done", "Accept", "text/csv"), http.StatusUnprocessableEntity, path)
	assert.Equal(t, "status", p.Errors[0].Field)
}

// TestReadYourWrites: a write's answer carries its position; a read that
// names it waits until the read model applied it, and answers 503 with
// Retry-After when that takes longer than the bound.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	var appendTo struct {
		sync.Mutex
		account, conn, owner uuid.UUID
		n                    int
	}
	routes := func(store *eventstore.Store) func(e *echo.Echo) {
		return func(e *echo.Echo) {
			// A command, as the sync use case will be: it appends and
			// answers 204, and the server adds the position.
			e.POST("/test/transactions", func(c echo.Context) error {
				appendTo.Lock()
				appendTo.n++
				d := financialtest.Tx(fmt.Sprintf("ryw-%d", appendTo.n), "2026-03-01", commands.TransactionTypeDeposit, "1")
				id, ev := financialtest.TransactionRecorded(appendTo.account, appendTo.conn, d, financialtest.Epoch)
				owner := appendTo.owner
				appendTo.Unlock()
				ctx := eventstore.WithMetadata(c.Request().Context(), eventstore.Metadata{OwnerID: owner, Actor: "test"})
				if _, err := store.Append(ctx, financialtest.TransactionStream(id), 0, ev); err != nil {
					return err
				}
				c.Response().Header().Set("X-Transaction-Id", id.String())
				return c.NoContent(http.StatusNoContent)
			})
		}
	}
	s := mustDataServer(t, dataServerOptions{routes: routes})
	w := buildDataWorld(t, s)
	appendTo.Lock()
	appendTo.account, appendTo.conn, appendTo.owner = w.checking, w.conn, w.alice
	appendTo.Unlock()

	write := func() (position, id string) {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/test/transactions", nil)
		require.NoError(t, err)
		r := MustDo(t, req)
		require.Equal(t, http.StatusNoContent, r.Status, "%s", r.Body)
		return r.Header.Get(web.HeaderPosition), r.Header.Get("X-Transaction-Id")
	}
	// Reached: each write is readable at once through min_position.
	for range 20 {
		pos, id := write()
		require.NotEmpty(t, pos, "the write's answer carries its position")
		r := s.get(t, w.aliceToken, "/api/v1/transactions/"+id+"?min_position="+pos)
		require.Equal(t, http.StatusOK, r.Status, "read your write: %s", r.Body)
	}
	r := s.get(t, w.aliceToken, "/api/v1/accounts")
	assert.Empty(t, r.Header.Get(web.HeaderPosition), "a read appends nothing")

	// Not reached within the bound: 503 with Retry-After, then fine once
	// the projector has caught up.
	s.Positions.set(300 * time.Millisecond)
	s.stopProjector()
	pos, id := write()
	r = s.get(t, w.aliceToken, "/api/v1/transactions/"+id+"?min_position="+pos)
	p := MustProblem(t, r, http.StatusServiceUnavailable, "/api/v1/transactions/"+id)
	assert.Equal(t, "unavailable", p.Code)
	assert.Equal(t, "1", r.Header.Get("Retry-After"))
	later, err := strconv.ParseInt(pos, 10, 64)
	require.NoError(t, err)
	r = s.get(t, w.aliceToken, "/api/v1/accounts?min_position="+strconv.FormatInt(later+1_000_000, 10))
	MustProblem(t, r, http.StatusServiceUnavailable, "/api/v1/accounts")
	s.startProjector()
	// Each request waits up to the bound (300 ms) for the restarted
	// projector, so this polls without spinning; a 503 means "not yet".
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 200, "the restarted projector never reached the write")
		r = s.get(t, w.aliceToken, "/api/v1/transactions/"+id+"?min_position="+pos)
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, r.Status, "%s", r.Body)
		if r.Status == http.StatusOK {
			break
		}
	}
}
