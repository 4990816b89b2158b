package main

import (
	"context"
	"io"
	"strings"
	"testing"

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

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewEmptyURL(t)
	for _, args := range [][]string{
		{"--database-url", dbURL, "migrate"},
		{"--database-url", dbURL, "migrate", "up"},
		{"--database-url", dbURL, "migrate", "status"},
	} {
		if code := runWith(context.Background(), args, io.Discard, io.Discard); code != 0 {
			t.Errorf("dashtam %s: exit %d, want 0", strings.Join(args[2:], " "), code)
		}
	}
}
