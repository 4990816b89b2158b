package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

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
	// Progress, when set, hears the work done: stage "chains" counts events
	// whose chain link was checked, stage "checkpoints" events hashed into
	// the checkpoints' tree.
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
	var progress VerifyProgress
	if opts.Progress != nil {
		progress = func(n int64) { opts.Progress("chains", n) }
	}
	chains, brk, err := s.verifyChains(ctx, progress, pageSize)
	if err != nil {
		return rep, err
	}
	rep.Chains = chains
	if brk != nil {
		rep.ChainBreak = brk
		rep.add(Finding{Kind: FindingChain, Position: brk.Position, Detail: fmt.Sprintf(
			"stream %s, version %d, position %d, event %s: %s", brk.Stream, brk.Version, brk.Position, brk.EventID, brk.Reason)})
	}
	if err := s.verifyCheckpoints(ctx, opts, &rep); err != nil {
		return rep, err
	}
	return rep, nil
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

// treeCursor walks the log's leaves in commit order into a frontier.
type treeCursor struct {
	s        *Store
	frontier merkle.Frontier
	after    Position // position of the last leaf appended
	page     []leaf
	end      bool
	progress func(int64)
}

// advanceTo appends leaves until the tree has size leaves or the log ends;
// it reports whether the size was reached.
func (t *treeCursor) advanceTo(ctx context.Context, size uint64) (bool, error) {
	for t.frontier.Size() < size {
		if len(t.page) == 0 {
			if t.end {
				return false, nil
			}
			page, _, err := readLeaves(ctx, t.s.pool, t.after, nil, pageSize)
			if err != nil {
				return false, err
			}
			if len(page) < pageSize {
				t.end = true
			}
			if len(page) == 0 {
				return false, nil
			}
			t.page = page
		}
		n := min(uint64(len(t.page)), size-t.frontier.Size())
		for _, l := range t.page[:n] {
			t.frontier.Append(leafHash(l.pos.GlobalPosition, l.hash), nil)
		}
		t.after = t.page[n-1].pos
		t.page = t.page[n:]
		if t.progress != nil {
			t.progress(int64(t.frontier.Size()))
		}
	}
	return true, nil
}

func (s *Store) verifyCheckpoints(ctx context.Context, opts LogVerifyOptions, rep *LogReport) error {
	src := &checkpointSource{s: s, next: 1, inDir: map[int64]bool{}}
	if opts.Dir != nil {
		seqs, err := opts.Dir.Seqs()
		if err != nil {
			return err
		}
		for _, q := range seqs {
			src.inDir[q] = true
			src.maxDir = max(src.maxDir, q)
		}
	}
	maxDB, err := src.maxDBSeq(ctx)
	if err != nil {
		return err
	}
	last := max(maxDB, src.maxDir)
	cur := &treeCursor{s: s}
	if opts.Progress != nil {
		cur.progress = func(n int64) { opts.Progress("checkpoints", n) }
	}
	var (
		prev        *Checkpoint
		prevMatched = true // the log matched every checkpoint so far
		lastGood    struct {
			size     uint64
			after    Position
			frontier merkle.Frontier
		}
	)
	for seq := int64(1); seq <= last; seq++ {
		db, err := src.fromDB(ctx, seq)
		if err != nil {
			return err
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
		if !prevMatched {
			continue
		}
		size := uint64(ck.TreeSize)
		if size < cur.frontier.Size() {
			continue // reported as a link finding
		}
		reached, err := cur.advanceTo(ctx, size)
		if err != nil {
			return err
		}
		if reached && cur.frontier.Root() == ck.Root && cur.after == ck.Last {
			rep.Covered = ck.TreeSize
			lastGood.size, lastGood.after, lastGood.frontier = size, cur.after, *cur.frontier.Clone()
			continue
		}
		prevMatched = false
		f := Finding{Kind: FindingLog, Seq: seq}
		if !reached {
			f.Detail = fmt.Sprintf("covers %d events up to position %d, the log holds only %d events: events were deleted or the table emptied",
				ck.TreeSize, ck.Last.GlobalPosition, cur.frontier.Size())
		} else {
			f.Detail = "the log's events up to position " + strconv.FormatInt(ck.Last.GlobalPosition, 10) +
				" no longer hash to the checkpoint's root"
		}
		if err := s.localize(ctx, ck, lastGood.size, lastGood.after, &lastGood.frontier, &f); err != nil {
			return err
		}
		rep.add(f)
	}
	return nil
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
			switch {
			case !checkpointed:
				f.Position = logPos
				f.Detail = fmt.Sprintf("the event at position %d is not in checkpoint %d, which has position %d there: inserted into the checkpointed log", logPos, ck.Seq, wantPos)
			case !inLog:
				f.Position = wantPos
				f.Detail = fmt.Sprintf("the event at position %d, covered by checkpoint %d, is missing from the log: deleted", wantPos, ck.Seq)
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
