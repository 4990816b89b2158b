package eventstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestCanRewriteLog: the application role cannot rewrite the log, the owner
// can, and so can an application role an operator granted too much.
func TestCanRewriteLog(t *testing.T) {
	ctx := context.Background()
	app, owner := testdb.NewPair(t)
	appStore, err := eventstore.New(app, testRegistry())
	require.NoError(t, err)
	ownerStore, err := eventstore.New(owner, testRegistry())
	require.NoError(t, err)

	can, err := ownerStore.CanRewriteLog(ctx)
	require.NoError(t, err)
	assert.True(t, can, "the owner")
	if app.Config().ConnConfig.User == owner.Config().ConnConfig.User {
		t.Skip("DATABASE_MIGRATE_URL is unset: one role does both (make test sets both)")
	}
	can, err = appStore.CanRewriteLog(ctx)
	require.NoError(t, err)
	assert.False(t, can, "the application role")

	_, err = owner.Exec(ctx, `GRANT INSERT (transaction_id) ON events TO `+app.Config().ConnConfig.User)
	require.NoError(t, err)
	can, err = appStore.CanRewriteLog(ctx)
	require.NoError(t, err)
	assert.True(t, can, "an application role that may choose transaction ids")
}
