package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/eventstore"
)

func newAuditExportCommand(opts *globalOptions) *cobra.Command {
	var (
		fl  replayFlags
		out optionalString
	)
	cmd := &cobra.Command{
		Use:   "export [--from T] [--to T] [--stream TYPE:ID] --out FILE",
		Short: "Write a verifiable bundle of events, checkpoints and proofs",
		Long: `Write one file holding the selected events (every hashed column), the signed
checkpoints from the first to the newest, each event's inclusion proof in the
newest one, and the public key, closed by a trailer that signs the SHA-256 of
every byte before it. 'dashtam audit verify --bundle FILE' checks it with no
database. A checkpoint is made first, so that events behind the xid horizon are
covered; newer ones are left out, and stderr says how many.

Selection: --stream TYPE:ID, --from T (inclusive), --to T (exclusive); T is an
RFC 3339 time or a date (midnight UTC). FILE must not exist.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !out.set || strings.TrimSpace(out.value) == "" {
				return usagef(cmd, "--out FILE is required")
			}
			filter, err := parseReplayFilter(fl)
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			if _, err := os.Lstat(out.value); err == nil {
				return usagef(cmd, "--out %s exists; an export never overwrites a file", out.value)
			}
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
			sel := eventstore.BundleSelection{Stream: filter.Stream, From: filter.From, To: filter.To}
			return runAuditExport(cmd.Context(), store, cp, cfg.Signer, sel, out.value, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.Var(&fl.stream, "stream", "only events of this stream, as `TYPE:ID`")
	f.Var(&fl.from, "from", "only events recorded at or after `T` (RFC 3339 or YYYY-MM-DD)")
	f.Var(&fl.to, "to", "only events recorded before `T` (RFC 3339 or YYYY-MM-DD)")
	f.Var(&out, "out", "write the bundle to `FILE` (must not exist)")
	return cmd
}

// runAuditExport checkpoints the backlog, then writes the bundle to a
// temporary file beside path and renames it, so that a failed export
// leaves no partial bundle.
func runAuditExport(ctx context.Context, store *eventstore.Store, cp *eventstore.Checkpointer, signer *eventstore.Signer,
	sel eventstore.BundleSelection, path string, stderr io.Writer) error {
	if _, err := cp.CheckpointAll(ctx, true); err != nil {
		return err
	}
	tmp, err := os.OpenFile(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".partial"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	rep, err := store.WriteBundle(ctx, tmp, sel, signer)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path) // fails if path appeared meanwhile, unlike rename
	}
	_ = os.Remove(tmp.Name())
	if errors.Is(err, eventstore.ErrNotCheckpointed) {
		return errors.New("export: no checkpoint yet: nothing is behind the xid horizon (the log is empty, or its transactions are still open)")
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(stderr, "exported %s up to checkpoint %d to %s\n", plural(rep.Events, "event"), rep.Anchor.Seq, path)
	if rep.Uncovered > 0 {
		fmt.Fprintf(stderr, "left out %s that no checkpoint covers yet (still behind the xid horizon)\n", plural(rep.Uncovered, "event"))
	}
	return nil
}

// runVerifyBundle verifies an export bundle offline.
func runVerifyBundle(_ context.Context, path string, trusted eventstore.TrustedKeys, stdout, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify bundle: %w", err)
	}
	defer f.Close()
	rep, err := eventstore.VerifyBundle(f, trusted)
	if err != nil {
		fmt.Fprintf(stdout, "BROKEN: %v\n", err)
		return fmt.Errorf("audit verify: %w", err)
	}
	fmt.Fprintf(stdout, "verified bundle %s: %s and %s, every proof leads to checkpoint %d (%s), signed by key %s\n",
		filepath.Base(path), plural(rep.Events, "event"), plural(rep.Checkpoints, "checkpoint"), rep.Anchor.Seq,
		plural(rep.Anchor.TreeSize, "event"), rep.KeyID)
	if !rep.Pinned {
		fmt.Fprintln(stderr, "warning: no public key pinned: the bundle was checked against the key it carries, which proves it is intact but not who made it (pass --public-key)")
	}
	return nil
}
