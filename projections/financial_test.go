package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/projections/financialtest"
)

// mustDomainStore returns a store over a fresh database that knows every
// domain event.
func mustDomainStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	reg := eventstore.NewRegistry()
	commands.RegisterEvents(reg)
	s, err := eventstore.New(mustPool(tb), reg)
	require.NoError(tb, err)
	return s
}

// day is the epoch plus n days.
func day(n int) time.Time { return financialtest.Epoch.AddDate(0, 0, n) }

// world is a small financial history of two users, covering every event
// the financial_data projector folds.
type world struct {
	alice, bob                       uuid.UUID
	aliceConn, aliceEmpty, bobConn   uuid.UUID
	checking, brokerage, oldSavings  uuid.UUID
	bobChecking                      uuid.UUID
	deposit, withdrawal, cancelled   uuid.UUID
	trade, bobTx                     uuid.UUID
	checkingSyncedAt, openedBrokerAt time.Time
}

// buildWorld appends the world's events through l.
func buildWorld(t testing.TB, l *financialtest.Ledger) world {
	t.Helper()
	w := world{alice: uuid.New(), bob: uuid.New()}
	w.aliceConn = l.Connection(w.alice)
	w.aliceEmpty = l.Connection(w.alice)
	w.bobConn = l.Connection(w.bob)

	w.checking = l.Account(w.aliceConn, w.alice, financialtest.Details("chk-1", commands.AccountTypeChecking), day(0))
	w.openedBrokerAt = day(0).Add(time.Minute)
	brokerage := financialtest.Details("brk-1", commands.AccountTypeBrokerage)
	brokerage.MaskedNumber = "12345678901234" // a provider that sends too much: only the last four are kept
	w.brokerage = l.Account(w.aliceConn, w.alice, brokerage, w.openedBrokerAt)
	w.oldSavings = l.Account(w.aliceConn, w.alice, financialtest.Details("sav-1", commands.AccountTypeSavings), day(0).Add(2*time.Minute))
	w.bobChecking = l.Account(w.bobConn, w.bob, financialtest.Details("chk-1", commands.AccountTypeChecking), day(0))

	l.Balance(w.alice, w.checking, "1000.50", "990.5", "USD", day(0))
	l.Balance(w.alice, w.checking, "1200.00", "1200", "USD", day(2).Add(3*time.Hour))
	l.Balance(w.alice, w.brokerage, "5000", "", "USD", day(0))
	l.Balance(w.alice, w.oldSavings, "10", "10", "EUR", day(0))
	l.Balance(w.bob, w.bobChecking, "7", "7", "USD", day(0))
	l.Holdings(w.alice, w.brokerage, []account.Holding{
		{Symbol: "AAPL", Quantity: financialtest.Dec("10"), MarketValue: financialtest.Dec("1500"), Currency: "USD"},
		{Symbol: "MSFT", Quantity: financialtest.Dec("2"), MarketValue: financialtest.Dec("800"), Currency: "USD"},
	}, day(0))
	l.Holdings(w.alice, w.brokerage, []account.Holding{
		{Symbol: "AAPL", Description: "Apple", AssetType: "equity", Quantity: financialtest.Dec("12"),
			AveragePrice: financialtest.DecPtr("140.5"), MarketValue: financialtest.Dec("1800.00"), Currency: "USD"},
	}, day(1))

	w.deposit = l.Transaction(w.alice, w.checking, w.aliceConn, financialtest.Tx("t-1", "2026-02-01", commands.TransactionTypeDeposit, "100.00"), day(0))
	pending := financialtest.Tx("t-2", "2026-02-02", commands.TransactionTypeWithdrawal, "-25.5")
	pending.Pending = true
	w.withdrawal = l.Transaction(w.alice, w.checking, w.aliceConn, pending, day(0))
	posted := pending
	posted.Pending, posted.Amount, posted.SettlementDate = false, financialtest.Dec("-25.55"), "2026-02-04"
	l.UpdateTransaction(w.alice, w.withdrawal, posted, day(1))
	gone := financialtest.Tx("t-3", "2026-02-03", commands.TransactionTypeWithdrawal, "-9")
	gone.Pending = true
	w.cancelled = l.Transaction(w.alice, w.checking, w.aliceConn, gone, day(0))
	l.RemoveTransaction(w.alice, w.cancelled, day(1))
	buy := financialtest.Tx("b-1", "2026-02-01", commands.TransactionTypeBuy, "-1502.51")
	buy.Symbol, buy.Quantity, buy.UnitPrice = "AAPL", financialtest.DecPtr("10"), financialtest.DecPtr("150.25")
	buy.Commission, buy.Fees, buy.Description = financialtest.DecPtr("0"), financialtest.DecPtr("0.01"), "=HYPERLINK(\"x\")"
	w.trade = l.Transaction(w.alice, w.brokerage, w.aliceConn, buy, day(0))
	w.bobTx = l.Transaction(w.bob, w.bobChecking, w.bobConn, financialtest.Tx("t-1", "2026-02-01", commands.TransactionTypeDeposit, "1"), day(0))

	l.Close(w.alice, w.oldSavings, day(1))
	// The brokerage failed in this sync; the closed savings account is not synced.
	w.checkingSyncedAt = day(3)
	l.SyncCompleted(w.alice, w.aliceConn, w.checkingSyncedAt, w.brokerage)
	return w
}

