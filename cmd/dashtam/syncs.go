package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/commands/syncs"
	"github.com/dashtam/dashtam/eventstore"
)

func init() { subcommands = append(subcommands, newSyncsCommand) }

func newSyncsCommand(opts *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "syncs",
		Short: "Maintain the sync's index",
		Args:  cobra.ArbitraryArgs,
		RunE:  requireSubcommand,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "reindex",
		Short: "Rebuild the sync's index of accounts and transactions from the event log",
		Long: `Rebuild sync_accounts and sync_transactions, the index a sync uses to find
what is new, changed or gone, by folding every account and transaction
stream of the log. Syncs write the index with their events, so it never
drifts; run this after a restore or a manual edit. It holds both tables in
one transaction: running syncs wait, and projectors pause until it ends.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := connect(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer pool.Close()
			// Folding the streams needs every event type this binary knows.
			store, err := eventstore.New(pool, newEventRegistry())
			if err != nil {
				return err
			}
			stats, err := syncs.RebuildIndex(cmd.Context(), store)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "indexed %d accounts and %d transactions\n", stats.Accounts, stats.Transactions)
			return err
		},
	})
	return cmd
}
