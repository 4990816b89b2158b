package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/cmd/dashtam/internal/devdb"
)

// usageError marks a command line that was wrong rather than a run that failed,
// so that main exits with 2 and points at the command's help.
type usageError struct {
	command string
	err     error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef builds a usageError for cmd.
func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{command: commandPath(cmd), err: fmt.Errorf(format, args...)}
}

func commandPath(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), "dashtam ")
}

// globalOptions are the settings every subcommand shares; flags mirror the
// environment variables of the README's Configuration table.
type globalOptions struct {
	dataDir            string
	databaseURL        string
	databaseMigrateURL string
}

func newRootCommand() *cobra.Command {
	opts := &globalOptions{}
	root := &cobra.Command{
		Use:           "dashtam",
		Short:         "Dashtam: event-sourced financial-data aggregation backend",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without Args and RunE, cobra reports an unknown command as a plain
		// error (exit 1, not 2).
		Args: cobra.ArbitraryArgs,
		RunE: requireSubcommand,
	}
	root.PersistentFlags().StringVar(&opts.dataDir, "data-dir", envOr("DASHTAM_DATA_DIR", "./.dashtam"),
		"private cluster, dev keys and mail outbox ($DASHTAM_DATA_DIR)")
	// No default from the environment here: cobra prints defaults in --help,
	// and DATABASE_URL may carry a password. resolveDatabaseURL reads it.
	root.PersistentFlags().StringVar(&opts.databaseURL, "database-url", "",
		"PostgreSQL connection string of the application role ($DATABASE_URL; default: the private cluster under the data dir)")
	root.PersistentFlags().StringVar(&opts.databaseMigrateURL, "database-migrate-url", "",
		"PostgreSQL connection string of the owner role, for migrations and projection tables ($DATABASE_MIGRATE_URL; default: the database URL when one is set, else the private cluster's owner)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{command: commandPath(cmd), err: err}
	})
	for _, add := range subcommands {
		root.AddCommand(add(opts))
	}
	return root
}

// subcommands is filled by each subcommand's file in an init function, so that
// commands live in files of their own without a central list to edit.
var subcommands []func(*globalOptions) *cobra.Command

// envOr returns the environment variable name, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// absDataDir resolves the data directory to an absolute path, so that socket
// paths and the cluster directory do not depend on the working directory.
func (o *globalOptions) absDataDir() (string, error) {
	return filepath.Abs(o.dataDir)
}

// requireSubcommand is the RunE of a command that only groups others: it turns
// a missing or unknown subcommand into a usage error (exit 2). Cobra itself
// prints help and exits 0 for `dashtam audit typo`, and exits 1 for `dashtam
// typo`, which tells a script the wrong thing either way.
func requireSubcommand(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	if len(args) == 0 {
		return usagef(cmd, "missing command: want one of %s", strings.Join(names, ", "))
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, applied only on its own path
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		return usagef(cmd, "unknown command %q for %q (did you mean %q?)", args[0], cmd.CommandPath(), s[0])
	}
	return usagef(cmd, "unknown command %q for %q: want one of %s", args[0], cmd.CommandPath(), strings.Join(names, ", "))
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "unexpected argument %q", args[0])
	}
	return nil
}

// resolveDatabaseURL returns --database-url / DATABASE_URL when set, and
// otherwise the private cluster's URL, so that commands work after `make run`
// without any configuration. It does not start the cluster: a command that
// silently booted a database would hide a misconfigured production host.
func (o *globalOptions) resolveDatabaseURL() (string, error) {
	if o.databaseURL != "" {
		return o.databaseURL, nil
	}
	if env := os.Getenv("DATABASE_URL"); env != "" {
		return env, nil
	}
	dir, err := o.absDataDir()
	if err != nil {
		return "", fmt.Errorf("resolve data dir: %w", err)
	}
	url, err := devdb.URL(dir)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL is not set and %w", err)
	}
	return url, nil
}

// resolveMigrateURL returns the owner role's URL, which migrations and
// projection DDL run as: --database-migrate-url when given; the database URL
// when --database-url was given alone, so that a database named on the
// command line is never paired with another one from the environment;
// DATABASE_MIGRATE_URL; DATABASE_URL when only that is set, so that one role
// does both (serve warns that this role can rewrite the log); else the
// private cluster's owner URL.
func (o *globalOptions) resolveMigrateURL() (string, error) {
	if o.databaseMigrateURL != "" {
		return o.databaseMigrateURL, nil
	}
	if o.databaseURL != "" {
		return o.databaseURL, nil
	}
	if env := os.Getenv("DATABASE_MIGRATE_URL"); env != "" {
		return env, nil
	}
	if env := os.Getenv("DATABASE_URL"); env != "" {
		return env, nil
	}
	dir, err := o.absDataDir()
	if err != nil {
		return "", fmt.Errorf("resolve data dir: %w", err)
	}
	url, err := devdb.OwnerURL(dir)
	if err != nil {
		return "", fmt.Errorf("DATABASE_MIGRATE_URL is not set and %w", err)
	}
	return url, nil
}
