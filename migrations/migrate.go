package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	// The pgx database/sql driver, registered as "pgx", is what Open uses and
	// what goose talks through.
	_ "github.com/jackc/pgx/v5/stdlib"
)

// lockID identifies the advisory lock migrations hold. It is goose's default
// id, so a goose CLI run by hand also waits for a running `dashtam migrate`.
const lockID = lock.DefaultLockID

// Open opens a database/sql handle over pgx for url; goose needs database/sql.
func Open(url string) (*sql.DB, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// Up applies every pending migration. Concurrent callers on one database (two
// instances of serve starting together) are serialised by a session advisory
// lock: the first applies, the others then find nothing pending.
func Up(ctx context.Context, db *sql.DB) error {
	return up(ctx, db, FS)
}

func up(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	p, err := newProvider(db, fsys)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Status writes one line per known migration with its state and, when applied,
// when; it changes nothing.
func Status(ctx context.Context, db *sql.DB, w io.Writer) error {
	return status(ctx, db, FS, w)
}

func status(ctx context.Context, db *sql.DB, fsys fs.FS, w io.Writer) error {
	p, err := newProvider(db, fsys)
	if err != nil {
		return err
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("read migration status: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, s := range statuses {
		applied := "-"
		if s.State == goose.StateApplied {
			applied = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, s.Source.Path)
	}
	return tw.Flush()
}

// newProvider builds a goose provider over fsys. The lock is polled every
// second (goose's minimum) for up to ten minutes: a long migration in another
// instance is waited for, a stuck one eventually reported.
func newProvider(db *sql.DB, fsys fs.FS) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		// Go migrations registered globally by imported packages would be a
		// second, invisible source of schema; only the SQL files count.
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}
