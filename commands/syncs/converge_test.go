package syncs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/projections"
)

// errCrash is the crash the interruption tests inject between two units
// of work.
var errCrash = errors.New("crashed between two units of work")

// before and after are two provider snapshots: the second posts, corrects,
// cancels and adds transactions, closes an account and opens another.
func convergeSnapshots(w *world) (before, after func()) {
	accounts := []bankAccount{
		{ID: "acc_a", Name: "Checking", Product: "checking", Last4: "1111", Balance: "1000.00"},
		{ID: "acc_b", Name: "Brokerage", Product: "brokerage", Last4: "2222", Balance: "5000.00"},
		{ID: "acc_c", Name: "Savings", Product: "savings", Last4: "3333", Balance: "300.00"},
	}
	txs := func(account string, n, pendingEvery int) []bankTx {
		var out []bankTx
		for i := range n {
			out = append(out, bankTx{ID: account + "_" + strconv.Itoa(i), Kind: "card_purchase", Description: "Shop " + strconv.Itoa(i),
				Amount: "-" + strconv.Itoa(10+i) + ".00", Date: w.day(-(n - i) / 2), Pending: pendingEvery > 0 && i%pendingEvery == 0})
		}
		return out
	}
	a, b := txs("acc_a", 7, 3), txs("acc_b", 5, 2)
	before = func() {
		w.bank.set(accounts, map[string][]bankTx{"acc_a": a, "acc_b": b, "acc_c": txs("acc_c", 2, 0)},
			map[string][]bankPosition{"acc_b": {{Symbol: "VTI", Quantity: "1", Value: "250.00"}}})
	}
	after = func() {
		a2 := append([]bankTx(nil), a...)
		a2[0].Pending, a2[0].Amount = false, "-12.50" // posted for another amount
		a2[3].Pending = false                         // posted
		a2 = append(a2[:6:6], bankTx{ID: "acc_a_new", Kind: "ach_credit", Description: "Refund", Amount: "5.00", Date: w.day(0)})
		b2 := append([]bankTx(nil), b[1:]...) // b_0, pending, cancelled
		b2[0].Description = "Corrected"       // b_1 posted, description corrected
		w.bank.set([]bankAccount{accounts[0], accounts[1],
			{ID: "acc_d", Name: "New Savings", Product: "savings", Last4: "4444", Balance: "10.00"}},
			map[string][]bankTx{"acc_a": a2, "acc_b": b2, "acc_d": txs("acc_d", 3, 0)},
			map[string][]bankPosition{"acc_b": {{Symbol: "VTI", Quantity: "2", Value: "500.00"}}})
	}
	return before, after
}

// TestInterruptedSyncConverges stops a sync after each of its units of
// work in turn (a crash), and during a provider call (a cancelled job),
// then runs it again, by the job's retry or by the next sync once the
// first is stale; every time the folded state and the index equal those
// of an uninterrupted run.
func TestInterruptedSyncConverges(t *testing.T) {
	reference := func() (state, int) {
		w := newWorld(t, worldOptions{batch: 2})
		before, after := convergeSnapshots(w)
		before()
		p := user()
		id := w.connectSandbox(p, "Reference", "default")
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		after()
		w.clock.Advance(time.Hour)
		units := 0
		syncs.SetAfterUnit(w.syncs, func(int) error { units++; return nil })
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		return w.folded(), units
	}
	want, units := reference()
	require.Greater(t, units, 8, "the second sync writes in many units of work")

	interrupted := func(t *testing.T, stop func(w *world, cancel func()), byNextSync bool) {
		w := newWorld(t, worldOptions{batch: 2})
		before, after := convergeSnapshots(w)
		before()
		p := user()
		id := w.connectSandbox(p, "Interrupted", "default")
		require.IsType(t, connection.SyncCompleted{}, w.sync(p, id))
		after()
		w.clock.Advance(time.Hour)
		v := w.request(p, id)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop(w, cancel)
		err := w.syncs.RunSync(ctx, syncs.Job{ConnectionID: id})
		require.Error(t, err, "the sync was interrupted")
		require.Nil(t, w.outcome(id, v.ID), "an interrupted sync is still in progress")
		syncs.SetAfterUnit(w.syncs, nil)
		w.bank.mu.Lock()
		w.bank.onRequest = nil
		w.bank.mu.Unlock()
		if byNextSync {
			w.clock.Advance(connection.SyncStale)
			next := w.request(p, id)
			require.NoError(t, w.run(id))
			require.IsType(t, connection.SyncFailed{}, w.outcome(id, v.ID), "abandoned")
			require.IsType(t, connection.SyncCompleted{}, w.outcome(id, next.ID))
		} else {
			require.NoError(t, w.run(id))
			require.IsType(t, connection.SyncCompleted{}, w.outcome(id, v.ID))
		}
		require.Equal(t, want, w.folded())
		w.indexMatchesLog()
	}
	for k := 1; k < units; k++ {
		t.Run(fmt.Sprintf("crash after unit %d", k), func(t *testing.T) {
			interrupted(t, func(w *world, _ func()) {
				syncs.SetAfterUnit(w.syncs, func(unit int) error {
					if unit == k {
						return errCrash
					}
					return nil
				})
			}, k%2 == 0)
		})
	}
	for _, n := range []int{2, 5, 9} {
		t.Run(fmt.Sprintf("cancelled at provider call %d", n), func(t *testing.T) {
			interrupted(t, func(w *world, cancel func()) {
				calls := 0
				w.bank.mu.Lock()
				w.bank.onRequest = func(*http.Request) {
					if calls++; calls == n {
						cancel()
					}
				}
				w.bank.mu.Unlock()
			}, n == 5)
		})
	}
	t.Run("provider down midway", func(t *testing.T) {
		interrupted(t, func(w *world, _ func()) {
			w.bank.fail("transactions:acc_b", http.StatusServiceUnavailable, "temporarily_unavailable", "")
		}, false)
	})
}

