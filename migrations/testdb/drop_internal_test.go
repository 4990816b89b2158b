package testdb

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDropOutlastsAnUnsignallableSession: a session the owner may not end
// (here a superuser's, as an autovacuum worker's would be) makes DROP …
// WITH (FORCE) fail; drop then ends what it may, waits in a plain DROP and
// succeeds once that session is gone. Needs the private cluster's trusted
// superuser, so it skips elsewhere.
func TestDropOutlastsAnUnsignallableSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "dashtam_test_drop_" + randomHex(4)
	setup(t)
	if _, err := shared.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drop(context.Background(), name) })
	u, err := url.Parse(shared.ownerURL)
	if err != nil || u.Scheme == "" {
		t.Skip("DATABASE_MIGRATE_URL is not a URL")
	}
	u.User, u.Path = url.User("postgres"), "/"+name
	super, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Skipf("no trusted superuser to hold a session the owner cannot end: %v", err)
	}
	defer super.Close(context.Background())
	app, err := pgx.Connect(ctx, mustWithDatabase(t, shared.appURL, name))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())

	done := make(chan error, 1)
	go func() { done <- drop(ctx, name) }()
	// Once the plain DROP waits, the application's session has been ended
	// and only the superuser's holds it up: end that one too.
	for {
		var waiting bool
		if err := super.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE state = 'active' AND query = $1)`, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("drop returned %v while a session it may not end was open", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	// pg_terminate_backend signals without waiting: poll until the
	// application's session is seen gone.
	for app.Ping(ctx) == nil {
		select {
		case <-ctx.Done():
			t.Fatal("the application's session survived: drop should have ended it")
		case <-time.After(5 * time.Millisecond):
		}
	}
	super.Close(ctx)
	if err := <-done; err != nil {
		t.Fatalf("drop: %v", err)
	}
}

func mustWithDatabase(t *testing.T, base, name string) string {
	t.Helper()
	u, err := withDatabase(base, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
