package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

func init() { subcommands = append(subcommands, newAuditCommand) }

// newAuditCommand groups the compliance tools that read the immutable log.
func newAuditCommand(opts *globalOptions) *cobra.Command {
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Replay, verify, checkpoint and export the event log",
		// A group command: without these, cobra prints help and exits 0 for
		// `dashtam audit typo`.
		Args: cobra.ArbitraryArgs,
		RunE: requireSubcommand,
	}
	audit.AddCommand(newAuditReplayCommand(opts), newAuditVerifyCommand(opts), newAuditCheckpointCommand(opts),
		newAuditPublicKeyCommand(opts), newAuditStateCommand(opts), newAuditExportCommand(opts))
	return audit
}

// optionalString is a string flag that remembers whether it was given, so an
// explicitly empty value (`--user "$UNSET"`) is refused instead of silently
// meaning "no filter", which would widen an audit to every user.
type optionalString struct {
	value string
	set   bool
}

// String returns the value as given, for help texts.
func (s *optionalString) String() string { return s.value }

// Type names the value kind in help texts that do not name it themselves.
func (s *optionalString) Type() string { return "string" }

// Set records v; a repeated flag appends with a comma, so that list flags
// such as --event-type may be given once per value or comma-separated.
func (s *optionalString) Set(v string) error {
	if s.set {
		s.value += "," + v
	} else {
		s.value = v
	}
	s.set = true
	return nil
}

// replayFlags are the raw command-line strings of `audit replay`'s filters.
type replayFlags struct {
	user, stream, connection, eventTypes, from, to, asOf optionalString
}

// timeFormats is quoted in every time parsing error, so the operator sees at
// once what would have been accepted.
const timeFormats = "want an RFC 3339 time such as 2026-01-02T15:04:05Z (or with an offset, 2026-01-02T15:04:05+01:00) or a date such as 2026-01-02 (midnight UTC)"

// maxEventTypeLen is the schema's limit on event_type.
const maxEventTypeLen = 200

// parseReplayFilter turns the command-line strings into a filter. It is pure
// and never panics on any input (FuzzParseReplayFilter), and it refuses
// anything ambiguous rather than guessing: an audit that silently answered a
// different question than the one asked is worse than an error.
func parseReplayFilter(fl replayFlags) (eventstore.Filter, error) {
	var f eventstore.Filter
	var err error
	if f.OwnerID, err = parseUUIDFlag("--user", fl.user); err != nil {
		return eventstore.Filter{}, err
	}
	if f.ConnectionID, err = parseUUIDFlag("--connection", fl.connection); err != nil {
		return eventstore.Filter{}, err
	}
	if fl.stream.set {
		s, err := eventstore.ParseStream(strings.TrimSpace(fl.stream.value))
		if err != nil {
			return eventstore.Filter{}, fmt.Errorf("--stream: %w", err)
		}
		f.Stream = &s
	}
	if f.EventTypes, err = parseEventTypes(fl.eventTypes); err != nil {
		return eventstore.Filter{}, err
	}
	if f.From, err = parseTimeFlag("--from", fl.from); err != nil {
		return eventstore.Filter{}, err
	}
	if f.To, err = parseTimeFlag("--to", fl.to); err != nil {
		return eventstore.Filter{}, err
	}
	if f.AsOf, err = parseTimeFlag("--as-of", fl.asOf); err != nil {
		return eventstore.Filter{}, err
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return eventstore.Filter{}, fmt.Errorf("--from %q is not before --to %q: the range is empty (--from is inclusive, --to exclusive)",
			fl.from.value, fl.to.value)
	}
	if f.From != nil && f.AsOf != nil && f.From.After(*f.AsOf) {
		return eventstore.Filter{}, fmt.Errorf("--from %q is after --as-of %q: nothing can match", fl.from.value, fl.asOf.value)
	}
	if err := f.Validate(); err != nil {
		// Unreachable with the checks above; kept so the store's rules and
		// ours cannot drift apart unnoticed.
		return eventstore.Filter{}, err
	}
	return f, nil
}