// gen is a random provider: accounts whose transactions are added, post
// (sometimes for another amount), are corrected or cancelled, day after
// day, with balances and positions moving.
type gen struct {
	r        *rand.Rand
	w        *world
	next     int
	accounts []bankAccount
	txs      map[string][]bankTx
	pos      map[string][]bankPosition
	// seen is every transaction a completed sync saw listed.
	seen map[string]bool
}

func newGen(w *world, seed uint64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed)), w: w, txs: map[string][]bankTx{}, pos: map[string][]bankPosition{}, seen: map[string]bool{}}
	for i := range 1 + g.r.IntN(3) {
		id := "acc_" + strconv.Itoa(i)
		g.accounts = append(g.accounts, bankAccount{ID: id, Name: "Account " + strconv.Itoa(i), Product: []string{"checking", "savings", "brokerage"}[i%3],
			Last4: fmt.Sprintf("%04d", i), Balance: "100.00"})
	}
	return g
}

// money is a random amount of cents, signed.
func (g *gen) money() string {
	c := g.r.IntN(50000) - 40000
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// step moves the provider one day on.
func (g *gen) step() {
	for i := range g.accounts {
		a := &g.accounts[i]
		a.Balance = g.money()
		var kept []bankTx
		for _, t := range g.txs[a.ID] {
			switch roll := g.r.Float64(); {
			case t.Pending && roll < 0.15:
				continue // cancelled
			case t.Pending && roll < 0.55:
				t.Pending, t.ValueDate = false, g.w.day(0)
				if g.r.IntN(2) == 0 {
					t.Amount = g.money()
				}
			case t.Date >= g.w.day(-5) && roll > 0.95:
				t.Amount, t.Description = g.money(), t.Description+" (corrected)"
			}
			kept = append(kept, t)
		}
		for range g.r.IntN(5) {
			g.next++
			kept = append(kept, bankTx{ID: "tx" + strconv.Itoa(g.next), Kind: []string{"card_purchase", "ach_credit", "service_fee"}[g.r.IntN(3)],
				Description: "Thing " + strconv.Itoa(g.next), Amount: g.money(), Date: g.w.day(-g.r.IntN(3)), Pending: g.r.IntN(2) == 0})
		}
		g.txs[a.ID] = kept
		if g.r.IntN(3) == 0 {
			g.pos[a.ID] = nil
			for j := range g.r.IntN(3) {
				g.pos[a.ID] = append(g.pos[a.ID], bankPosition{Symbol: "SYM" + strconv.Itoa(j), Quantity: strconv.Itoa(1 + g.r.IntN(9)), Value: g.money()})
			}
		}
	}
	g.w.bank.set(g.accounts, g.txs, g.pos)
}

// synced notes what a completed sync saw.
func (g *gen) synced() {
	for _, a := range g.accounts {
		for _, t := range g.txs[a.ID] {
			g.seen[a.ID+"/"+t.ID] = true
		}
	}
}

// check compares the folded state with the provider's last snapshot.
func (g *gen) check(t *testing.T, s state) {
	t.Helper()
	listed := map[string]bankTx{}
	for _, a := range g.accounts {
		got := s.accounts[a.ID]
		require.True(t, got.Active, "account %s", a.ID)
		require.Equal(t, strip(a.Balance), got.Balance, "balance of %s", a.ID)
		var want []string
		for _, p := range g.pos[a.ID] {
			want = append(want, p.Symbol+" "+p.Quantity+" "+strip(p.Value))
		}
		if want != nil || got.Holdings != nil {
			require.ElementsMatch(t, want, got.Holdings, "holdings of %s", a.ID)
		}
		for _, tx := range g.txs[a.ID] {
			listed[a.ID+"/"+tx.ID] = tx
		}
	}
	for key := range g.seen {
		got, ok := s.transactions[key]
		require.True(t, ok, "transaction %s was seen but is not stored", key)
		want, still := listed[key]
		if !still {
			require.Equal(t, transaction.StatusRemoved, got.Status, "%s was cancelled", key)
			continue
		}
		status := transaction.StatusPosted
		if want.Pending {
			status = transaction.StatusPending
		}
		require.Equal(t, status, got.Status, "status of %s", key)
		require.Equal(t, strip(want.Amount), got.Data.Amount.String(), "amount of %s", key)
		require.Equal(t, want.Description, got.Data.Description, "description of %s", key)
		require.Equal(t, want.Date, got.Data.Date, "date of %s", key)
		require.Equal(t, want.ValueDate, got.Data.SettlementDate, "settlement of %s", key)
	}
	require.Len(t, s.transactions, len(g.seen), "stored transactions: %v", sortedKeys(s.transactions))
}

// strip writes a decimal as the aggregates print it (1.50 as 1.5).
func strip(s string) string {
	for len(s) > 0 && s[len(s)-1] == '0' && containsDot(s) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if s == "-0" {
		return "0"
	}
	return s
}

func containsDot(s string) bool {
	for _, c := range s {
		if c == '.' {
			return true
		}
	}
	return false
}

// checkReadModel compares what the data API serves (the financial_data
// read model, once every projector has caught up) with the provider's
// last snapshot: accounts and balances, holdings, and every transaction a
// sync saw, cancelled ones shown as removed.
func (g *gen) checkReadModel(t *testing.T, r *projections.FinancialReader, userID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	accts, _, err := r.ListAccounts(ctx, userID, projections.AccountFilter{}, nil, 100)
	require.NoError(t, err)
	byProvider := map[string]projections.AccountView{}
	for _, a := range accts {
		byProvider[a.ProviderAccountID] = a
	}
	require.Len(t, byProvider, len(g.accounts), "accounts served")
	listed := map[string]bankTx{}
	for _, a := range g.accounts {
		got, ok := byProvider[a.ID]
		require.True(t, ok, "account %s is served", a.ID)
		require.True(t, got.IsActive, "account %s", a.ID)
		require.NotNil(t, got.Balance, "balance of %s", a.ID)
		requireSameAmount(t, a.Balance, *got.Balance, "balance of %s", a.ID)
		holdings, err := r.ListHoldings(ctx, userID, &got.ID, nil, 100)
		require.NoError(t, err)
		var want, have []string
		for _, p := range g.pos[a.ID] {
			want = append(want, p.Symbol+" "+p.Quantity+" "+strip(p.Value))
		}
		for _, h := range holdings {
			have = append(have, h.Symbol+" "+strip(h.Quantity)+" "+strip(h.MarketValue))
		}
		require.ElementsMatch(t, want, have, "holdings of %s", a.ID)
		for _, tx := range g.txs[a.ID] {
			listed[a.ID+"/"+tx.ID] = tx
		}
	}
	served := map[string]projections.TransactionView{}
	accountOf := map[uuid.UUID]string{}
	for _, a := range accts {
		accountOf[a.ID] = a.ProviderAccountID
	}
	var after *projections.TransactionKey
	for {
		page, err := r.ListTransactions(ctx, userID, projections.TransactionFilter{}, after, 50)
		require.NoError(t, err)
		for _, v := range page {
			served[accountOf[v.AccountID]+"/"+v.ProviderTransactionID] = v
		}
		if len(page) < 50 {
			break
		}
		k := page[len(page)-1].Key()
		after = &k
	}
	require.Len(t, served, len(g.seen), "transactions served: %v", sortedKeys(served))
	for key := range g.seen {
		got, ok := served[key]
		require.True(t, ok, "transaction %s was seen but is not served", key)
		want, still := listed[key]
		if !still {
			require.Equal(t, "removed", got.Status, "%s was cancelled", key)
			continue
		}
		status := "posted"
		if want.Pending {
			status = "pending"
		}
		require.Equal(t, status, got.Status, "status of %s", key)
		requireSameAmount(t, want.Amount, got.Amount, "amount of %s", key)
		require.Equal(t, want.Description, got.Description, "description of %s", key)
		require.Equal(t, want.Date, got.Date, "date of %s", key)
		if want.ValueDate == "" {
			require.Nil(t, got.SettlementDate, "settlement of %s", key)
		} else {
			require.NotNil(t, got.SettlementDate, "settlement of %s", key)
			require.Equal(t, want.ValueDate, *got.SettlementDate, "settlement of %s", key)
		}
	}
}

// startFinancial runs the financial_data projector alone over w's
// database until the test ends: the one the data API's reads come from.
func startFinancial(tb testing.TB, w *world) *projections.Manager {
	tb.Helper()
	var ps []projections.Projector
	for _, p := range projections.All() {
		if p.Name() == projections.FinancialDataName {
			ps = append(ps, p)
		}
	}
	require.Len(tb, ps, 1)
	return startProjectors(tb, w, ps)
}

// requireSameAmount compares two decimal strings by value (1.50 = 1.5).
func requireSameAmount(t *testing.T, want, got string, msgAndArgs ...any) {
	t.Helper()
	require.True(t, decimal.RequireFromString(want).Equal(decimal.RequireFromString(got)), append([]any{"want %s, got %s: ", want, got}, msgAndArgs...)...)
}

// TestRandomSnapshotsConverge runs random sequences of provider
// snapshots, one sync a day, some interrupted between two units of work
// and run again, and checks after every sync that the folded aggregates
// and the read models the data API serves are the last snapshot's truth
// (and the index the log's).
func TestRandomSnapshotsConverge(t *testing.T) {
	sequences, days := 16, 10
	if testing.Short() {
		sequences = 3
	}
	// Every kind of change must have been exercised, or the property says little.
	var total connection.SyncCounts
	defer func() {
		if !t.Failed() {
			require.Positive(t, total.Created, "created")
			require.Positive(t, total.Updated, "updated")
			require.Positive(t, total.Removed, "removed")
			require.Positive(t, total.Unchanged, "unchanged")
		}
	}()
	for seq := range sequences {
		seed := uint64(time.Now().UnixNano()) ^ uint64(seq)
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			w := newWorld(t, worldOptions{batch: 1 + int(seed%4)})
			m := startFinancial(t, w)
			reader, err := projections.NewFinancialReader(w.pool)
			require.NoError(t, err)
			positions, err := projections.NewPositions(w.pool, m.Applied(), time.Minute)
			require.NoError(t, err)
			g := newGen(w, seed)
			g.step()
			p := user()
			id := w.connectSandbox(p, "Random", "default")
			for day := range days {
				v := w.request(p, id)
				if g.r.IntN(3) == 0 {
					k := 1 + g.r.IntN(8)
					syncs.SetAfterUnit(w.syncs, func(unit int) error {
						if unit == k {
							return errCrash
						}
						return nil
					})
					_ = w.run(id)
					syncs.SetAfterUnit(w.syncs, nil)
				}
				if w.outcome(id, v.ID) == nil {
					require.NoError(t, w.run(id), "day %d", day)
				}
				done, ok := w.outcome(id, v.ID).(connection.SyncCompleted)
				require.True(t, ok, "day %d", day)
				total = total.Add(done.Counts)
				g.synced()
				g.check(t, w.folded())
				var last int64
				require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT global_position FROM events
					ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&last))
				require.NoError(t, positions.WaitApplied(context.Background(), []string{projections.FinancialDataName}, last))
				g.checkReadModel(t, reader, p.UserID)
				w.clock.Advance(24 * time.Hour)
				g.step()
			}
			w.indexMatchesLog()
		})
	}
}
