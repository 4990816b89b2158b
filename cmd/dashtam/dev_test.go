package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/migrations/testdb"
)

func TestDevAndMigrateUsage(t *testing.T) {
	tests := [][]string{
		{"dev"},
		{"dev", "db"},
		{"dev", "db", "strat"},
		{"dev", "db", "start", "extra"},
		{"dev", "db", "url", "--no-such-flag"},
		{"migrate", "sideways"},
		{"migrate", "up", "status"},
	}
	for _, args := range tests {
		if code := runWith(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("dashtam %s: exit %d, want 2 (usage)", strings.Join(args, " "), code)
		}
	}
}

func TestResolveDatabaseURL(t *testing.T) {
	opts := &globalOptions{dataDir: t.TempDir(), databaseURL: "postgres://x@db.example/dashtam"}
	if got, err := opts.resolveDatabaseURL(); err != nil || got != opts.databaseURL {
		t.Errorf("with a database URL: got %q, %v; want it unchanged", got, err)
	}
	opts.databaseURL = ""
	t.Setenv("DATABASE_URL", "")
	_, err := opts.resolveDatabaseURL()
	if err == nil || !strings.Contains(err.Error(), "dashtam dev db start") || !strings.Contains(err.Error(), "make run") {
		t.Errorf("without a database or cluster: err = %v; want one telling the user to run `dashtam dev db start` or `make run`", err)
	}
}

// TestMigrateCommand migrates as the owner and checks the application role
// was granted what serve needs, projection tables included.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	appURL, ownerURL := testdb.NewEmptyURLs(t)
	urls := []string{"--database-url", appURL, "--database-migrate-url", ownerURL}
	for _, args := range [][]string{{"migrate"}, {"migrate", "up"}, {"migrate", "status"}} {
		var stderr strings.Builder
		if code := runWith(context.Background(), append(urls, args...), io.Discard, &stderr); code != 0 {
			t.Errorf("dashtam %s: exit %d, want 0: %s", strings.Join(args, " "), code, stderr.String())
		}
	}
	conn, err := pgx.Connect(context.Background(), appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var read, write bool
	if err := conn.QueryRow(context.Background(), `SELECT has_table_privilege('events', 'SELECT'),
		has_table_privilege('streams', 'INSERT') AND has_table_privilege('event_type_counts', 'DELETE')`).Scan(&read, &write); err != nil {
		t.Fatalf("projection tables missing after migrate: %v", err)
	}
	if !read || !write {
		t.Errorf("after migrate the application role may read events %v, write projection tables %v; want both", read, write)
	}
}

func TestResolveMigrateURL(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://env-app@db/x")
	t.Setenv("DATABASE_MIGRATE_URL", "postgres://env-owner@db/x")
	for _, c := range []struct {
		name     string
		opts     globalOptions
		unsetEnv bool
		want     string
	}{
		{"both flags", globalOptions{databaseURL: "postgres://app@db/x", databaseMigrateURL: "postgres://owner@db/x"}, false, "postgres://owner@db/x"},
		{"database flag alone is never paired with the environment", globalOptions{databaseURL: "postgres://app@db/x"}, false, "postgres://app@db/x"},
		{"environment", globalOptions{}, false, "postgres://env-owner@db/x"},
		{"DATABASE_URL alone does both", globalOptions{}, true, "postgres://env-app@db/x"},
	} {
		if c.unsetEnv {
			t.Setenv("DATABASE_MIGRATE_URL", "")
		}
		c.opts.dataDir = t.TempDir()
		if got, err := c.opts.resolveMigrateURL(); err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	t.Setenv("DATABASE_URL", "")
	_, err := (&globalOptions{dataDir: t.TempDir()}).resolveMigrateURL()
	if err == nil || !strings.Contains(err.Error(), "dashtam dev db start") {
		t.Errorf("nothing set and no cluster: err = %v; want one telling the user to start the cluster", err)
	}
}
