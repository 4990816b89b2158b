package projections_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dashtam/dashtam/migrations/testdb"
	"github.com/dashtam/dashtam/projections"
)

// TestOwnerPoolRunsDDL: over the application role's store, creating the
// read-model tables is refused unless WithOwnerPool names the owner, and
// then the tables are the owner's while the live runners and a rebuild's
// replay fill them as the application role.
func TestOwnerPoolRunsDDL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := mustStore(t)
	owner := testdb.Owner(t, store.Pool())
	if store.Pool().Config().ConnConfig.User == owner.Config().ConnConfig.User {
		t.Skip("DATABASE_MIGRATE_URL is unset: one role does both (make test sets both)")
	}
	mustAppend(t, store, newStream(), 0, 5)

	plain, err := projections.NewManager(store, projections.All())
	if err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := plain.Ensure(ctx); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("Ensure as the application role: err = %v; want insufficient_privilege", err)
	}

	m, err := projections.NewManager(store, projections.All(), opts(projections.WithOwnerPool(owner))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatalf("Ensure with the owner's pool: %v", err)
	}
	running(t, m.Start)
	eventually(t, "live projectors catching up", caughtUp(t, m))
	if err := m.Rebuild(ctx, "streams", nil); err != nil {
		t.Fatalf("rebuild with the owner's pool: %v", err)
	}
	checkModel(t, store.Pool(), streamsModel, streamsTruth)

	var notOwned int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_class
		WHERE relname = ANY($1) AND relkind = 'r' AND pg_get_userbyid(relowner) <> $2`,
		[]string{"streams", "event_type_counts"}, owner.Config().ConnConfig.User).Scan(&notOwned); err != nil {
		t.Fatal(err)
	}
	if notOwned != 0 {
		t.Errorf("%d read-model tables not owned by the owner role", notOwned)
	}
}
