package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/cmd/dashtam/internal/devdb"
)

func init() { subcommands = append(subcommands, newDevCommand) }

// newDevCommand groups the developer conveniences; today the private cluster
// behind `make run` and `make test`.
func newDevCommand(opts *globalOptions) *cobra.Command {
	dev := &cobra.Command{
		Use:   "dev",
		Short: "Developer conveniences (the private PostgreSQL cluster)",
		Args:  cobra.ArbitraryArgs,
		RunE:  requireSubcommand,
	}
	dev.AddCommand(newDevDBCommand(opts))
	return dev
}

func newDevDBCommand(opts *globalOptions) *cobra.Command {
	db := &cobra.Command{
		Use:   "db",
		Short: "Manage the private PostgreSQL cluster under the data dir",
		Long: `The private cluster lives in <data dir>/pg, runs the machine's PostgreSQL
server binaries (as the "postgres" user when invoked as root; when that user
cannot enter the data dir's folder, the files go to a directory of its home
and <data dir>/pg points there), listens on 127.0.0.1 only, and has the two
roles of a production set-up: "dashtam_owner" (CREATEDB) owns the "dashtam"
database and runs migrations, "dashtam" (the application: no CREATEROLE, no
CREATEDB, owns nothing) gets only the privileges migrations grant it.`,
		Args: cobra.ArbitraryArgs,
		RunE: requireSubcommand,
	}
	var throwaway bool
	start := &cobra.Command{
		Use:   "start",
		Short: "Create (once) and start the cluster, then print the application role's URL",
		Long: `Create the cluster on first use, start it unless it is running, wait until it
accepts connections and print the application role's URL to stdout (progress
goes to stderr), so scripts can run:
  export DATABASE_URL=$(dashtam dev db start)
  export DATABASE_MIGRATE_URL=$(dashtam dev db url --owner)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := opts.absDataDir()
			if err != nil {
				return err
			}
			url, err := devdb.StartWith(cmd.Context(), dir, cmd.ErrOrStderr(), devdb.Options{Throwaway: throwaway})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), url)
			return nil
		},
	}
	start.Flags().BoolVar(&throwaway, "throwaway", false,
		"when creating, trade durability for speed (fsync off): for clusters deleted after use, like make test's")
	var deleteFiles bool
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster if it runs (its data stays unless --delete)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := opts.absDataDir()
			if err != nil {
				return err
			}
			if deleteFiles {
				return devdb.Destroy(cmd.Context(), dir)
			}
			return devdb.Stop(cmd.Context(), dir)
		},
	}
	stop.Flags().BoolVar(&deleteFiles, "delete", false,
		"also delete the cluster's files, wherever they live (the rest of the data dir stays)")
	var owner bool
	url := &cobra.Command{
		Use:   "url",
		Short: "Print the application role's (or with --owner the owner's) URL without starting the cluster",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := opts.absDataDir()
			if err != nil {
				return err
			}
			get := devdb.URL
			if owner {
				get = devdb.OwnerURL
			}
			u, err := get(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), u)
			return nil
		},
	}
	url.Flags().BoolVar(&owner, "owner", false, "print the owner role's URL, for DATABASE_MIGRATE_URL")
	db.AddCommand(start, stop, url)
	return db
}
