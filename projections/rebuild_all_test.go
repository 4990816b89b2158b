package projections_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/projections/financialtest"
)

// readModelSnapshot is every row of the tables of ps, as JSON, sorted, and
// the positions parked per projection: what a rebuild must reproduce.
func readModelSnapshot(t *testing.T, pool *pgxpool.Pool, ps []projections.Projector) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range ps {
		live := projections.LiveTables(p)
		for _, table := range p.Tables() {
			var rows string
			require.NoError(t, pool.QueryRow(context.Background(), fmt.Sprintf(
				`SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY to_jsonb(x)::text), '[]')::text FROM %s x`, live.Of(table))).Scan(&rows))
			out[table] = rows
		}
		var parked string
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(global_position::text, ',' ORDER BY global_position), '')
			FROM projection_parked_events WHERE projection = $1`, p.Name()).Scan(&parked))
		out["parked by "+p.Name()] = parked
	}
	return out
}

// TestRebuildAllSharesTheReadAndEqualsTheLivePath rebuilds the data
// projections from one shared read of the log, in batches small enough
// that the shared replay runs many of them, and finds exactly the rows and
// parked events the live consumers produced batch by batch: updates,
// removals, a transaction recorded before its account was opened, a
// closed account, balances and holdings replaced, and an event one
// projector fails on (which it parks, leaving the shared replay) while the
// other applies it.
func TestRebuildAllSharesTheReadAndEqualsTheLivePath(t *testing.T) {
	t.Parallel()
	store := mustDomainStore(t)
	l := financialtest.New(t, store)
	w := buildWorld(t, l)

	// A transaction recorded before its account is opened (a provider's
	// events in that order), then the opening: the owner arrives late.
	user := uuid.New()
	conn := l.Connection(user)
	late := uuid.New()
	early := l.Transaction(user, late, conn, financialtest.Tx("early", "2025-03-01", "withdrawal", "-5.00"), day(3))
	// Enough transactions for a rebuild's batch to COPY them (before their
	// account's opening, too), in every form a column takes: investment
	// fields, large and zero amounts, settlement dates, a date PostgreSQL
	// reads that is not in the canonical form, text COPY must escape; some posted later, some
	// removed.
	bulk := make([]transaction.Data, 150)
	for i := range bulk {
		d := financialtest.Tx(fmt.Sprintf("bulk-%d", i), fmt.Sprintf("2025-%02d-%02d", 1+i%12, 1+i%28), "withdrawal",
			[]string{"-12.34", "0", "123456789012345678901.123456789", "7", "-0.01"}[i%5])
		d.Pending = i%4 == 0
		if i%3 == 0 {
			q, p, c := financialtest.Dec(fmt.Sprintf("%d.5", i)), financialtest.Dec("101.25"), financialtest.Dec("0")
			d.Symbol, d.Quantity, d.UnitPrice, d.Commission, d.SettlementDate = "VTI", &q, &p, &c, "2025-06-30"
		}
		if i == 7 {
			d.Date = "2025-3-1"
		}
		if i == 8 {
			d.Description, d.Subtype = "", ""
		}
		if i == 9 {
			d.Description = "a\ttab, a\nnewline, a \\N, a\r return and \\. ünïcode"
		}
		bulk[i] = d
	}
	bulkIDs := l.BulkTransactions(user, late, conn, bulk, day(3))
	l.Append(user, eventstore.Stream{Type: eventstore.StreamAccount, ID: late},
		account.AccountOpened{AccountID: late, ConnectionID: conn, UserID: user,
			Details: financialtest.Details("late-1", "checking"), At: day(3)})
	l.UpdateTransaction(user, early, financialtest.Tx("early", "2025-03-02", "withdrawal", "-6.00"), day(4))
	var postedIDs []uuid.UUID
	var posted []transaction.Data
	for i := 0; i < len(bulk); i += 4 {
		d := bulk[i]
		d.Pending = false
		postedIDs, posted = append(postedIDs, bulkIDs[i]), append(posted, d)
	}
	l.BulkUpdateTransactions(user, postedIDs, posted, day(4))
	for i := 1; i < len(bulk); i += 15 {
		l.RemoveTransaction(user, bulkIDs[i], day(4))
	}
	l.SyncCompleted(user, conn, day(4))
	// A connection stream whose first event is no attempt: the connections
	// projector fails on it every time and parks it; financial_data folds
	// the sync (of a connection with no accounts).
	l.Append(w.alice, eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()},
		connection.SyncCompleted{ConnectionID: uuid.New(), SyncID: uuid.New(), At: day(5)})

	ps := []projections.Projector{projections.Connections{}, projections.FinancialData{}}
	m := startFinancial(t, store, ps...)
	waitCaughtUp(t, m)
	want := readModelSnapshot(t, store.Pool(), ps)
	require.NotEmpty(t, want["parked by connections"], "the poisoned event is parked live")
	require.Contains(t, want[transactionsTable], early.String())

	for _, batch := range []int{1, 7, 100, 10_000} {
		rb, err := projections.NewManager(store, ps, opts(projections.WithRebuildBatchSize(batch), ownerOf(t, store))...)
		require.NoError(t, err)
		var last, total int64
		require.NoError(t, rb.RebuildAll(context.Background(), []string{"connections", projections.FinancialDataName},
			func(done, all int64) { last, total = done, all }))
		assert.Equal(t, total, last, "progress ends at the total")
		assert.Equal(t, want, readModelSnapshot(t, store.Pool(), ps), "rebuilt in batches of %d", batch)
		for _, p := range ps {
			res, err := m.Verify(context.Background(), p.Name(), nil)
			require.NoError(t, err)
			assert.True(t, res.Clean(), "%s after batches of %d: %+v", p.Name(), batch, res.Tables)
		}
	}
}
