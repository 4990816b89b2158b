package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/projections/financialtest"
)

// truthAccount is what a random history says of one account.
type truthAccount struct {
	user, conn         uuid.UUID
	balance, available string // "" until recorded; available "" when not reported
	currency           string
	active             bool
	holdings           []account.Holding
}

// truthTx is what a random history says of one transaction.
type truthTx struct {
	user, account uuid.UUID
	date, amount  string
	typ, status   string
	providerID    string
}

// truth folds a random history the plain way: maps in memory.
type truth struct {
	accounts map[uuid.UUID]*truthAccount
	order    []uuid.UUID // accounts in opening order
	txs      map[uuid.UUID]*truthTx
	txOrder  []uuid.UUID
}

// randomHistory appends n random operations through l and folds them into
// tr: accounts opened and closed, balances (with and without an available
// balance, in two currencies), holdings replaced (emptied too),
// transactions recorded pending or posted, posted with a corrected amount,
// and removed while pending.
func randomHistory(t *testing.T, r *rand.Rand, l *financialtest.Ledger, tr *truth, users []uuid.UUID, conns map[uuid.UUID]uuid.UUID, n int, clock *time.Time) {
	t.Helper()
	amount := func() string {
		return fmt.Sprintf("%d.%02d", r.IntN(20000)-10000, r.IntN(100))
	}
	pick := func(keep func(*truthAccount) bool) (uuid.UUID, *truthAccount, bool) {
		var ids []uuid.UUID
		for _, id := range tr.order {
			if keep(tr.accounts[id]) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return uuid.Nil, nil, false
		}
		id := ids[r.IntN(len(ids))]
		return id, tr.accounts[id], true
	}
	pickTx := func(keep func(*truthTx) bool) (uuid.UUID, *truthTx, bool) {
		var ids []uuid.UUID
		for _, id := range tr.txOrder {
			if keep(tr.txs[id]) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return uuid.Nil, nil, false
		}
		id := ids[r.IntN(len(ids))]
		return id, tr.txs[id], true
	}
	active := func(a *truthAccount) bool { return a.active }
	types := []string{commands.TransactionTypeDeposit, commands.TransactionTypeWithdrawal, commands.TransactionTypeFee,
		commands.TransactionTypeDividend, commands.TransactionTypeTransfer}
	for i := 0; i < n; i++ {
		*clock = clock.Add(time.Minute)
		at := *clock
		switch op := r.IntN(100); {
		case op < 10 || len(tr.order) == 0:
			u := users[r.IntN(len(users))]
			typ := []string{commands.AccountTypeChecking, commands.AccountTypeSavings, commands.AccountTypeBrokerage}[r.IntN(3)]
			d := financialtest.Details(fmt.Sprintf("acct-%d", len(tr.order)), typ)
			if r.IntN(3) == 0 {
				d.Currency = "EUR"
			}
			id := l.Account(conns[u], u, d, at)
			tr.accounts[id] = &truthAccount{user: u, conn: conns[u], currency: d.Currency, active: true}
			tr.order = append(tr.order, id)
		case op < 25:
			id, a, ok := pick(active)
			if !ok {
				continue
			}
			a.balance, a.available = amount(), ""
			if r.IntN(2) == 0 {
				a.available = amount()
			}
			l.Balance(a.user, id, a.balance, a.available, a.currency, at)
		case op < 32:
			id, a, ok := pick(active)
			if !ok {
				continue
			}
			hs := make([]account.Holding, r.IntN(4))
			for k := range hs {
				hs[k] = account.Holding{Symbol: fmt.Sprintf("SYM%d", r.IntN(50)), Quantity: financialtest.Dec(fmt.Sprint(1 + r.IntN(100))),
					MarketValue: financialtest.Dec(amount()), Currency: a.currency}
			}
			a.holdings = hs
			l.Holdings(a.user, id, hs, at)
		case op < 35:
			id, a, ok := pick(active)
			if !ok {
				continue
			}
			a.active = false
			l.Close(a.user, id, at)
		case op < 75:
			id, a, ok := pick(active)
			if !ok {
				continue
			}
			d := financialtest.Tx(fmt.Sprintf("tx-%d", len(tr.txOrder)), fmt.Sprintf("2026-%02d-%02d", 1+r.IntN(3), 1+r.IntN(28)),
				types[r.IntN(len(types))], amount())
			d.Currency = a.currency
			d.Pending = r.IntN(2) == 0
			txID := l.Transaction(a.user, id, a.conn, d, at)
			status := "posted"
			if d.Pending {
				status = "pending"
			}
			tr.txs[txID] = &truthTx{user: a.user, account: id, date: d.Date, amount: d.Amount.String(), typ: d.Type, status: status,
				providerID: d.ProviderTransactionID}
			tr.txOrder = append(tr.txOrder, txID)
		case op < 90:
			id, x, ok := pickTx(func(x *truthTx) bool { return x.status == "pending" })
			if !ok {
				continue
			}
			d := financialtest.Tx(x.providerID, x.date, x.typ, x.amount)
			d.Currency = tr.accounts[x.account].currency
			if r.IntN(2) == 0 {
				d.Amount = financialtest.Dec(amount()) // the posted amount differs from the pending one
			}
			l.UpdateTransaction(x.user, id, d, at)
			x.amount, x.status = d.Amount.String(), "posted"
		default:
			id, x, ok := pickTx(func(x *truthTx) bool { return x.status == "pending" })
			if !ok {
				continue
			}
			l.RemoveTransaction(x.user, id, at)
			x.status = "removed"
		}
	}
}

