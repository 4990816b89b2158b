package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/migrations"
)

func init() { subcommands = append(subcommands, newMigrateCommand) }

// newMigrateCommand applies or reports the embedded schema migrations; serve
// applies them too, so this is for operators who migrate ahead of a deploy.
func newMigrateCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:       "migrate [up|status]",
		Short:     "Apply pending schema migrations (up, the default) or list their state (status)",
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
			dbURL, err := opts.resolveDatabaseURL()
			if err != nil {
				return err
			}
			db, err := migrations.Open(dbURL)
			if err != nil {
				return err
			}
			defer db.Close()
			if len(args) == 1 && args[0] == "status" {
				return migrations.Status(cmd.Context(), db, cmd.OutOrStdout())
			}
			if err := migrations.Up(cmd.Context(), db); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "migrations: database is up to date")
			return nil
		},
	}
}
