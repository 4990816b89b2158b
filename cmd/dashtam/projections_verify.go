package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/projections"
)

func newProjectionsVerifyCommand(opts *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "verify NAME... | --all",
		Short: "Check that read models equal a fresh replay of the log, without swapping",
		Long: `Replay the whole log into shadow tables, exactly up to where the live read
model is, and compare every row of every live table with its replay (EXCEPT
both ways). Nothing is swapped: the live tables keep serving and a running
'dashtam serve' keeps projecting; the shadow tables are dropped afterwards.
Differences are listed (counts, and a few rows of each side as JSON) and the
command exits 1 when any table differs: a read model edited by hand, a
projector bug, or an event applied out of order after a retry. Rebuild to
repair.`,
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
			var differ []string
			for _, name := range names {
				clean, err := runVerify(cmd.Context(), m, name, cmd.OutOrStdout(), cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if !clean {
					differ = append(differ, name)
				}
			}
			if len(differ) > 0 {
				return fmt.Errorf("projections verify: %s differ from a replay of the log", strings.Join(differ, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "verify every projector")
	return cmd
}

// runVerify verifies one projection and writes what it found; clean is
// false when a table differs.
func runVerify(ctx context.Context, m *projections.Manager, name string, stdout, stderr io.Writer) (clean bool, err error) {
	start := time.Now()
	bar := newAuditProgressBar(stderr, -1, "verifying "+name)
	res, err := m.Verify(ctx, name, func(done, total int64) {
		if bar.GetMax64() != total {
			bar.ChangeMax64(total)
		}
		_ = bar.Set64(done)
	})
	_ = bar.Finish()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return false, fmt.Errorf("%w (verify creates shadow tables, which only the owner role may: set DATABASE_MIGRATE_URL or --database-migrate-url)", err)
	}
	if err != nil {
		return false, err
	}
	return res.Clean(), writeVerifyResult(stdout, res, time.Since(start))
}

func writeVerifyResult(w io.Writer, res projections.VerifyResult, took time.Duration) error {
	var b strings.Builder
	var differing int
	for _, t := range res.Tables {
		if t.OnlyLive > 0 || t.OnlyRebuilt > 0 {
			differing++
		}
	}
	verdict := "identical to a replay of the log"
	switch {
	case differing == 1:
		verdict = "1 table differs from a replay of the log"
	case differing > 1:
		verdict = plural(int64(differing), "table") + " differ from a replay of the log"
	}
	fmt.Fprintf(&b, "%s at position %d: %s (%s)\n", res.Name, res.Position.GlobalPosition, verdict, took.Round(time.Millisecond))
	for _, t := range res.Tables {
		ignored := ""
		if len(t.IgnoredColumns) > 0 {
			ignored = ", ignoring " + strings.Join(t.IgnoredColumns, ", ")
		}
		if t.OnlyLive == 0 && t.OnlyRebuilt == 0 {
			fmt.Fprintf(&b, "  %s: %s, identical%s\n", t.Table, plural(t.LiveRows, "row"), ignored)
			continue
		}
		fmt.Fprintf(&b, "  %s: %s; %s only in the live table, %s only in the replay%s\n", t.Table, plural(t.LiveRows, "row"),
			plural(t.OnlyLive, "row"), plural(t.OnlyRebuilt, "row"), ignored)
		for _, r := range t.LiveSamples {
			fmt.Fprintf(&b, "    live:   %s\n", auditPrintable(r))
		}
		for _, r := range t.RebuiltSamples {
			fmt.Fprintf(&b, "    replay: %s\n", auditPrintable(r))
		}
		if shown := int64(len(t.LiveSamples) + len(t.RebuiltSamples)); shown < t.OnlyLive+t.OnlyRebuilt {
			fmt.Fprintf(&b, "    (%d of %d differing rows shown)\n", shown, t.OnlyLive+t.OnlyRebuilt)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