// decEqual compares two decimal texts by value ("" only equals "").
func decEqual(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	return decimal.RequireFromString(a).Equal(decimal.RequireFromString(b))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// assertReadModelIsTheTruth reads everything through the reader, as the
// API does, and compares it with the truth, user by user.
func assertReadModelIsTheTruth(t *testing.T, rd *projections.FinancialReader, tr *truth, users []uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	for ui, u := range users {
		other := users[(ui+1)%len(users)]
		// Accounts and their totals.
		list, totals, err := rd.ListAccounts(ctx, u, projections.AccountFilter{}, nil, 100)
		require.NoError(t, err)
		want := map[uuid.UUID]*truthAccount{}
		sums := map[string]decimal.Decimal{}
		for _, id := range tr.order {
			if a := tr.accounts[id]; a.user == u {
				want[id] = a
				if a.balance != "" {
					sums[a.currency] = sums[a.currency].Add(decimal.RequireFromString(a.balance))
				}
			}
		}
		require.Len(t, list, len(want), "accounts of user %d", ui)
		for _, v := range list {
			a, ok := want[v.ID]
			require.True(t, ok, "an account of another user: %s", v.ID)
			assert.True(t, decEqual(a.balance, deref(v.Balance)), "balance of %s: %s, want %s", v.ID, deref(v.Balance), a.balance)
			assert.True(t, decEqual(a.available, deref(v.Available)), "available balance of %s", v.ID)
			assert.Equal(t, a.active, v.IsActive, "active %s", v.ID)
			assert.Equal(t, a.currency, v.Currency)
			_, err := rd.Account(ctx, other, v.ID)
			assert.ErrorIs(t, err, projections.ErrNotFound, "another user's account")

			holdings, err := rd.ListHoldings(ctx, u, &v.ID, nil, 100)
			require.NoError(t, err)
			require.Len(t, holdings, len(a.holdings), "holdings of %s", v.ID)
			for k, h := range holdings {
				assert.Equal(t, a.holdings[k].Symbol, h.Symbol)
				assert.True(t, decEqual(a.holdings[k].MarketValue.String(), h.MarketValue))
			}
		}
		require.Len(t, totals, len(sums), "currencies with a balance")
		for _, tot := range totals {
			assert.True(t, sums[tot.Currency].Equal(decimal.RequireFromString(tot.Balance)), "total in %s: %s, want %s",
				tot.Currency, tot.Balance, sums[tot.Currency])
		}

		// Transactions, walked page by page along the keyset.
		var got []projections.TransactionView
		var after *projections.TransactionKey
		for {
			page, err := rd.ListTransactions(ctx, u, projections.TransactionFilter{}, after, 7)
			require.NoError(t, err)
			got = append(got, page...)
			if len(page) < 7 {
				break
			}
			k := page[len(page)-1].Key()
			after = &k
		}
		var wantIDs []uuid.UUID
		for _, id := range tr.txOrder {
			if tr.txs[id].user == u {
				wantIDs = append(wantIDs, id)
			}
		}
		require.Len(t, got, len(wantIDs), "transactions of user %d", ui)
		assert.True(t, slices.IsSortedFunc(got, func(a, b projections.TransactionView) int {
			if c := strings.Compare(b.Date, a.Date); c != 0 {
				return c
			}
			return strings.Compare(b.ID.String(), a.ID.String())
		}), "newest first, then id descending")
		pending := 0
		for _, v := range got {
			x, ok := tr.txs[v.ID]
			require.True(t, ok, "an unknown transaction %s", v.ID)
			require.Equal(t, u, x.user)
			assert.Equal(t, x.status, v.Status, "status of %s", v.ID)
			assert.True(t, decEqual(x.amount, v.Amount), "amount of %s: %s, want %s", v.ID, v.Amount, x.amount)
			assert.Equal(t, x.date, v.Date)
			assert.Equal(t, x.typ, v.Type)
			if x.status == "pending" {
				pending++
			}
		}
		onlyPending, err := rd.ListTransactions(ctx, u, projections.TransactionFilter{Status: "pending"}, nil, 100)
		require.NoError(t, err)
		assert.Len(t, onlyPending, min(pending, 100), "pending transactions")
	}
}

// TestFinancialDataMatchesTheTruthOfRandomHistories is the read side's
// property: whatever random history of account and transaction events is
// appended — half of it while the projector runs — the read model, read
// through the API's queries, equals a plain fold of the same history, and
// a rebuild gives the same answers and verifies clean.
func TestFinancialDataMatchesTheTruthOfRandomHistories(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 0x5eed))
			store := mustDomainStore(t)
			l := financialtest.New(t, store)
			users := []uuid.UUID{uuid.New(), uuid.New()}
			conns := map[uuid.UUID]uuid.UUID{}
			for _, u := range users {
				conns[u] = l.Connection(u)
			}
			tr := &truth{accounts: map[uuid.UUID]*truthAccount{}, txs: map[uuid.UUID]*truthTx{}}
			clock := financialtest.Epoch
			randomHistory(t, r, l, tr, users, conns, 60, &clock)
			m := startFinancial(t, store)
			randomHistory(t, r, l, tr, users, conns, 90, &clock)
			waitCaughtUp(t, m)
			t.Logf("%d accounts, %d transactions", len(tr.order), len(tr.txOrder))
			rd := mustReader(t, store.Pool())
			assertReadModelIsTheTruth(t, rd, tr, users)

			ctx := context.Background()
			require.NoError(t, m.Rebuild(ctx, projections.FinancialDataName, nil))
			assertReadModelIsTheTruth(t, rd, tr, users)
			res, err := m.Verify(ctx, projections.FinancialDataName, nil)
			require.NoError(t, err)
			assert.True(t, res.Clean(), "%+v", res.Tables)
		})
	}
}
