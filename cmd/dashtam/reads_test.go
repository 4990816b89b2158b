package main

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestReadsPoolIsItsOwn checks the data API's connections: sized to the
// cores within the application pool's bound, named, and free while every
// connection of the application pool is held (by projectors and jobs, say).
func TestReadsPoolIsItsOwn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, appConns := range []int32{2, 64} {
		pool := testdb.NewWithConns(t, appConns)
		reads, err := readsPool(pool)
		require.NoError(t, err)
		t.Cleanup(reads.Close)
		want := min(appConns, int32(max(minReads, readsPerCore*runtime.NumCPU())))
		require.Equal(t, want, reads.Config().MaxConns)

		var held []func()
		for range appConns {
			c, err := pool.Acquire(ctx)
			require.NoError(t, err)
			held = append(held, c.Release)
		}
		var name string
		require.NoError(t, reads.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&name),
			"a read while the application pool is exhausted")
		require.Equal(t, "dashtam reads", name)
		for _, release := range held {
			release()
		}
	}
}
