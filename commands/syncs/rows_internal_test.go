package syncs

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// A fresh index row is inserted without an upsert; one that another unit
// of work inserted meanwhile is a conflict, so that the unit of work runs
// again and finds it, while a known row is replaced.
func TestIndexRowsFreshAndKnown(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	row := indexRow{id: uuid.New(), accountID: uuid.New(), connectionID: uuid.New(), providerID: "t1",
		status: transaction.StatusPending, date: "2026-01-02", fingerprint: []byte{1}, fresh: true}
	write := func(rs ...indexRow) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return indexTransactions(ctx, tx, rs) })
	}
	require.NoError(t, write(row))

	other := row
	other.id = uuid.New()
	require.ErrorIs(t, write(other, row), eventstore.ErrConflict)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM sync_transactions`).Scan(&n))
	require.Equal(t, 1, n, "nothing of the failed unit stored")

	posted := row
	posted.fresh, posted.status, posted.fingerprint = false, transaction.StatusPosted, []byte{2}
	require.NoError(t, write(other, posted))
	var status string
	var fp []byte
	require.NoError(t, pool.QueryRow(ctx, `SELECT status, fingerprint FROM sync_transactions WHERE transaction_id = $1`, row.id).Scan(&status, &fp))
	require.Equal(t, "posted", status)
	require.Equal(t, []byte{2}, fp)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM sync_transactions`).Scan(&n))
	require.Equal(t, 2, n)
}
