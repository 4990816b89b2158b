package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/commands/connections"
)

func init() { subcommands = append(subcommands, newKeysCommand) }

func newKeysCommand(o *globalOptions) *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Manage the vault's encryption keys",
		Args:  cobra.ArbitraryArgs,
		RunE:  requireSubcommand,
	}
	keys.AddCommand(newKeysRotateCommand(o))
	return keys
}

// maxRotateBatch bounds --batch: a batch is one statement that locks its rows.
const maxRotateBatch = 10_000

func newKeysRotateCommand(o *globalOptions) *cobra.Command {
	var batch int
	cmd := &cobra.Command{
		Use:   "rotate [--batch N]",
		Short: "Re-seal every stored provider credential under the keyring's newest key",
		Long: "Re-seal, under the newest key of DASHTAM_ENCRYPTION_KEY (id:base64,... newest first), every\n" +
			"provider credential and every PKCE verifier of an authorisation in flight sealed under another\n" +
			"key, in small batches, while servers run. Restart every server with the new keyring first\n" +
			"(new key first, the old ones after it), run this, then drop the old keys (docs/connections.md).\n" +
			"Exits 0 when nothing remains under an older key, 1 otherwise.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 1 || batch > maxRotateBatch {
				return usagef(cmd, "--batch must be from 1 to %d", maxRotateBatch)
			}
			kr, err := loadKeyring(o)
			if err != nil {
				return err
			}
			pool, err := connect(cmd.Context(), o)
			if err != nil {
				return err
			}
			defer pool.Close()
			return rotateKeys(cmd.Context(), pool, kr, batch, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().IntVar(&batch, "batch", connections.DefaultResealBatch, "rows re-sealed per statement")
	return cmd
}

// loadKeyring reads the vault's keyring as serve does: DASHTAM_ENCRYPTION_KEY,
// else the data dir's development key.
func loadKeyring(o *globalOptions) (*vault.Keyring, error) {
	dataDir, err := o.absDataDir()
	if err != nil {
		return nil, err
	}
	raw, from, err := secretSetting(osGetenv, "DASHTAM_ENCRYPTION_KEY", dataDir, "encryption.key")
	if err != nil {
		return nil, err
	}
	if raw == "" {
		return nil, fmt.Errorf("DASHTAM_ENCRYPTION_KEY is not set: it must be the keyring id:base64,... with the new key first")
	}
	kr, err := vault.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("DASHTAM_ENCRYPTION_KEY%s is malformed: %v", from, err)
	}
	return kr, nil
}

// rotateKeys re-seals what is not under kr's newest key, with a progress
// bar on a terminal, and prints the counts to stdout.
func rotateKeys(ctx context.Context, pool *pgxpool.Pool, kr *vault.Keyring, batch int, stdout, stderr io.Writer) error {
	newest := kr.NewestKeyID()
	total, err := connections.ToReseal(ctx, pool, kr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s to re-seal under key %s\n", plural(int64(total), "blob"), newest)
	bar := newAuditProgressBar(stderr, int64(total), "re-sealing")
	counts, err := connections.Reseal(ctx, pool, kr, connections.ResealOptions{BatchSize: batch, Progress: func(c connections.ResealCounts) {
		_ = bar.Set(c.Done()) // a bar that cannot draw is no reason to fail
	}})
	_ = bar.Finish()
	fmt.Fprintf(stdout, "re-sealed %s and %s; %s refreshed meanwhile (sealed by the server); %s did not open; %s remain under older keys\n",
		plural(int64(counts.Credentials), "credential"), plural(int64(counts.Verifiers), "verifier"),
		plural(int64(counts.Moved), "row"), plural(int64(counts.Failed), "blob"), plural(int64(counts.Remaining), "blob"))
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	switch {
	case counts.Failed > 0:
		return fmt.Errorf("keys rotate: %s did not open with this keyring (a key missing from it, or a damaged blob): keep the old keys",
			plural(int64(counts.Failed), "blob"))
	case counts.Remaining > 0:
		return fmt.Errorf("keys rotate: %s were sealed under an older key while rotating: restart every server with the new keyring and run keys rotate again",
			plural(int64(counts.Remaining), "blob"))
	}
	return nil
}
