package main

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestPoolsSendIDsAsBytes checks configurePool on serve's own pool: ids
// and id arrays reach PostgreSQL intact, and a NULL id still scans
// without an error (uuid.UUID's own Scan leaves the id as it was).
func TestPoolsSendIDsAsBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := connectURL(ctx, testdb.NewURL(t), 2)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	ids := []uuid.UUID{uuid.New(), uuid.New()}
	var text []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(u::text ORDER BY o) FROM unnest($1::uuid[]) WITH ORDINALITY AS x(u, o)`, ids).Scan(&text))
	require.Equal(t, []string{ids[0].String(), ids[1].String()}, text)
	var back uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::uuid`, ids[1]).Scan(&back))
	require.Equal(t, ids[1], back)
	var none uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `SELECT NULL::uuid`).Scan(&none), "NULL scans without an error")
	require.Equal(t, uuid.Nil, none)
}
