package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/projections"
)

func init() { subcommands = append(subcommands, newProjectionsCommand) }

func newProjectionsCommand(opts *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "List, inspect and rebuild the read models",
		// A group command, like audit: a missing or unknown subcommand is a
		// usage error (exit 2), not help and exit 0.
		Args: cobra.ArbitraryArgs,
		RunE: requireSubcommand,
	}
	cmd.AddCommand(newProjectionsListCommand(), newProjectionsStatusCommand(opts), newProjectionsRebuildCommand(opts))
	return cmd
}

func newProjectionsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the projectors and the tables each owns",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTABLES")
			for _, p := range projections.All() {
				fmt.Fprintf(tw, "%s\t%s\n", p.Name(), strings.Join(p.Tables(), ", "))
			}
			return tw.Flush()
		},
	}
}

func newProjectionsStatusCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each projection's checkpoint, lag and consumer",
		Long: `Show each projection's checkpoint and how far it is behind the log:
BEHIND counts committed events not applied yet, LAG is the age of the oldest
of them, CHECKPOINT AGE the time since the checkpoint last moved (it grows
while the log is quiet). CONSUMER says whether some process holds the
projection's consumer lock; SCHEMA "stale" means this binary's projector
declares different tables than the live ones: rebuild it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, closeStore, err := openProjections(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer closeStore()
			st, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			return writeProjectionStatus(cmd.OutOrStdout(), st)
		},
	}
}

func writeProjectionStatus(w io.Writer, st []projections.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPOSITION\tAPPLIED\tBEHIND\tLAG\tCHECKPOINT AGE\tCONSUMER\tREBUILT\tSCHEMA")
	for _, s := range st {
		consumer, schema, rebuilt := "none", "current", "-"
		if s.ConsumerPresent {
			consumer = "active"
		}
		if s.SchemaStale {
			schema = "stale"
		}
		if s.RebuiltAt != nil {
			rebuilt = s.RebuiltAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Position.GlobalPosition, s.EventsApplied,
			s.Behind, s.Lag.Round(time.Millisecond), s.CheckpointAge.Round(time.Second), consumer, rebuilt, schema)
	}
	return tw.Flush()
}

func newProjectionsRebuildCommand(opts *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "rebuild NAME... | --all",
		Short: "Rebuild read models from the whole log while the live ones keep serving",
		Long: `Replay the whole log into fresh shadow tables, then swap them in atomically.
The live tables keep answering and a running 'dashtam serve' keeps projecting
into them until the swap; events appended meanwhile are carried over. Run it
after a projector's code changed, or when status reports its schema stale.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := rebuildNames(cmd, args, all)
			if err != nil {
				return err
			}
			m, closeStore, err := openProjectionsAsOwner(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer closeStore()
			for _, name := range names {
				if err := runRebuild(cmd.Context(), m, name, cmd.OutOrStdout(), cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "rebuild every projector")
	return cmd
}

// rebuildNames checks the command line before anything connects, so that a
// typo is a usage error (exit 2) and not half a run.
func rebuildNames(cmd *cobra.Command, args []string, all bool) ([]string, error) {
	known := map[string]bool{}
	var every []string
	for _, p := range projections.All() {
		known[p.Name()] = true
		every = append(every, p.Name())
	}
	switch {
	case all && len(args) > 0:
		return nil, usagef(cmd, "give projector names or --all, not both")
	case all:
		return every, nil
	case len(args) == 0:
		return nil, usagef(cmd, "name the projectors to rebuild (%s) or pass --all", strings.Join(every, ", "))
	}
	seen := map[string]bool{}
	var names []string
	for _, a := range args {
		if !known[a] {
			return nil, usagef(cmd, "unknown projector %q (known: %s)", a, strings.Join(every, ", "))
		}
		if !seen[a] {
			seen[a] = true
			names = append(names, a)
		}
	}
	return names, nil
}

func runRebuild(ctx context.Context, m *projections.Manager, name string, stdout, stderr io.Writer) error {
	start := time.Now()
	bar := newAuditProgressBar(stderr, -1, "rebuilding "+name)
	var applied int64
	err := m.Rebuild(ctx, name, func(done, total int64) {
		if bar.GetMax64() != total {
			bar.ChangeMax64(total)
		}
		_ = bar.Set64(done)
		applied = done
	})
	_ = bar.Finish()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Errorf("%w (a rebuild creates and swaps tables, which only the owner role may: set DATABASE_MIGRATE_URL or --database-migrate-url)", err)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "rebuilt %s: %d events in %s\n", name, applied, time.Since(start).Round(time.Millisecond))
	return err
}

// openProjections connects and returns a manager of every projector; close
// releases the pool.
func openProjections(ctx context.Context, opts *globalOptions) (*projections.Manager, func(), error) {
	store, closeStore, err := openStore(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	m, err := projections.NewManager(store, projections.All())
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return m, closeStore, nil
}

// openProjectionsAsOwner is openProjections whose manager runs its DDL (a
// rebuild's shadow tables and swap) as the owner role (DATABASE_MIGRATE_URL,
// falling back to the database URL), while the replay itself runs as the
// application role, as serve's would.
func openProjectionsAsOwner(ctx context.Context, opts *globalOptions) (*projections.Manager, func(), error) {
	store, closeStore, err := openStore(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	owner, err := connectOwner(ctx, opts)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	closeBoth := func() { owner.Close(); closeStore() }
	m, err := projections.NewManager(store, projections.All(), projections.WithOwnerPool(owner))
	if err != nil {
		closeBoth()
		return nil, nil, err
	}
	return m, closeBoth, nil
}