func parseUUIDFlag(name string, v optionalString) (*uuid.UUID, error) {
	if !v.set {
		return nil, nil
	}
	s := strings.TrimSpace(v.value)
	if s == "" {
		return nil, fmt.Errorf("%s: empty value (want a UUID)", name)
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%s %q: not a UUID", name, v.value)
	}
	return &id, nil
}

func parseTimeFlag(name string, v optionalString) (*time.Time, error) {
	if !v.set {
		return nil, nil
	}
	t, err := parseTime(strings.TrimSpace(v.value))
	if err != nil {
		return nil, fmt.Errorf("%s %q: %s", name, v.value, timeFormats)
	}
	return &t, nil
}

// parseTime accepts exactly RFC 3339 and a bare date (midnight UTC). Nothing
// relative or locale-dependent: "yesterday" means different instants to
// different people and on different machines, which an audit cannot afford.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

func parseEventTypes(v optionalString) ([]string, error) {
	if !v.set {
		return nil, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, name := range strings.Split(v.value, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			return nil, fmt.Errorf("--event-type %q: empty event type name", v.value)
		case len(name) > maxEventTypeLen:
			return nil, fmt.Errorf("--event-type: name longer than %d bytes", maxEventTypeLen)
		case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0:
			return nil, fmt.Errorf("--event-type %q: names contain no spaces or control characters", name)
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out, nil
}

// replayFormats are the output formats of `audit replay`, in help order.
var replayFormats = []string{"table", "jsonl", "csv"}

func newAuditReplayCommand(opts *globalOptions) *cobra.Command {
	var (
		fl     replayFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Print the events that match the filters, in log order",
		Long: `Print the events of the log that match every given filter, in log order
(global position), streaming them as they are read.

Filters:
  --user ID          events of streams owned by this user
  --stream TYPE:ID   events of one stream (type: connection, account, transaction, user)
  --connection ID    events of stream connection:ID, plus every event whose payload
                     names the connection in a top-level "connection_id" field (an
                     account's opening, a sync); events that name only an account
                     are not followed back to their connection
  --event-type T,... events of these types (repeatable)
  --from T           recorded at or after T (inclusive)
  --to T             recorded before T (exclusive)
  --as-of T          the log as it stood at T: recorded at or before T

T is an RFC 3339 time (2026-01-02T15:04:05Z, 2026-01-02T15:04:05+01:00) or a date
(2026-01-02, meaning midnight UTC).

Formats: table (for people), jsonl (one JSON object per event, with metadata,
payload and hash), csv (a header row; metadata and payload as JSON strings).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := parseReplayFilter(fl)
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			newWriter, err := replayWriterFor(format)
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			store, closeStore, err := openStore(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer closeStore()
			return runAuditReplay(cmd.Context(), store, filter, newWriter, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.Var(&fl.user, "user", "only events of streams owned by this user `ID`")
	f.Var(&fl.stream, "stream", "only events of this stream, as `TYPE:ID`")
	f.Var(&fl.connection, "connection", "only events of this connection `ID` (its stream and payloads naming it)")
	f.Var(&fl.eventTypes, "event-type", "only events of these `TYPES` (comma-separated, repeatable)")
	f.Var(&fl.from, "from", "only events recorded at or after `T` (RFC 3339 or YYYY-MM-DD)")
	f.Var(&fl.to, "to", "only events recorded before `T` (RFC 3339 or YYYY-MM-DD)")
	f.Var(&fl.asOf, "as-of", "the log as it stood at `T`: events recorded at or before it")
	f.StringVar(&format, "format", "table", "output `FORMAT`: "+strings.Join(replayFormats, ", "))
	return cmd
}

// runAuditReplay streams the matching events to stdout through a buffered
// writer, one row at a time, so memory stays constant however much of the log
// matches.
func runAuditReplay(ctx context.Context, store *eventstore.Store, filter eventstore.Filter,
	newWriter func(io.Writer) recordWriter, stdout, stderr io.Writer) error {
	// Progress goes to a terminal only, and only when the rows themselves do
	// not: rows scrolling past are progress enough, and a bar drawn between
	// them would garble both.
	var bar *progressbar.ProgressBar
	if writerIsTerminal(stderr) && !writerIsTerminal(stdout) {
		total, err := store.Count(ctx, filter)
		if err != nil {
			return err
		}
		bar = newAuditProgressBar(stderr, total, "replaying")
	} else {
		bar = newAuditProgressBar(io.Discard, 0, "")
	}
	buf := bufio.NewWriterSize(stdout, 64<<10)
	w := newWriter(buf)
	var malformed int64
	err := w.header()
	if err == nil {
		err = store.Query(ctx, filter, func(r eventstore.Record) error {
			if r.MetadataErr != nil {
				// The row is printed as stored; the operator is told on
				// stderr, which a redirected stdout does not swallow.
				malformed++
				fmt.Fprintf(stderr, "warning: %s (printed as stored; `dashtam audit verify` reports every such event)\n",
					auditPrintable(r.MetadataErr.Error()))
			}
			if err := w.write(r); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			_ = bar.Add64(1) // a progress bar that cannot draw is no reason to fail
			return nil
		})
	}
	_ = bar.Finish()
	if malformed > 0 {
		fmt.Fprintf(stderr, "warning: %s with malformed metadata in the output\n", plural(malformed, "event"))
	}
	// Flush what was written even after a failure: every row out is a true
	// row, and the exit status tells the reader the replay is incomplete.
	if ferr := w.flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	if ferr := buf.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	return err
}

// recordWriter renders records in one output format.
type recordWriter interface {
	header() error
	write(eventstore.Record) error
	flush() error
}

// replayWriterFor returns the constructor of the named format's writer.
func replayWriterFor(format string) (func(io.Writer) recordWriter, error) {
	switch format {
	case "table":
		return func(w io.Writer) recordWriter { return tableWriter{w} }, nil
	case "jsonl":
		return func(w io.Writer) recordWriter { return newJSONLWriter(w) }, nil
	case "csv":
		return func(w io.Writer) recordWriter { return csvWriter{csv.NewWriter(w)} }, nil
	}
	return nil, fmt.Errorf("--format %q: want one of %s", format, strings.Join(replayFormats, ", "))
}

// timeLayout renders recorded_at in UTC with the log's full microsecond
// precision and a fixed width, so that text sorts as time does.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// replayEvent is the jsonl form of a record; the field names are the events
// table's columns, so the export reads like the log it came from.
type replayEvent struct {
	GlobalPosition int64           `json:"global_position"`
	RecordedAt     string          `json:"recorded_at"`
	StreamType     string          `json:"stream_type"`
	StreamID       uuid.UUID       `json:"stream_id"`
	Version        int64           `json:"version"`
	EventID        uuid.UUID       `json:"event_id"`
	EventType      string          `json:"event_type"`
	SchemaVersion  int             `json:"schema_version"`
	OwnerID        *uuid.UUID      `json:"owner_id"`
	Metadata       json.RawMessage `json:"metadata"`
	// MetadataError says why metadata does not decode, for the rare row
	// written past the store's checks; absent otherwise.
	MetadataError string          `json:"metadata_error,omitempty"`
	Payload       json.RawMessage `json:"payload"`
	Hash          string          `json:"hash"`
}

type jsonlWriter struct{ enc *json.Encoder }

func newJSONLWriter(w io.Writer) jsonlWriter {
	enc := json.NewEncoder(w)
	// Payloads are data, not HTML: keep "<" and "&" as they were stored.
	enc.SetEscapeHTML(false)
	return jsonlWriter{enc}
}

func (jsonlWriter) header() error { return nil }
func (jsonlWriter) flush() error  { return nil }

func (j jsonlWriter) write(r eventstore.Record) error {
	var owner *uuid.UUID
	if r.OwnerSet() {
		owner = &r.OwnerID
	}
	var metadataErr string
	if r.MetadataErr != nil {
		metadataErr = r.MetadataErr.Error()
	}
	return j.enc.Encode(replayEvent{
		GlobalPosition: r.GlobalPosition,
		RecordedAt:     r.RecordedAt.UTC().Format(timeLayout),
		StreamType:     string(r.Stream.Type),
		StreamID:       r.Stream.ID,
		Version:        r.Version,
		EventID:        r.EventID,
		EventType:      r.EventType,
		SchemaVersion:  r.SchemaVersion,
		OwnerID:        owner,
		Metadata:       r.RawMetadata,
		MetadataError:  metadataErr,
		Payload:        r.Payload,
		Hash:           hex.EncodeToString(r.Hash),
	})
}

// csvColumns is the csv header, the same fields in the same order as jsonl.
var csvColumns = []string{"global_position", "recorded_at", "stream_type", "stream_id", "version", "event_id",
	"event_type", "schema_version", "owner_id", "metadata", "payload", "hash"}

type csvWriter struct{ w *csv.Writer }

func (c csvWriter) header() error { return c.w.Write(csvColumns) }

func (c csvWriter) write(r eventstore.Record) error {
	owner := ""
	if r.OwnerSet() {
		owner = r.OwnerID.String()
	}
	return c.w.Write([]string{
		strconv.FormatInt(r.GlobalPosition, 10),
		r.RecordedAt.UTC().Format(timeLayout),
		string(r.Stream.Type),
		r.Stream.ID.String(),
		strconv.FormatInt(r.Version, 10),
		r.EventID.String(),
		r.EventType,
		strconv.Itoa(r.SchemaVersion),
		owner,
		string(r.RawMetadata),
		string(r.Payload),
		hex.EncodeToString(r.Hash),
	})
}

func (c csvWriter) flush() error {
	c.w.Flush()
	return c.w.Error()
}

// tableWriter prints fixed-width columns. text/tabwriter would align them
// better but holds every row until the end, which a replay of the whole log
// cannot afford; the widths fit every stream and the longest event name of
// the event catalogue, and a longer value only shifts its own row.
type tableWriter struct{ w io.Writer }

const (
	tableHeader = "%10s  %-27s  %-48s  %7s  %-32s  %s\n"
	tableRow    = "%10d  %-27s  %-48s  %7d  %-32s  %s\n"
)

func (t tableWriter) header() error {
	_, err := fmt.Fprintf(t.w, tableHeader, "POSITION", "RECORDED_AT", "STREAM", "VERSION", "EVENT_TYPE", "ACTOR")
	return err
}

func (t tableWriter) write(r eventstore.Record) error {
	actor := auditPrintable(r.Metadata.Actor)
	if r.MetadataErr != nil {
		actor = "(malformed metadata)"
	}
	_, err := fmt.Fprintf(t.w, tableRow, r.GlobalPosition, r.RecordedAt.UTC().Format(timeLayout),
		r.Stream.String(), r.Version, auditPrintable(r.EventType), actor)
	return err
}

func (tableWriter) flush() error { return nil }

// auditPrintable makes a stored string safe to print on a terminal: values with
// control characters are quoted, so a crafted actor cannot forge rows or move
// the cursor on an auditor's screen.
func auditPrintable(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.QuoteToGraphic(s)
	}
	return s
}

// verifyFlags are the flags of `audit verify`.
type verifyFlags struct {
	checkpoints optionalString
	bundle      optionalString
	publicKeys  []string
}

func newAuditVerifyCommand(opts *globalOptions) *cobra.Command {
	var fl verifyFlags
	cmd := &cobra.Command{
		Use:   "verify [--checkpoints DIR] [--bundle FILE] [--public-key KEY]...",
		Short: "Verify every hash chain and every signed checkpoint; exit 1 at a break",
		Long: `Recompute every stream's SHA-256 hash chain from the stored rows, then check
every signed checkpoint: its Ed25519 signature, its link to the previous one
(digest and RFC 6962 consistency proof) and its Merkle root against the log
recomputed in commit order. Prints a summary and exits 0, or prints each break
(BROKEN: ..., naming the first bad position where it can) and exits 1.

A chain proves that no event of a stream was altered, reordered or removed
before the stream's last event, unless someone recomputed the hashes. A
checkpoint proves more: anything rewritten at or before its position — an
altered, inserted, deleted or reordered event, with every later hash
recomputed or not, a deleted stream, an emptied table — no longer hashes to its
signed root. Events after the newest checkpoint are covered by the chains only.
Verify also compares every stream's head with the streams read model.

--checkpoints DIR also checks an outside copy of the checkpoints (the directory
serve writes, or a copy of it): checkpoints missing from the database or
different from it are breaks, and the log is verified against the copy, which
catches a superuser who rewrote or emptied the database's checkpoints too.

--bundle FILE verifies an export bundle (audit export) without any database.

Signatures are checked against --public-key (base64, repeatable) and the public
half of DASHTAM_AUDIT_SIGNING_KEY when set; with neither, against each
checkpoint's own key, which proves integrity but not who signed.

An event whose metadata no reader can decode (written past the store's
checks, e.g. {"actor": 5}) is listed as MALFORMED with its stream and version;
verification goes on, and the command exits 1.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trusted, err := trustedKeys(opts, fl.publicKeys)
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			if fl.checkpoints.set && fl.checkpoints.value == "" {
				return usagef(cmd, "--checkpoints: empty value (want a directory)")
			}
			if fl.bundle.set {
				if fl.bundle.value == "" {
					return usagef(cmd, "--bundle: empty value (want a file)")
				}
				if fl.checkpoints.set {
					return usagef(cmd, "--bundle verifies a file without the database; --checkpoints does not apply")
				}
				return runVerifyBundle(cmd.Context(), fl.bundle.value, trusted, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			var dir *eventstore.CheckpointDir
			if fl.checkpoints.set {
				if dir, err = eventstore.ReadCheckpointDir(fl.checkpoints.value); err != nil {
					return usagef(cmd, "--checkpoints: %v", err)
				}
			}
			store, closeStore, err := openStore(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer closeStore()
			return runAuditVerify(cmd.Context(), store, eventstore.LogVerifyOptions{Trusted: trusted, Dir: dir},
				cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.Var(&fl.checkpoints, "checkpoints", "also check the outside copy of the checkpoints in `DIR`")
	f.Var(&fl.bundle, "bundle", "verify the export bundle `FILE` offline, without the database")
	f.StringArrayVar(&fl.publicKeys, "public-key", nil, "trust checkpoints signed by this public `KEY` (base64; repeatable)")
	return cmd
}

// trustedKeys are the keys verification accepts: the --public-key flags
// and the configured signing key's public half.
func trustedKeys(o *globalOptions, flags []string) (eventstore.TrustedKeys, error) {
	var out eventstore.TrustedKeys
	for _, f := range flags {
		k, err := eventstore.ParsePublicKey(f)
		if err != nil {
			return nil, fmt.Errorf("--public-key: %v", err)
		}
		out = append(out, k)
	}
	cfg, err := auditSettings(o, false)
	if err != nil {
		return nil, err
	}
	if cfg.Signer != nil {
		out = append(out, cfg.Signer.PublicKey())
	}
	return out, nil
}

// runAuditVerify runs Store.VerifyLog, then compares stream heads with the
// streams read model (which catches removed tails a chain cannot), and
// reports the outcome on stdout; a break is also the command's error, so
// the exit status is 1 and stderr names the first one.
func runAuditVerify(ctx context.Context, store *eventstore.Store, opts eventstore.LogVerifyOptions, stdout, stderr io.Writer) error {
	// Counting the log is a full scan of its own; only a bar someone
	// watches needs the total, as in replay.
	bar := newAuditProgressBar(io.Discard, 0, "")
	if writerIsTerminal(stderr) {
		total, err := store.Count(ctx, eventstore.Filter{})
		if err != nil {
			return err
		}
		bar = newAuditProgressBar(stderr, total, "verifying")
		opts.Progress = func(_ string, done int64) { _ = bar.Set64(done) }
	}
	rep, err := store.VerifyLog(ctx, opts)
	_ = bar.Finish()
	if err != nil {
		return err
	}
	for _, m := range rep.Chains.Malformed {
		reason := m.Err
		if cause := errors.Unwrap(reason); cause != nil {
			reason = cause // the wrapper repeats the event, stream and version
		}
		fmt.Fprintf(stdout, "MALFORMED: stream %s, version %d, event %s: metadata does not decode: %s\n",
			m.Stream, m.Version, m.EventID, auditPrintable(reason.Error()))
	}
	if more := rep.Chains.MalformedCount - int64(len(rep.Chains.Malformed)); more > 0 {
		fmt.Fprintf(stdout, "MALFORMED: %s more with metadata that does not decode\n", plural(more, "event"))
	}
	var first string
	broken := func(line string) {
		fmt.Fprintf(stdout, "BROKEN: %s\n", line)
		if first == "" {
			first = line
		}
	}
	chainBroken := rep.ChainBreak != nil
	if chainBroken {
		b := rep.ChainBreak
		fmt.Fprintf(stdout, "BROKEN: stream %s, version %d, position %d, event %s: %s\n", b.Stream, b.Version, b.Position, b.EventID, b.Reason)
		first = b.Error()
	}
	trunc, checked, err := projections.FindTruncation(ctx, store.Pool())
	if err != nil {
		return err
	}
	if trunc != nil {
		broken(trunc.Error())
	}
	for _, f := range rep.Findings {
		if f.Kind != eventstore.FindingChain {
			broken(f.String())
		}
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	heads := "stream heads match the streams read model"
	switch {
	case !checked:
		heads = "stream heads not checked: the streams read model does not exist yet"
	case trunc != nil:
		heads = "a stream head is behind the streams read model"
	}
	chains := "all chains intact"
	if chainBroken {
		chains = "a chain is broken"
	}
	if _, err := fmt.Fprintf(stdout, "verified %s in %s: %s; %s\n",
		plural(rep.Chains.Events, "event"), plural(rep.Chains.Streams, "stream"), chains, heads); err != nil {
		return err
	}
	switch {
	case rep.Checkpoints == 0:
		fmt.Fprintln(stdout, "no signed checkpoint yet: run `dashtam audit checkpoint` (serve makes them on its own)")
	case first == "":
		fmt.Fprintf(stdout, "verified %s: the log matches every one (%s covered)\n",
			plural(rep.Checkpoints, "signed checkpoint"), plural(rep.Covered, "event"))
		if len(opts.Trusted) == 0 {
			fmt.Fprintln(stderr, "warning: no public key pinned: signatures were checked against the checkpoints' own keys (pass --public-key)")
		}
	}
	if first != "" {
		return errors.New("audit verify: " + first)
	}
	if rep.Chains.MalformedCount > 0 {
		// Intact chains prove the rows are as written; the rows themselves
		// were written past the store's checks, and no reader can decode them.
		m := rep.Chains.Malformed[0]
		return fmt.Errorf("audit verify: %s with malformed metadata, the first at stream %s version %d",
			plural(rep.Chains.MalformedCount, "event"), m.Stream, m.Version)
	}
	return nil
}

// plural renders a count with its noun, "1 stream" or "3 streams".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

// newAuditProgressBar draws on w when it is a terminal and is invisible
// otherwise, so that pipes, files and CI logs get no control characters.
func newAuditProgressBar(w io.Writer, total int64, description string) *progressbar.ProgressBar {
	if total <= 0 {
		total = -1 // unknown: a spinner with a count
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetVisibility(writerIsTerminal(w)),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)
}

// writerIsTerminal reports whether w is a terminal; writers that are not files
// (tests, buffers) never are.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