// startFinancial runs the financial_data projector (and the others of
// All when all is set) until the test ends, and waits until it caught up.
func startFinancial(t *testing.T, store *eventstore.Store, ps ...projections.Projector) *projections.Manager {
	t.Helper()
	if len(ps) == 0 {
		ps = []projections.Projector{projections.FinancialData{}}
	}
	m, err := projections.NewManager(store, ps, opts(ownerOf(t, store))...)
	require.NoError(t, err)
	require.NoError(t, m.Ensure(context.Background()))
	running(t, m.Start)
	waitCaughtUp(t, m)
	return m
}

// waitCaughtUp waits until every projection of m has applied the whole log.
func waitCaughtUp(t testing.TB, m *projections.Manager) {
	t.Helper()
	eventually(t, "projections catching up", func() bool {
		st, err := m.Status(context.Background())
		require.NoError(t, err)
		for _, s := range st {
			if s.Behind != 0 || s.Position.GlobalPosition == 0 {
				return false
			}
		}
		return true
	})
}

func mustReader(t testing.TB, pool *pgxpool.Pool) *projections.FinancialReader {
	t.Helper()
	r, err := projections.NewFinancialReader(pool)
	require.NoError(t, err)
	return r
}

func str(s string) *string { return &s }

func TestFinancialDataReadModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustDomainStore(t)
	w := buildWorld(t, financialtest.New(t, store))
	startFinancial(t, store)
	r := mustReader(t, store.Pool())

	accts, totals, err := r.ListAccounts(ctx, w.alice, projections.AccountFilter{}, nil, 50)
	require.NoError(t, err)
	require.Len(t, accts, 3)
	assert.Equal(t, []uuid.UUID{w.checking, w.brokerage, w.oldSavings}, []uuid.UUID{accts[0].ID, accts[1].ID, accts[2].ID}, "oldest first")
	chk, brk, sav := accts[0], accts[1], accts[2]
	assert.Equal(t, "1200", *chk.Balance, "the latest balance, as the log has it (1200.00 is recorded as 1200)")
	assert.Equal(t, "1200", *chk.Available)
	assert.Equal(t, "USD", chk.Currency)
	assert.True(t, chk.IsActive)
	require.NotNil(t, chk.LastSyncedAt)
	assert.True(t, w.checkingSyncedAt.Equal(*chk.LastSyncedAt), "synced by the completed sync, which recorded nothing of it")
	assert.Equal(t, "1234", brk.Last4, "never more than the last four")
	assert.Nil(t, brk.Available)
	require.NotNil(t, brk.LastSyncedAt)
	assert.True(t, day(1).Equal(*brk.LastSyncedAt), "a failed account keeps its last sync: its holdings at day 1")
	assert.False(t, sav.IsActive)
	assert.Equal(t, "EUR", sav.Currency)
	assert.True(t, day(0).Add(2*time.Minute).Equal(*sav.LastSyncedAt), "a closed account is not synced: its opening is its last")
	assert.Equal(t, []projections.CurrencyTotal{
		{Currency: "EUR", Balance: "10", Available: str("10"), Accounts: 1},
		{Currency: "USD", Balance: "6200", Available: str("1200"), Accounts: 2},
	}, totals)

	active := true
	accts, totals, err = r.ListAccounts(ctx, w.alice, projections.AccountFilter{Active: &active, Type: commands.AccountTypeBrokerage}, nil, 50)
	require.NoError(t, err)
	require.Len(t, accts, 1)
	assert.Equal(t, w.brokerage, accts[0].ID)
	assert.Equal(t, []projections.CurrencyTotal{{Currency: "USD", Balance: "5000", Accounts: 1}}, totals)

	page, _, err := r.ListAccounts(ctx, w.alice, projections.AccountFilter{}, &projections.AccountKey{OpenedAt: chk.OpenedAt, ID: chk.ID}, 1)
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, w.brokerage, page[0].ID)

	_, err = r.Account(ctx, w.alice, w.bobChecking)
	assert.ErrorIs(t, err, projections.ErrNotFound, "another user's account is missing")
	_, _, err = r.ListConnectionAccounts(ctx, w.alice, w.bobConn, nil, 50)
	assert.ErrorIs(t, err, projections.ErrNotFound)
	empty, _, err := r.ListConnectionAccounts(ctx, w.alice, w.aliceEmpty, nil, 50)
	require.NoError(t, err)
	assert.Empty(t, empty, "a connection of the user's without accounts is an empty page")

	txs, err := r.ListTransactions(ctx, w.alice, projections.TransactionFilter{AccountID: &w.checking}, nil, 50)
	require.NoError(t, err)
	require.Len(t, txs, 3)
	assert.Equal(t, []string{"2026-02-03", "2026-02-02", "2026-02-01"}, []string{txs[0].Date, txs[1].Date, txs[2].Date})
	assert.Equal(t, "removed", txs[0].Status)
	assert.Equal(t, "posted", txs[1].Status)
	assert.Equal(t, "-25.55", txs[1].Amount, "the latest data")
	assert.Equal(t, "2026-02-04", *txs[1].SettlementDate)
	assert.Equal(t, "100", txs[2].Amount, "as the log has it")

	_, err = r.ListTransactions(ctx, w.alice, projections.TransactionFilter{AccountID: &w.bobChecking}, nil, 50)
	assert.ErrorIs(t, err, projections.ErrNotFound)
	_, err = r.ListTransactions(ctx, w.alice, projections.TransactionFilter{AccountID: &w.bobChecking, Start: "2030-01-01"}, nil, 50)
	assert.ErrorIs(t, err, projections.ErrNotFound, "another user's account, even where its page would be empty")
	none, err := r.ListTransactions(ctx, w.alice, projections.TransactionFilter{AccountID: &w.checking, Start: "2030-01-01"}, nil, 50)
	require.NoError(t, err, "an empty page of the user's own account")
	assert.Empty(t, none)
	none, err = r.ListTransactions(ctx, w.alice, projections.TransactionFilter{AccountID: &w.oldSavings}, nil, 50)
	require.NoError(t, err, "an account of the user's without transactions")
	assert.Empty(t, none)
	all, err := r.ListTransactions(ctx, w.alice, projections.TransactionFilter{Status: "posted", Start: "2026-02-01", End: "2026-02-02"}, nil, 50)
	require.NoError(t, err)
	require.Len(t, all, 3, "across the user's accounts")
	trade, err := r.Transaction(ctx, w.alice, w.trade)
	require.NoError(t, err)
	assert.Equal(t, "AAPL", *trade.Symbol)
	assert.Equal(t, "150.25", *trade.UnitPrice)
	assert.Equal(t, "0.01", *trade.Fees)
	assert.Equal(t, "0", *trade.Commission)
	_, err = r.Transaction(ctx, w.alice, w.bobTx)
	assert.ErrorIs(t, err, projections.ErrNotFound)
	trades, err := r.ListTransactions(ctx, w.alice, projections.TransactionFilter{AccountID: &w.brokerage}, nil, 50)
	require.NoError(t, err)
	require.Len(t, trades, 1)
	assert.Equal(t, trade, trades[0], "a page reads its rows as the single read does")
	for _, v := range txs {
		one, err := r.Transaction(ctx, w.alice, v.ID)
		require.NoError(t, err)
		assert.Equal(t, one, v, "a page reads its rows as the single read does")
	}

	holdings, err := r.ListHoldings(ctx, w.alice, nil, nil, 50)
	require.NoError(t, err)
	require.Len(t, holdings, 1, "the later record replaced the earlier")
	assert.Equal(t, "12", holdings[0].Quantity)
	assert.Equal(t, "140.5", *holdings[0].AveragePrice)
	_, err = r.ListHoldings(ctx, w.alice, &w.bobChecking, nil, 50)
	assert.ErrorIs(t, err, projections.ErrNotFound)

	points, err := r.BalanceHistory(ctx, w.alice, w.checking, "2026-02-28", "2026-03-04")
	require.NoError(t, err)
	var got []string
	for _, p := range points {
		got = append(got, p.Date+"="+p.Balance)
	}
	assert.Equal(t, []string{"2026-03-01=1000.5", "2026-03-02=1000.5", "2026-03-03=1200", "2026-03-04=1200"}, got,
		"no point before the first balance, then the day's last balance carried forward")

	snaps, err := r.ListBalanceSnapshots(ctx, w.alice, projections.SnapshotFilter{}, nil, 2)
	require.NoError(t, err)
	require.Len(t, snaps, 2)
	assert.Equal(t, "1200", snaps[0].Balance, "newest first")
	rest, err := r.ListBalanceSnapshots(ctx, w.alice, projections.SnapshotFilter{}, ref(snaps[1].Key()), 50)
	require.NoError(t, err)
	assert.Len(t, rest, 2, "four snapshots of alice's in all")
}

