package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/adapters/jobs"
)

func init() { subcommands = append(subcommands, newJobsCommand) }

func newJobsCommand(opts *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, retry and cancel background jobs",
		Args:  cobra.ArbitraryArgs,
		RunE:  requireSubcommand,
	}
	cmd.AddCommand(newJobsListCommand(opts), newJobsActionCommand(opts, "retry",
		"Run a job again now (a discarded, cancelled or completed one included)",
		func(ctx context.Context, c *jobs.Client, id int64) (*rivertype.JobRow, error) {
			return c.River().JobRetry(ctx, id)
		}),
		newJobsActionCommand(opts, "cancel",
			"Cancel a job: a waiting one never runs; a running one is asked to stop",
			func(ctx context.Context, c *jobs.Client, id int64) (*rivertype.JobRow, error) {
				return c.River().JobCancel(ctx, id)
			}))
	return cmd
}

// jobStates are the states `jobs list --state` accepts.
var jobStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
	rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// maxJobsListed bounds one listing; --limit chooses fewer.
const maxJobsListed = 10_000

func newJobsListCommand(opts *globalOptions) *cobra.Command {
	var (
		states []string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List background jobs, newest first",
		Long: `List background jobs, newest first: id, kind, state, attempts, when it
runs or ran, and its latest error. Arguments are not shown: they may hold
sealed secrets and personal data. --state filters (repeat it, or separate
with commas): available, scheduled, running, retryable, completed,
discarded, cancelled, pending.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var want []rivertype.JobState
			for _, raw := range states {
				for _, s := range strings.Split(raw, ",") {
					s = strings.TrimSpace(s)
					if s == "" {
						continue
					}
					st := rivertype.JobState(s)
					if !containsState(jobStates, st) {
						return usagef(cmd, "unknown job state %q", s)
					}
					want = append(want, st)
				}
			}
			if limit < 1 || limit > maxJobsListed {
				return usagef(cmd, "--limit must be between 1 and %d", maxJobsListed)
			}
			c, closeDB, err := openJobs(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer closeDB()
			return listJobs(cmd.Context(), c, want, limit, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "only jobs in these states")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many jobs")
	return cmd
}

func newJobsActionCommand(opts *globalOptions, verb, short string,
	act func(context.Context, *jobs.Client, int64) (*rivertype.JobRow, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd, "want one job id")
			}
			if id, err := strconv.ParseInt(args[0], 10, 64); err != nil || id <= 0 {
				return usagef(cmd, "job id %q is not a positive integer", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, _ := strconv.ParseInt(args[0], 10, 64)
			c, closeDB, err := openJobs(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer closeDB()
			row, err := act(cmd.Context(), c, id)
			if errors.Is(err, river.ErrNotFound) {
				return fmt.Errorf("no job %d", id)
			}
			if err != nil {
				return fmt.Errorf("%s job %d: %w", verb, id, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %d (%s) is %s\n", row.ID, row.Kind, row.State)
			return nil
		},
	}
}

// openJobs connects as the application role and returns an insert-only
// jobs client: listing, retrying and cancelling need no workers.
func openJobs(ctx context.Context, opts *globalOptions) (*jobs.Client, func(), error) {
	pool, err := connect(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	c, err := jobs.New(pool, nil, jobs.Config{})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return c, pool.Close, nil
}

// listJobs writes up to limit jobs in states (all when empty), newest first.
func listJobs(ctx context.Context, c *jobs.Client, states []rivertype.JobState, limit int, w io.Writer) error {
	params := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(min(limit, 10_000))
	if len(states) > 0 {
		params = params.States(states...)
	}
	res, err := c.River().JobList(ctx, params)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPT\tAT\tLAST ERROR")
	for _, j := range res.Jobs {
		at := j.ScheduledAt
		if j.FinalizedAt != nil {
			at = *j.FinalizedAt
		} else if j.AttemptedAt != nil && j.State == rivertype.JobStateRunning {
			at = *j.AttemptedAt
		}
		lastErr := "-"
		if n := len(j.Errors); n > 0 {
			lastErr = oneLine(j.Errors[n-1].Error, 80)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Kind, j.State, j.Attempt, j.MaxAttempts,
			at.UTC().Format(time.RFC3339), lastErr)
	}
	return tw.Flush()
}

func containsState(list []rivertype.JobState, s rivertype.JobState) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// oneLine flattens s and cuts it to n characters, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
