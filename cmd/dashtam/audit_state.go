package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// stateJSON is what `audit state` prints and GET /audit/streams/{type}/{id}
// answers: the state and where it stands.
type stateJSON struct {
	Stream     string    `json:"stream"`
	AsOf       time.Time `json:"as_of"`
	Version    int64     `json:"version"`
	Position   int64     `json:"position"`
	RecordedAt time.Time `json:"recorded_at"`
	State      any       `json:"state"`
}

func newAuditStateCommand(opts *globalOptions) *cobra.Command {
	var stream, asOf optionalString
	cmd := &cobra.Command{
		Use:   "state --stream TYPE:ID --as-of T",
		Short: "Print an aggregate's state as it stood at a moment (JSON)",
		Long: `Fold the events of one stream recorded at or before T through the aggregate's
own code and print its state then, with the version and global position it
stands at, as one JSON document: a connection's status and alias, a user's
roles and sessions. T is an RFC 3339 time or a date (midnight UTC).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !stream.set || !asOf.set {
				return usagef(cmd, "--stream and --as-of are required")
			}
			s, err := eventstore.ParseStream(strings.TrimSpace(stream.value))
			if err != nil {
				return usagef(cmd, "--stream: %v", err)
			}
			at, err := parseTimeFlag("--as-of", asOf)
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			pool, err := connect(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer pool.Close()
			store, err := stateStore(opts, pool, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			aggs, err := commands.DescribedAggregates(store)
			if err != nil {
				return err
			}
			reader, err := aggs.Reader(s.Type)
			if err != nil {
				return usagef(cmd, "--stream: %s streams have no state to show yet", s.Type)
			}
			return runAuditState(cmd.Context(), store, reader, s, *at, cmd.OutOrStdout())
		},
	}
	cmd.Flags().Var(&stream, "stream", "the stream, as `TYPE:ID`")
	cmd.Flags().Var(&asOf, "as-of", "the moment `T` (RFC 3339 or YYYY-MM-DD)")
	return cmd
}

// stateStore opens personal data with the master key when one is
// configured (keyedStore), and otherwise shows it sealed, as stored,
// saying so.
func stateStore(opts *globalOptions, pool *pgxpool.Pool, stderr io.Writer) (*eventstore.Store, error) {
	store, keyed, err := keyedStore(opts, pool)
	if err == nil && !keyed {
		fmt.Fprintln(stderr, "warning: DASHTAM_ENCRYPTION_KEY is not set: personal data is shown sealed, as stored")
	}
	return store, err
}

func runAuditState(ctx context.Context, store *eventstore.Store, reader eventstore.StateReader, s eventstore.Stream, at time.Time, stdout io.Writer) error {
	v, err := reader.StateAsOf(ctx, store.Pool(), s.ID, at)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return fmt.Errorf("stream %s had no event recorded by %s", s, at.UTC().Format(time.RFC3339Nano))
	}
	if err != nil {
		return err
	}
	out := stateJSON{Stream: s.String(), AsOf: at.UTC(), Version: v.Version, Position: v.Position, RecordedAt: v.RecordedAt.UTC(), State: v.State}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
