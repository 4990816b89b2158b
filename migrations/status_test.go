package migrations_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dashtam/dashtam/migrations"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// TestStatusShowsPending uses a test-local migration set, so it does not depend
// on the real schema, to check Status lists what Up would apply and Up applies it.
func TestStatusShowsPending(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE a (id int);\n")},
		"00002_b.sql": {Data: []byte("-- +goose Up\nCREATE TABLE b (id int);\n")},
	}
	db, err := migrations.Open(testdb.NewEmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	var before strings.Builder
	if err := migrations.StatusFS(ctx, db, fsys, &before); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(before.String(), "pending"); got != 2 {
		t.Errorf("status before up:\n%s\nwant 2 pending", before.String())
	}
	if err := migrations.UpFS(ctx, db, fsys); err != nil {
		t.Fatal(err)
	}
	var after strings.Builder
	if err := migrations.StatusFS(ctx, db, fsys, &after); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(after.String(), "applied"); got != 2 {
		t.Errorf("status after up:\n%s\nwant 2 applied", after.String())
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO b VALUES (1)"); err != nil {
		t.Errorf("table from the second migration: %v", err)
	}
}