func ref[T any](v T) *T { return &v }

// dumpFinancial renders every table of the live financial_data read model
// as sorted JSON, for comparing two databases.
func dumpFinancial(t testing.TB, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range (projections.FinancialData{}).Tables() {
		var s string
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY to_jsonb(x)::text), '[]')::text FROM `+
			pgx.Identifier{table}.Sanitize()+` x`).Scan(&s))
		out[table] = s
	}
	return out
}

// applyInto applies recs to a fresh database's financial tables, in
// batches of size n, each batch also applied once more after a savepoint
// rollback and then a second time (a repeated delivery).
func applyInto(t *testing.T, recs []eventstore.Record, n int, twice bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	app, owner := testdb.NewPair(t)
	p := projections.FinancialData{}
	require.NoError(t, projections.Ensure(ctx, owner, p))
	tables := projections.LiveTables(p)
	for start := 0; start < len(recs); start += n {
		batch := recs[start:min(start+n, len(recs))]
		require.NoError(t, pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
			if twice {
				if _, err := tx.Exec(ctx, `SAVEPOINT s`); err != nil {
					return err
				}
				if err := p.Apply(ctx, tx, tables, batch); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT s`); err != nil {
					return err
				}
			}
			if err := p.Apply(ctx, tx, tables, batch); err != nil {
				return err
			}
			if twice {
				return p.Apply(ctx, tx, tables, batch)
			}
			return nil
		}))
	}
	return dumpFinancial(t, app)
}

