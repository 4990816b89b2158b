package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore/merkle"
)

// FindingKind classifies what VerifyLog found wrong.
type FindingKind string

// The kinds of findings.
const (
	// FindingChain is a broken per-stream hash chain.
	FindingChain FindingKind = "chain"
	// FindingLog is a log that no longer matches a checkpoint: events
	// altered, inserted, deleted or reordered, hashes recomputed or not.
	FindingLog FindingKind = "log"
	// FindingSignature is a checkpoint whose signature or key is wrong.
	FindingSignature FindingKind = "signature"
	// FindingLink is a checkpoint that does not follow its predecessor.
	FindingLink FindingKind = "link"
	// FindingCopy is a disagreement between the database's checkpoints and
	// the outside copy.
	FindingCopy FindingKind = "copy"
)

// Finding is one way the log or its checkpoints fail verification.
type Finding struct {
	Kind FindingKind
	// Seq is the checkpoint concerned (0: none).
	Seq int64
	// Position is the first bad global position, when known (0: not known).
	Position int64
	// Detail says what is wrong, for an operator.
	Detail string
}

// String renders the finding on one line.
func (f Finding) String() string {
	var b bytes.Buffer
	b.WriteString(string(f.Kind))
	if f.Position > 0 {
		b.WriteString(": position " + strconv.FormatInt(f.Position, 10))
	}
	if f.Seq > 0 {
		b.WriteString(": checkpoint " + strconv.FormatInt(f.Seq, 10))
	}
	b.WriteString(": " + f.Detail)
	return b.String()
}

// LogVerifyOptions configures VerifyLog.
type LogVerifyOptions struct {
	// Trusted are the keys checkpoints must be signed with; empty accepts
	// each checkpoint's own key but reports a change of key.
	Trusted TrustedKeys
	// Dir, when set, is an outside copy of the checkpoints to compare with
	// the database's and to verify the log against.
	Dir *CheckpointDir
	// Progress, when set, hears the work done: stage "events" counts the
	// events checked so far.
	Progress func(stage string, done int64)
}

// LogReport is what VerifyLog checked and found.
type LogReport struct {
	// Chains is the per-stream chain verification's report.
	Chains VerifyReport
	// ChainBreak is the first broken chain link, if any (also a Finding).
	ChainBreak *ChainBreak
	// Checkpoints is how many checkpoints were checked.
	Checkpoints int64
	// Covered is how many events the newest checkpoint covers (and so were
	// checked against a signed root).
	Covered int64
	// Findings lists what is wrong, the first break of each kind first.
	Findings []Finding
	// Warnings are oddities that prove nothing wrong (a checkpoint missing
	// from an outside copy that may simply be older).
	Warnings []string
}

// maxFindings bounds the findings of one run.
const maxFindings = 100

func (r *LogReport) add(f Finding) {
	if len(r.Findings) < maxFindings {
		r.Findings = append(r.Findings, f)
	}
}

