package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

func init() { subcommands = append(subcommands, newProjectionsCommand) }

func newProjectionsCommand(opts *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "List, inspect, rebuild and repair the read models",
		// A group command, like audit: a missing or unknown subcommand is a
		// usage error (exit 2), not help and exit 0.
		Args: cobra.ArbitraryArgs,
		RunE: requireSubcommand,
	}
	cmd.AddCommand(newProjectionsListCommand(), newProjectionsStatusCommand(opts), newProjectionsRebuildCommand(opts),
		newProjectionsParkedCommand(opts), newProjectionsRetryCommand(opts), newProjectionsVerifyCommand(opts))
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
declares different tables than the live ones: rebuild it. PARKED counts the
events the projector could not apply and moved past; the last error of each
such projection follows the table (see 'projections parked NAME').`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, closeStore, err := openProjections(cmd.Context(), opts, nil)
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
	fmt.Fprintln(tw, "NAME\tPOSITION\tAPPLIED\tBEHIND\tLAG\tCHECKPOINT AGE\tCONSUMER\tREBUILT\tSCHEMA\tPARKED")
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
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, s.Position.GlobalPosition, s.EventsApplied,
			s.Behind, s.Lag.Round(time.Millisecond), s.CheckpointAge.Round(time.Second), consumer, rebuilt, schema, s.Parked)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range st {
		if s.Parked > 0 {
			if _, err := fmt.Fprintf(w, "\n%s: %s parked; last error: %s\n  list them: dashtam projections parked %s\n",
				s.Name, plural(s.Parked, "event"), auditPrintable(s.LastParkedError), s.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// projectorArg checks the one projector name parked and retry take before
// anything connects, so that a typo is a usage error (exit 2).
func projectorArg(cmd *cobra.Command, args []string) (string, error) {
	var every []string
	for _, p := range projections.All() {
		every = append(every, p.Name())
	}
	switch {
	case len(args) == 0:
		return "", usagef(cmd, "name the projector (%s)", strings.Join(every, ", "))
	case len(args) > 1:
		return "", usagef(cmd, "unexpected argument %q: one projector at a time", args[1])
	case !slices.Contains(every, args[0]):
		return "", usagef(cmd, "unknown projector %q (known: %s)", args[0], strings.Join(every, ", "))
	}
	return args[0], nil
}

func newProjectionsParkedCommand(opts *globalOptions) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "parked NAME",
		Short: "List the events a projector parked because it could not apply them",
		Long: `List, in log order, the events the projector could not decode, upcast or
apply after several attempts and moved past: its read model lacks them. Fix
the cause (usually a release of the projector), then 'projections retry NAME'
re-applies them; a rebuild replaces them with whatever it parks itself.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := projectorArg(cmd, args)
			if err != nil {
				return err
			}
			if limit <= 0 {
				return usagef(cmd, "--limit %d: want a positive number", limit)
			}
			m, closeStore, err := openProjections(cmd.Context(), opts, nil)
			if err != nil {
				return err
			}
			defer closeStore()
			parked, err := m.Parked(cmd.Context(), name, limit)
			if err != nil {
				return err
			}
			return writeParked(cmd.OutOrStdout(), name, parked, limit)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 1000, "show at most `N` events")
	return cmd
}

func writeParked(w io.Writer, name string, parked []projections.ParkedEvent, limit int) error {
	if len(parked) == 0 {
		_, err := fmt.Fprintf(w, "%s has no parked events\n", name)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POSITION\tSTREAM\tVERSION\tEVENT TYPE\tEVENT ID\tATTEMPTS\tPARKED AT\tERROR")
	for _, p := range parked {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", p.Position.GlobalPosition, p.Stream, p.Version,
			auditPrintable(p.EventType), p.EventID, p.Attempts, p.ParkedAt.UTC().Format(time.RFC3339), auditPrintable(p.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(parked) == limit {
		_, err := fmt.Fprintf(w, "(first %d shown; --limit shows more)\n", limit)
		return err
	}
	return nil
}

func newProjectionsRetryCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "retry NAME",
		Short: "Apply a projector's parked events again, after a fix",
		Long: `Apply the projector's parked events to its live tables again, one at a time in
log order, while 'dashtam serve' keeps running. Events that apply are no
longer parked; those that still fail stay parked with their new error, and
the command then exits 1. A parked event arrives after the events that
followed it in the log: for a projector whose rows depend on that order,
rebuild instead.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := projectorArg(cmd, args)
			if err != nil {
				return err
			}
			m, closeStore, err := openProjections(cmd.Context(), opts, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeStore()
			res, err := m.Retry(cmd.Context(), name)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "retried %s: %d applied, %d still parked\n", name, res.Applied, res.Failed)
			if res.Failed == 0 {
				return nil
			}
			if err := writeParked(out, name, res.StillParked, 0); err != nil {
				return err
			}
			if res.Failed > len(res.StillParked) {
				fmt.Fprintf(out, "(first %d shown; 'projections parked %s' lists them all)\n", len(res.StillParked), name)
			}
			return fmt.Errorf("projections retry %s: %s still failing", name, plural(int64(res.Failed), "event"))
		},
	}
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
			m, closeStore, err := openProjectionsAsOwner(cmd.Context(), opts, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeStore()
			// One call: the projectors share one read of the log.
			return runRebuild(cmd.Context(), m, names, cmd.OutOrStdout(), cmd.ErrOrStderr())
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

func runRebuild(ctx context.Context, m *projections.Manager, names []string, stdout, stderr io.Writer) error {
	start := time.Now()
	name := strings.Join(names, ", ")
	bar := newAuditProgressBar(stderr, -1, "rebuilding "+name)
	var applied int64
	err := m.RebuildAll(ctx, names, func(done, total int64) {
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

// openProjectionStore connects and returns a store that opens personal data
// when the master key is configured: the connections projector folds
// aliases, which the log holds sealed (docs/audit.md). Without the key it
// says on stderr that applying such events will fail. close releases the pool.
func openProjectionStore(ctx context.Context, opts *globalOptions, stderr io.Writer) (*eventstore.Store, func(), error) {
	pool, err := connect(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	store, keyed, err := keyedStore(opts, pool)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	if !keyed && stderr != nil {
		fmt.Fprintln(stderr, "warning: DASHTAM_ENCRYPTION_KEY is not set: events with sealed personal data (connection aliases) cannot be applied")
	}
	return store, pool.Close, nil
}

// openProjections connects and returns a manager of every projector; close
// releases the pool. Commands that apply events pass stderr for
// openProjectionStore's warning; those that only read pass nil.
func openProjections(ctx context.Context, opts *globalOptions, stderr io.Writer) (*projections.Manager, func(), error) {
	store, closeStore, err := openProjectionStore(ctx, opts, stderr)
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
func openProjectionsAsOwner(ctx context.Context, opts *globalOptions, stderr io.Writer) (*projections.Manager, func(), error) {
	store, closeStore, err := openProjectionStore(ctx, opts, stderr)
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