// readLog reads the whole log, waiting for the cluster-wide horizon to pass
// it: another test's open transaction holds back every reader.
func readLog(t testing.TB, store *eventstore.Store) []eventstore.Record {
	t.Helper()
	var n int
	require.NoError(t, store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	var recs []eventstore.Record
	eventually(t, "the horizon passing the log", func() bool {
		var err error
		recs, err = store.ReadAll(context.Background(), eventstore.Position{}, 100_000)
		require.NoError(t, err)
		return len(recs) == n
	})
	return recs
}

// TestFinancialDataIsExactWhateverTheBatches applies one log in batches of
// every size, each batch again after a rollback and once more on top, and
// with a stream's events late (as a parked event retried after later ones
// arrives): the tables come out identical every time.
func TestFinancialDataIsExactWhateverTheBatches(t *testing.T) {
	t.Parallel()
	store := mustDomainStore(t)
	w := buildWorld(t, financialtest.New(t, store))
	recs := readLog(t, store)
	want := applyInto(t, recs, len(recs), false)
	assert.Contains(t, want[transactionsTable], w.trade.String())

	for _, n := range []int{1, 2, 7} {
		t.Run(fmt.Sprintf("batches of %d", n), func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, want, applyInto(t, recs, n, n != 7))
		})
	}
	t.Run("late events", func(t *testing.T) {
		t.Parallel()
		// bob's account opening (its transaction arrives first, without an
		// owner) and the update of the withdrawal (its removal... none: the
		// update alone) come after everything else.
		late := func(r eventstore.Record) bool {
			return (r.Stream.ID == w.bobChecking && r.Version == 1) || (r.Stream.ID == w.withdrawal && r.Version == 2)
		}
		var early, held []eventstore.Record
		for _, r := range recs {
			if late(r) {
				held = append(held, r)
			} else {
				early = append(early, r)
			}
		}
		require.Len(t, held, 2)
		assert.Equal(t, want, applyInto(t, append(early, held...), 3, false))
	})
}

