package migrations_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashtam/dashtam/migrations"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestUpConcurrent starts two migrators at once on a fresh database, as two
// serve instances starting together would: both must succeed and the schema
// must be applied exactly once.
func TestUpConcurrent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := testdb.NewEmptyURL(t)

	const n = 2
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		db, err := migrations.Open(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		// Connect before the start signal so both really race for the lock.
		if err := db.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = migrations.Up(ctx, db)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}

	db, err := migrations.Open(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied, files int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id > 0").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	entries, err := migrations.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			files++
		}
	}
	if applied != files {
		t.Errorf("goose_db_version has %d applied rows, want one per file (%d)", applied, files)
	}

	var out strings.Builder
	if err := migrations.Status(ctx, db, &out); err != nil {
		t.Fatalf("Status: %v", err)
	}
	if strings.Contains(out.String(), "pending") || !strings.Contains(out.String(), "applied") {
		t.Errorf("Status after Up:\n%s\nwant every migration applied", out.String())
	}
}

// TestUpIdempotent checks a second Up on a migrated database is a no-op.
func TestUpIdempotent(t *testing.T) {
	t.Parallel()
	_, ownerURL := testdb.NewURLs(t)
	db, err := migrations.Open(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrations.Up(context.Background(), db); err != nil {
		t.Fatalf("Up on a migrated database: %v", err)
	}
}
