package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// jobsLockID serialises river's migrations across instances starting at
// once: rivermigrate takes no lock of its own. Distinct from goose's lock,
// which is released before river's migrations run.
const jobsLockID int64 = 0x64617368_6a6f6273 // "dashjobs"

// UpJobs applies the migrations of the background job queue (river's
// tables: river_job, river_queue, river_leader, ...) through river's own
// migrator, so that its schema follows the pinned river version rather than
// a copy of its SQL. It runs as the owner, after Up.
func UpJobs(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate jobs: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, jobsLockID); err != nil {
		return fmt.Errorf("migrate jobs: lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, jobsLockID); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // the lock goes with the session
		}
	}()
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("migrate jobs: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate jobs: %w", err)
	}
	return nil
}

// JobsVersion is the newest migration version of the job queue this binary
// applies; test templates are named after it too, so a river upgrade gets
// a fresh template.
func JobsVersion() int {
	m, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err != nil {
		return 0
	}
	all := m.AllVersions()
	if len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Version
}

// Apply is everything migrating means, as the owner: the schema (Up), the
// job queue's tables (UpJobs), then the application role's privileges
// (GrantApp) on all of it.
func Apply(ctx context.Context, owner *pgxpool.Pool, appRole string) error {
	db := stdlib.OpenDBFromPool(owner)
	defer db.Close()
	return apply(ctx, db, owner, appRole)
}

func apply(ctx context.Context, db *sql.DB, owner *pgxpool.Pool, appRole string) error {
	if err := Up(ctx, db); err != nil {
		return err
	}
	if err := UpJobs(ctx, owner); err != nil {
		return err
	}
	return GrantApp(ctx, db, appRole)
}