const transactionsTable = "transactions"

// TestVerifyAfterRebuildUnderConcurrentAppends rebuilds and verifies the
// financial read model while transactions are appended all along: verify
// finds it identical to a rebuild; a row tampered with is then reported.
func TestVerifyAfterRebuildUnderConcurrentAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustDomainStore(t)
	l := financialtest.New(t, store)
	w := buildWorld(t, l)
	m := startFinancial(t, store, projections.All()...)

	stop := make(chan struct{})
	var (
		appends  atomic.Int64
		wg       sync.WaitGroup
		appendMu sync.Mutex
		appendEr error
	)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d := financialtest.Tx(fmt.Sprintf("c-%d", i), fmt.Sprintf("2026-01-%02d", 1+i%28), commands.TransactionTypeFee, "-1.25")
			if _, err := l.TryTransaction(w.alice, w.checking, w.aliceConn, d, day(4)); err != nil {
				appendMu.Lock()
				appendEr = err
				appendMu.Unlock()
				return
			}
			appends.Add(1)
		}
	})
	eventually(t, "appends before the rebuild", func() bool { return appends.Load() > 20 })
	require.NoError(t, m.Rebuild(ctx, projections.FinancialDataName, nil))
	before := appends.Load()
	res, err := m.Verify(ctx, projections.FinancialDataName, nil)
	require.NoError(t, err)
	assert.True(t, res.Clean(), "live and rebuilt tables differ: %+v", res.Tables)
	assert.Greater(t, appends.Load(), before, "appends went on during the verification")
	close(stop)
	wg.Wait()
	require.NoError(t, appendEr)
	waitCaughtUp(t, m)
	for _, d := range res.Tables {
		if d.Table == transactionsTable {
			assert.Greater(t, d.LiveRows, int64(20))
		}
	}

	// An operator (or an attacker) edits a live row: verify names it.
	owner := testdb.Owner(t, store.Pool())
	_, err = owner.Exec(ctx, `UPDATE transactions SET amount = amount + 1 WHERE id = $1`, w.deposit)
	require.NoError(t, err)
	res, err = m.Verify(ctx, projections.FinancialDataName, nil)
	require.NoError(t, err)
	require.False(t, res.Clean())
	i := slices.IndexFunc(res.Tables, func(d projections.TableDiff) bool { return d.Table == transactionsTable })
	d := res.Tables[i]
	assert.Equal(t, int64(1), d.OnlyLive)
	assert.Equal(t, int64(1), d.OnlyRebuilt)
	require.Len(t, d.LiveSamples, 1)
	assert.Contains(t, d.LiveSamples[0], w.deposit.String())
	assert.Contains(t, d.LiveSamples[0], `"amount": 101`)
	assert.Contains(t, d.RebuiltSamples[0], `"amount": 100`)
	for _, other := range res.Tables {
		if other.Table != transactionsTable {
			assert.Zero(t, other.OnlyLive+other.OnlyRebuilt, other.Table)
		}
	}
	var shadows int
	require.NoError(t, store.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'projections_rebuild'`).Scan(&shadows))
	assert.Zero(t, shadows, "verify drops its shadow tables")
}

// TestPositionsWaitForTheProjection: a position the projection has not
// applied is not reached (the wait ends with ErrPositionNotReached), and
// the wait ends as soon as the projector applies it.
// TestTransactionPagesSettleOnAGenericPlan pins what keeps a page cheap
// for PostgreSQL (docs/benchmarks.md): over an account of many
// transactions (whose statistics make every custom plan of a keyset page
// look cheaper than the generic one), the prepared page query still runs
// its generic plan after its first executions on a connection, instead of
// planning every page anew.
func TestTransactionPagesSettleOnAGenericPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustDomainStore(t)
	w := buildWorld(t, financialtest.New(t, store))
	startFinancial(t, store)
	// Rows straight into the read model: the plan, not the fold, is tested.
	owner := testdb.Owner(t, store.Pool())
	_, err := owner.Exec(ctx, `INSERT INTO transactions (id, account_id, connection_id, user_id, provider_transaction_id,
		transaction_type, subtype, pending, removed, amount, currency, description, transaction_date,
		data_version, state_version, created_position, updated_position)
		SELECT gen_random_uuid(), $1, $2, $3, 'bulk-' || g, 'withdrawal', 'card_purchase', false, false, -1, 'USD', 'bulk',
		       date '2026-01-31' - g / 20, 1, 1, 0, 0
		  FROM generate_series(1, 20000) AS g`, w.checking, w.aliceConn, w.alice)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `ANALYZE transactions`)
	require.NoError(t, err)
	cfg := store.Pool().Config().Copy()
	cfg.MaxConns = 1 // every statement on the one connection whose plans are read
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	r := mustReader(t, pool)

	after := &projections.TransactionKey{Date: "2026-02-03", ID: w.cancelled}
	for range 8 {
		page, err := r.ListTransactions(ctx, w.alice, projections.TransactionFilter{AccountID: &w.checking, End: "2026-02-28"}, after, 51)
		require.NoError(t, err)
		require.Len(t, page, 51)
	}
	var generic, custom int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE 'SELECT t.id, %' AND statement LIKE '%ORDER BY t.transaction_date DESC%'`).Scan(&generic, &custom))
	assert.Positive(t, generic, "generic plans of the page query (custom: %d)", custom)
}

func TestPositionsWaitForTheProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustDomainStore(t)
	l := financialtest.New(t, store)
	w := buildWorld(t, l)
	m, err := projections.NewManager(store, []projections.Projector{projections.FinancialData{}}, opts(ownerOf(t, store))...)
	require.NoError(t, err)
	require.NoError(t, m.Ensure(ctx))

	short, err := projections.NewPositions(store.Pool(), m.Applied(), 50*time.Millisecond)
	require.NoError(t, err)
	names := []string{projections.FinancialDataName}
	pos := l.LastPosition()
	assert.ErrorIs(t, short.WaitApplied(ctx, names, pos), projections.ErrPositionNotReached, "no projector runs")
	assert.ErrorIs(t, short.WaitApplied(ctx, names, pos+1000), projections.ErrPositionNotReached, "no such event")
	ok, err := short.Reached(ctx, []string{"no_such_projection"}, 1)
	require.NoError(t, err)
	assert.False(t, ok)

	long, err := projections.NewPositions(store.Pool(), m.Applied(), time.Minute)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- long.WaitApplied(ctx, names, pos) }()
	running(t, m.Start)
	require.NoError(t, <-done)
	_, err = mustReader(t, store.Pool()).Account(ctx, w.alice, w.checking)
	require.NoError(t, err, "what the position covered is readable")

	later := l.Transaction(w.alice, w.checking, w.aliceConn, financialtest.Tx("late", "2026-03-01", commands.TransactionTypeFee, "-1"), day(5))
	require.NoError(t, long.WaitApplied(ctx, names, l.LastPosition()))
	_, err = mustReader(t, store.Pool()).Transaction(ctx, w.alice, later)
	require.NoError(t, err, "read your write")
	assert.False(t, errors.Is(err, projections.ErrNotFound))
}