// VerifyLog checks the whole log: every stream's hash chain (VerifyChains)
// and every checkpoint, in the database and in opts.Dir: its signature, its
// link to the previous one (digest and consistency proof) and its Merkle
// root against the log recomputed in commit order. Anything rewritten
// before a checkpoint — an altered, inserted, deleted or reordered event,
// even with every later hash recomputed, a deleted stream, an emptied table
// — changes that root. Memory stays bounded (keyset pages, one frontier);
// see docs/audit.md for what it cannot see.
func (s *Store) VerifyLog(ctx context.Context, opts LogVerifyOptions) (LogReport, error) {
	var rep LogReport
	head, err := s.head(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	targets, err := s.checkCheckpoints(ctx, opts, &rep)
	if err != nil {
		return rep, err
	}
	// The links are checked by the database while the events stream in.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var linkBreak *ChainBreak
	linked := make(chan error, 1)
	go func() {
		var err error
		linkBreak, err = s.verifyLinks(lctx, head)
		linked <- err
	}()
	scan := &logScan{rep: &rep, targets: targets}
	if opts.Progress != nil {
		scan.progress = func(n int64) { opts.Progress("events", n) }
	}
	if err := scan.run(ctx, s, head); err != nil {
		cancel()
		<-linked
		return rep, err
	}
	if err := <-linked; err != nil {
		return rep, err
	}
	rep.Chains.Events = scan.events
	rep.ChainBreak = linkBreak
	if b := scan.contentBreak; b != nil && (rep.ChainBreak == nil || b.Position < rep.ChainBreak.Position) {
		rep.ChainBreak = b
	}
	if m := scan.mismatch; m != nil {
		if err := s.localize(ctx, m.ck, scan.good.size, scan.good.after, &scan.good.frontier, &m.finding); err != nil {
			return rep, err
		}
		rep.add(m.finding)
	}
	if brk := rep.ChainBreak; brk != nil {
		f := Finding{Kind: FindingChain, Position: brk.Position, Detail: fmt.Sprintf(
			"stream %s, version %d, position %d, event %s: %s", brk.Stream, brk.Version, brk.Position, brk.EventID, brk.Reason)}
		rep.Findings = append([]Finding{f}, rep.Findings...)
	}
	return rep, nil
}

// target is a checkpoint the log must match, as the scan needs it.
type target struct {
	ck *Checkpoint
}

// logScan walks the log once in commit order, up to the head read when
// verification started: it checks each event's hash against its contents
// (its link to the previous event of its stream is verifyLinks' job),
// notes undecodable metadata, and appends its leaf to the frontier that is
// compared with each checkpoint as the scan reaches its size. Rows are
// decoded from their raw binary form in place, so the scan allocates
// almost nothing per event.
type logScan struct {
	rep      *LogReport
	targets  []target
	next     int // the next target to reach
	frontier merkle.Frontier
	// stopped is set once the log stopped matching a checkpoint: the
	// frontier is then of no more use, the content checks go on.
	stopped bool
	// good is the frontier at the last checkpoint the log matched.
	good struct {
		size     uint64
		after    Position
		frontier merkle.Frontier
	}
	mismatch     *mismatch
	events       int64
	contentBreak *ChainBreak
	progress     func(int64)
}

// mismatch is the first checkpoint the log does not match.
type mismatch struct {
	ck      *Checkpoint
	finding Finding
}

// verifyScanSQL reads whole rows in commit order up to the head, one page
// (keyset) per statement.
const verifyScanSQL = `SELECT ` + recordColumns + ` FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2) AND global_position <= $3
	ORDER BY events.transaction_id, events.global_position LIMIT $4`

// binaryResults asks for every column of recordColumns in binary.
var binaryResults = pgx.QueryResultFormats{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

func (t *logScan) run(ctx context.Context, s *Store, head int64) error {
	var after Position
	var r Record
	for {
		rows, err := s.pool.Query(ctx, verifyScanSQL, binaryResults, after.TransactionID, after.GlobalPosition, head, pageSize)
		if err != nil {
			return fmt.Errorf("verify: read the log: %w", err)
		}
		n := 0
		for rows.Next() {
			if err := decodeRaw(rows.RawValues(), &r); err != nil {
				rows.Close()
				return fmt.Errorf("verify: read the log: %w", err)
			}
			t.event(&r)
			after = r.Position()
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("verify: read the log: %w", err)
		}
		if t.progress != nil {
			t.progress(t.events)
		}
		if n < pageSize {
			break
		}
	}
	// Checkpoints the log ended before reaching.
	if !t.stopped && t.next < len(t.targets) {
		ck := t.targets[t.next].ck
		t.fail(ck, fmt.Sprintf("covers %d events up to position %d, the log holds only %d events: events were deleted or the table emptied",
			ck.TreeSize, ck.Last.GlobalPosition, t.frontier.Size()))
	}
	return nil
}

// event checks one event and moves the tree on.
func (t *logScan) event(r *Record) {
	t.check(r)
	if t.stopped {
		return
	}
	t.frontier.Append(leafHash(r.GlobalPosition, r.Hash), nil)
	for t.next < len(t.targets) && uint64(t.targets[t.next].ck.TreeSize) <= t.frontier.Size() {
		ck := t.targets[t.next].ck
		if uint64(ck.TreeSize) < t.frontier.Size() {
			t.next++ // smaller than an earlier one: reported as a link finding
			continue
		}
		if t.frontier.Root() != ck.Root || r.Position() != ck.Last {
			t.fail(ck, "the log's events up to position "+strconv.FormatInt(ck.Last.GlobalPosition, 10)+
				" no longer hash to the checkpoint's root")
			return
		}
		t.rep.Covered = ck.TreeSize
		t.good.size, t.good.after, t.good.frontier = t.frontier.Size(), r.Position(), *t.frontier.Clone()
		t.next++
	}
}

func (t *logScan) fail(ck *Checkpoint, detail string) {
	t.stopped = true
	t.mismatch = &mismatch{ck: ck, finding: Finding{Kind: FindingLog, Seq: ck.Seq, Detail: detail}}
}

// check verifies one event's hash against its contents and notes
// undecodable metadata.
func (t *logScan) check(r *Record) {
	t.events++
	if r.Version == 1 {
		// Streams are counted by their first event; a stream without one
		// is a broken chain, reported as such.
		t.rep.Chains.Streams++
	}
	meta, flat, err := canonicalMetadata(r.RawMetadata)
	if !flat {
		var md Metadata
		if uerr := json.Unmarshal(r.RawMetadata, &md); uerr != nil {
			t.rep.Chains.MalformedCount++
			if len(t.rep.Chains.Malformed) < maxMalformedReported {
				t.rep.Chains.Malformed = append(t.rep.Chains.Malformed, MalformedEvent{Stream: r.Stream, Version: r.Version,
					EventID: r.EventID.String(), Err: fmt.Errorf("metadata of event %s at %s v%d: %w", r.EventID, r.Stream, r.Version, uerr)})
			}
		}
	}
	if t.contentBreak != nil {
		return
	}
	brk := func(reason string) {
		t.contentBreak = &ChainBreak{Stream: r.Stream, Version: r.Version, EventID: r.EventID.String(), Position: r.GlobalPosition, Reason: reason}
	}
	if !knownDigestVersion(r.DigestVersion) {
		brk(fmt.Sprintf("unknown digest version %d", r.DigestVersion))
		return
	}
	if err != nil {
		brk("cannot canonicalise stored metadata: " + err.Error())
		return
	}
	if !bytes.Equal(chainHash(r.PrevHash, digestOf(r, meta)), r.Hash) {
		brk("stored hash does not match the event's contents")
	}
}

// pgEpoch is PostgreSQL's timestamp epoch.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// decodeRaw fills r from the binary values of a recordColumns row. The
// byte fields alias the row's buffer: valid until the next row.
func decodeRaw(v [][]byte, r *Record) error {
	if len(v) != 15 {
		return fmt.Errorf("%d columns, want 15", len(v))
	}
	fixed := func(i, n int) error {
		if len(v[i]) != n {
			return fmt.Errorf("column %d has %d bytes, want %d", i, len(v[i]), n)
		}
		return nil
	}
	for _, c := range [][2]int{{0, 8}, {1, 8}, {3, 16}, {4, 8}, {5, 16}, {7, 4}, {11, 8}, {14, 2}} {
		if err := fixed(c[0], c[1]); err != nil {
			return err
		}
	}
	r.GlobalPosition = int64(binary.BigEndian.Uint64(v[0]))
	r.TransactionID = binary.BigEndian.Uint64(v[1])
	r.Stream.Type = StreamType(v[2])
	copy(r.Stream.ID[:], v[3])
	r.Version = int64(binary.BigEndian.Uint64(v[4]))
	copy(r.EventID[:], v[5])
	r.EventType = string(v[6])
	r.SchemaVersion = int(int32(binary.BigEndian.Uint32(v[7])))
	r.OwnerID, r.ownerSet = uuid.Nil, v[8] != nil
	if r.ownerSet {
		if err := fixed(8, 16); err != nil {
			return err
		}
		copy(r.OwnerID[:], v[8])
	}
	r.Payload = v[9]
	if len(v[10]) == 0 || v[10][0] != 1 {
		return errors.New("metadata is not jsonb version 1")
	}
	r.RawMetadata = v[10][1:]
	r.RecordedAt = pgEpoch.Add(time.Duration(int64(binary.BigEndian.Uint64(v[11]))) * time.Microsecond)
	r.PrevHash, r.Hash = v[12], v[13]
	r.DigestVersion = int(int16(binary.BigEndian.Uint16(v[14])))
	return nil
}

// verifyLinks checks every event's link to its stream's previous event in
// the database: version 1 starts from the zero hash, every later version's
// prev_hash is its predecessor's hash, no version is missing, and no row
// has an older digest version than its predecessor (a stream moves from
// digest version 1 to 2 once and never back: docs/event-store.md). It is one
// statement, a hash join of the log with itself over sequential scans:
// walking streams in (stream_id, version) order instead reads the heap at
// random, several times slower once the log outgrows shared_buffers. The
// statement takes no transaction id, so it holds back no projector (only
// vacuum, for its duration: about a second per million events); the
// client receives at most one row.
func (s *Store) verifyLinks(ctx context.Context, head int64) (*ChainBreak, error) {
	rows, err := s.pool.Query(ctx, `WITH broken AS MATERIALIZED (
			SELECT e.global_position, e.stream_type, e.stream_id, e.version, e.event_id, p.version IS NULL AS missing,
			       e.digest_version, coalesce(p.digest_version, 0) AS prev_digest_version
			FROM events e LEFT JOIN events p
			  ON p.stream_id = e.stream_id AND p.version = e.version - 1 AND p.global_position <= $1
			WHERE e.global_position <= $1
			  AND ((e.version = 1 AND e.prev_hash <> $2)
			    OR (e.version > 1 AND (p.hash IS DISTINCT FROM e.prev_hash OR p.digest_version > e.digest_version))))
		SELECT * FROM broken ORDER BY global_position LIMIT 1`, head, ZeroHash)
	if err != nil {
		return nil, fmt.Errorf("verify links: %w", err)
	}
	var (
		b       ChainBreak
		typ     string
		eventID uuid.UUID
		missing bool

		digest, prevDigest int16
	)
	found := false
	_, err = pgx.ForEachRow(rows, []any{&b.Position, &typ, &b.Stream.ID, &b.Version, &eventID, &missing, &digest, &prevDigest}, func() error {
		found = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify links: %w", err)
	}
	if !found {
		return nil, nil
	}
	b.Stream.Type, b.EventID = StreamType(typ), eventID.String()
	switch {
	case b.Version == 1:
		b.Reason = "prev_hash of a stream's first event is not the zero hash"
	case missing:
		b.Reason = fmt.Sprintf("a version is missing: version %d is not in the log", b.Version-1)
	case prevDigest > digest:
		b.Reason = fmt.Sprintf("digest version %d follows version %d: a stream's digest version never goes back", digest, prevDigest)
	default:
		b.Reason = "prev_hash does not match the previous event's hash"
	}
	return &b, nil
}

// checkpointSource yields the checkpoints of the database and of an
// outside copy by sequence number, reading the database a page at a time.
type checkpointSource struct {
	s      *Store
	buf    map[int64]Checkpoint
	next   int64 // first seq not yet read from the database
	inDir  map[int64]bool
	maxDir int64
}

// fromDB returns stored checkpoint seq, or nil; seq must not decrease
// between calls.
func (c *checkpointSource) fromDB(ctx context.Context, seq int64) (*Checkpoint, error) {
	const page = 500
	if seq >= c.next {
		c.buf = make(map[int64]Checkpoint, page)
		if err := c.s.Checkpoints(ctx, seq, seq+page-1, func(ck Checkpoint) error {
			c.buf[ck.Seq] = ck
			return nil
		}); err != nil {
			return nil, err
		}
		c.next = seq + page
	}
	ck, ok := c.buf[seq]
	if !ok {
		return nil, nil
	}
	return &ck, nil
}

// maxDBSeq returns the highest stored sequence number (0: none).
func (c *checkpointSource) maxDBSeq(ctx context.Context) (int64, error) {
	var n int64
	if err := c.s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM audit_checkpoints`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read checkpoints: %w", err)
	}
	return n, nil
}

// checkCheckpoints checks every checkpoint of the database and the outside
// copy for what needs no log (signature, link, agreement of the copies) and
// returns them in order for the scan to compare with the log: memory grows
// with the number of checkpoints (a few hundred bytes each), not events.
func (s *Store) checkCheckpoints(ctx context.Context, opts LogVerifyOptions, rep *LogReport) ([]target, error) {
	src := &checkpointSource{s: s, next: 1, inDir: map[int64]bool{}}
	if opts.Dir != nil {
		seqs, err := opts.Dir.Seqs()
		if err != nil {
			return nil, err
		}
		for _, q := range seqs {
			src.inDir[q] = true
			src.maxDir = max(src.maxDir, q)
		}
	}
	maxDB, err := src.maxDBSeq(ctx)
	if err != nil {
		return nil, err
	}
	last := max(maxDB, src.maxDir)
	var (
		prev    *Checkpoint
		targets []target
	)
	for seq := int64(1); seq <= last; seq++ {
		db, err := src.fromDB(ctx, seq)
		if err != nil {
			return nil, err
		}
		var file *Checkpoint
		if src.inDir[seq] {
			f, err := opts.Dir.Read(seq)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				rep.add(Finding{Kind: FindingCopy, Seq: seq, Detail: "outside copy unreadable: " + err.Error()})
			} else if err == nil {
				file = &f
			}
		}
		var ck *Checkpoint
		switch {
		case db == nil && file == nil:
			rep.add(Finding{Kind: FindingLink, Seq: seq, Detail: "missing: the database and the outside copy hold later checkpoints but not this one"})
			continue
		case db == nil:
			rep.add(Finding{Kind: FindingCopy, Seq: seq, Detail: "in " + opts.Dir.Path() + " but not in the database: checkpoints were deleted from the database"})
			ck = file
		case file == nil:
			ck = db
			if opts.Dir != nil && seq <= src.maxDir {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("checkpoint %d is not in %s", seq, opts.Dir.Path()))
			}
		default:
			ck = file
			if !db.Equal(*file) {
				rep.add(Finding{Kind: FindingCopy, Seq: seq, Detail: "the database's copy differs from " + opts.Dir.Path() + "'s; the outside copy is checked"})
			}
		}
		rep.Checkpoints++
		if err := ck.VerifySignature(opts.Trusted); err != nil {
			rep.add(Finding{Kind: FindingSignature, Seq: seq, Detail: err.Error()})
		} else if len(opts.Trusted) == 0 && prev != nil && !bytes.Equal(prev.PublicKey, ck.PublicKey) {
			rep.add(Finding{Kind: FindingSignature, Seq: seq, Detail: fmt.Sprintf("signed by key %s, checkpoint %d by key %s, and no key is pinned", ck.KeyID, prev.Seq, prev.KeyID)})
		}
		if err := ck.VerifyLink(prev); err != nil {
			rep.add(Finding{Kind: FindingLink, Seq: seq, Detail: err.Error()})
		}
		prev = ck
		targets = append(targets, target{ck: ck})
	}
	return targets, nil
}

// localize narrows a checkpoint mismatch to the first differing event by
// comparing the log, from the last checkpoint it matched, with the stored
// leaves of the audit tree; the stored leaves are believed only when they
// fold, with the matched frontier, to the checkpoint's signed root.
func (s *Store) localize(ctx context.Context, ck *Checkpoint, from uint64, after Position, base *merkle.Frontier, f *Finding) error {
	size := uint64(ck.TreeSize)
	tr := newTreeReader(s.pool, size)
	var stored []byte
	// A span longer than any one checkpoint makes is not loaded: the
	// message then names the span only.
	if size-from <= MaxCheckpointLeaves {
		var err error
		if stored, err = tr.leaves(ctx, from, size); err != nil {
			stored = nil
		}
	}
	authentic := false
	if uint64(len(stored)/leafDataSize) == size-from {
		fr := base.Clone()
		for i := 0; i < len(stored); i += leafDataSize {
			fr.Append(merkle.LeafHash(stored[i:i+leafDataSize]), nil)
		}
		authentic = fr.Root() == ck.Root
	}
	span := fmt.Sprintf(" (the first difference lies after position %d, at or before %d)", after.GlobalPosition, ck.Last.GlobalPosition)
	if !authentic {
		f.Position = 0
		f.Detail += span + "; the stored audit tree does not match the checkpoint either, so the exact event cannot be named"
		return nil
	}
	// Walk the log and the stored leaves side by side.
	at := after
	i := 0
	for i < len(stored) {
		page, next, err := readLeaves(ctx, s.pool, at, nil, pageSize)
		if err != nil {
			return err
		}
		for _, l := range page {
			if i >= len(stored) {
				break
			}
			want := stored[i : i+leafDataSize]
			wantPos := int64(beUint64(want))
			if l.pos.GlobalPosition == wantPos && bytes.Equal(l.hash, want[8:]) {
				i += leafDataSize
				continue
			}
			logPos := l.pos.GlobalPosition
			if logPos == wantPos {
				f.Position = wantPos
				f.Detail = fmt.Sprintf("the event at position %d was altered after checkpoint %d covered it (its hash differs from the checkpointed one)", wantPos, ck.Seq)
				return nil
			}
			_, checkpointed := findLeaf(stored, logPos)
			var inLog bool
			if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE global_position = $1)`, wantPos).Scan(&inLog); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			// A checkpointed event gone from the log is named first: when
			// the checkpoint ends at it, the log's next event lies past the
			// checkpoint's end, not inserted into what it covered.
			switch {
			case !inLog:
				f.Position = wantPos
				f.Detail = fmt.Sprintf("the event at position %d, covered by checkpoint %d, is missing from the log: deleted", wantPos, ck.Seq)
			case !checkpointed:
				f.Position = logPos
				f.Detail = fmt.Sprintf("the event at position %d is not in checkpoint %d, which has position %d there: inserted into the checkpointed log", logPos, ck.Seq, wantPos)
			default:
				f.Position = wantPos
				f.Detail = fmt.Sprintf("the event at position %d is not where checkpoint %d put it (the log has position %d there): reordered", wantPos, ck.Seq, logPos)
			}
			return nil
		}
		if len(page) < pageSize {
			break
		}
		at = next
	}
	if i < len(stored) {
		f.Position = int64(beUint64(stored[i:]))
		f.Detail = fmt.Sprintf("the event at position %d, covered by checkpoint %d, is missing: the log ends before it (deleted or truncated)", f.Position, ck.Seq)
		return nil
	}
	f.Detail += span
	return nil
}
