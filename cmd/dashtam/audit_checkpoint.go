package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/eventstore"
)

// auditSettings loads the audit configuration for a command.
func auditSettings(o *globalOptions, requireKey bool) (auditConfig, error) {
	dataDir, err := o.absDataDir()
	if err != nil {
		return auditConfig{}, err
	}
	return loadAuditConfig(osGetenv, dataDir, requireKey)
}

func newAuditCheckpointCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint of the log now and print it as one JSON line",
		Long: `Make a signed checkpoint over every event behind the xid horizon that the newest
checkpoint does not cover yet, store it in the database and in the checkpoint
directory ($DASHTAM_AUDIT_CHECKPOINT_DIR, default <data dir>/checkpoints), and
print it as one JSON line. A backlog of more than a million events gets several
checkpoints, one line each. When the log has not grown, the newest checkpoint is
printed again and stderr says so. Serve does the same every
$DASHTAM_AUDIT_CHECKPOINT_INTERVAL; one process checkpoints at a time.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := auditSettings(opts, true)
			if err != nil {
				return err
			}
			store, closeStore, err := openStore(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer closeStore()
			dir, err := eventstore.OpenCheckpointDir(cfg.Dir)
			if err != nil {
				return err
			}
			cp, err := eventstore.NewCheckpointer(store, cfg.Signer, dir)
			if err != nil {
				return err
			}
			return runAuditCheckpoint(cmd.Context(), store, cp, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

// runAuditCheckpoint checkpoints the whole backlog and prints each new
// checkpoint, or the newest one when there is nothing new.
func runAuditCheckpoint(ctx context.Context, store *eventstore.Store, cp *eventstore.Checkpointer, stdout, stderr io.Writer) error {
	made, err := cp.CheckpointAll(ctx, true)
	for _, ck := range made {
		if werr := printJSONLine(stdout, ck); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if len(made) > 0 {
		return nil
	}
	newest, ok, err := store.NewestCheckpoint(ctx)
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintln(stderr, "no checkpoint: no event is behind the xid horizon yet (the log is empty, or its transactions are still open)")
		return nil
	}
	fmt.Fprintf(stderr, "the log has not grown behind the xid horizon since checkpoint %d\n", newest.Seq)
	return printJSONLine(stdout, newest)
}

func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func newAuditPublicKeyCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the public key that verifies the checkpoints (base64)",
		Long: `Print the public half of DASHTAM_AUDIT_SIGNING_KEY as standard base64 of its 32
bytes, the form 'audit verify --public-key' accepts. Publish it where auditors
can find it independently of this deployment.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := auditSettings(opts, true)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), eventstore.EncodePublicKey(cfg.Signer.PublicKey()))
			return err
		},
	}
}

// checkpointLoop makes a checkpoint at every tick while the log grows; a
// failure is logged and retried at the next tick, and another instance
// holding the lock simply means this one skips its turn.
func checkpointLoop(ctx context.Context, cp *eventstore.Checkpointer, ticks <-chan time.Time, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			cks, err := cp.CheckpointAll(ctx, false)
			switch {
			case errors.Is(err, eventstore.ErrCheckpointBusy):
				logger.Debug("checkpoint skipped: another instance is checkpointing")
			case err != nil && ctx.Err() == nil:
				logger.Error("audit checkpoint failed", "error", err)
			}
			for _, ck := range cks {
				logger.Info("audit checkpoint", "seq", ck.Seq, "tree_size", ck.TreeSize, "root", ck.Root.String())
			}
		}
	}
}
