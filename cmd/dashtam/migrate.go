package main

import (
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/migrations"
)

func init() { subcommands = append(subcommands, newMigrateCommand) }

// newMigrateCommand applies or reports the embedded schema migrations; serve
// applies them too, so this is for operators who migrate ahead of a deploy.
// It runs as the owner role (DATABASE_MIGRATE_URL) and grants the
// application role (DATABASE_URL's user) its privileges.
func newMigrateCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate [up|status]",
		Short: "Apply pending schema migrations (up, the default) or list their state (status)",
		Long: `Apply pending schema migrations as the owner role ($DATABASE_MIGRATE_URL, or
$DATABASE_URL when unset), grant the application role (the user of
$DATABASE_URL) exactly the privileges it needs, and create missing projection
tables. "status" lists each migration's state and changes nothing.`,
		ValidArgs: []string{"up", "status"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(cmd, "migrate takes at most one argument (up or status), got %d", len(args))
			}
			if len(args) == 1 && args[0] != "up" && args[0] != "status" {
				return usagef(cmd, "unknown migrate action %q: want up or status", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			owner, err := connectOwner(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer owner.Close()
			if len(args) == 1 && args[0] == "status" {
				db := stdlib.OpenDBFromPool(owner)
				defer db.Close()
				return migrations.Status(cmd.Context(), db, cmd.OutOrStdout())
			}
			// The application role is named by the database URL; only its
			// user name is used, no connection is made with it.
			appURL, err := opts.resolveDatabaseURL()
			if err != nil {
				return fmt.Errorf("name the application role to grant: %w", err)
			}
			appRole, err := migrations.RoleOf(appURL)
			if err != nil {
				return err
			}
			if err := migrateUp(cmd.Context(), owner, appRole); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "migrations: database is up to date")
			return nil
		},
	}
}
