package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/eventstore/merkle"
)

// BundleFormat names the export bundle's layout (docs/audit.md): one JSON
// document per line — a header, every checkpoint from the first to the
// anchor, one line per selected event with its inclusion proof in the
// anchor, and a trailer with the SHA-256 of every byte before it, signed.
const BundleFormat = "dashtam-audit-bundle/v1"

// maxBundleLine bounds one line of a bundle read back: an event's payload
// and metadata are at most a few kilobytes.
const maxBundleLine = 8 << 20

// BundleSelection is what an export covers; nil fields do not constrain.
type BundleSelection struct {
	Stream *Stream
	From   *time.Time
	To     *time.Time
}

type bundleHeader struct {
	Format      string          `json:"format"`
	CreatedAt   string          `json:"created_at"`
	Selection   bundleSelection `json:"selection"`
	KeyID       string          `json:"key_id"`
	PublicKey   string          `json:"public_key"`
	AnchorSeq   int64           `json:"anchor_seq"`
	Checkpoints int64           `json:"checkpoints"`
}

type bundleSelection struct {
	Stream string `json:"stream,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

type bundleCheckpoint struct {
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// bundleEvent is an event with every column its hash covers: payload and
// metadata as strings holding the stored text exactly, so that no JSON
// re-encoding on the way can change the hashed bytes.
type bundleEvent struct {
	Event struct {
		GlobalPosition int64      `json:"global_position"`
		TransactionID  uint64     `json:"transaction_id"`
		StreamType     string     `json:"stream_type"`
		StreamID       uuid.UUID  `json:"stream_id"`
		Version        int64      `json:"version"`
		EventID        uuid.UUID  `json:"event_id"`
		EventType      string     `json:"event_type"`
		SchemaVersion  int        `json:"schema_version"`
		OwnerID        *uuid.UUID `json:"owner_id"`
		RecordedAt     string     `json:"recorded_at"`
		Payload        string     `json:"payload_json"`
		Metadata       string     `json:"metadata_json"`
		PrevHash       string     `json:"prev_hash"`
		Hash           string     `json:"hash"`
		// DigestVersion is the layout the hash was computed with
		// (docs/event-store.md, "The digest"); owner_id is null exactly
		// when the column is NULL, which version 2 hashes.
		DigestVersion int `json:"digest_version"`
	} `json:"event"`
	Proof struct {
		LeafIndex int64    `json:"leaf_index"`
		Path      []string `json:"path"`
	} `json:"proof"`
}

type bundleTrailer struct {
	Trailer struct {
		Events    int64  `json:"events"`
		SHA256    string `json:"sha256"`
		Signature string `json:"signature"`
	} `json:"trailer"`
}

// bundleSignedText is what the trailer's signature covers.
func bundleSignedText(sum []byte) []byte {
	return []byte(BundleFormat + "\nsha256 " + hex.EncodeToString(sum) + "\n")
}

// ExportReport says what an export wrote.
type ExportReport struct {
	Anchor Checkpoint
	Events int64
	// Uncovered counts selected events no checkpoint covers yet (left out).
	Uncovered int64
}

// WriteBundle writes the events of sel that the newest checkpoint covers,
// each with its inclusion proof, the checkpoints from the first to that
// one, and a trailer signed by signer, to w. Make a checkpoint first to
// cover the newest events. Memory stays bounded: events are read in pages
// and the proofs' stored tree levels are cached up to a bound.
func (s *Store) WriteBundle(ctx context.Context, w io.Writer, sel BundleSelection, signer *Signer) (ExportReport, error) {
	var rep ExportReport
	anchor, ok, err := s.NewestCheckpoint(ctx)
	if err != nil {
		return rep, err
	}
	if !ok {
		return rep, ErrNotCheckpointed
	}
	rep.Anchor = anchor
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, sum), 64<<10)
	line := func(v any) error {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return err
		}
		_, err := bw.Write(buf.Bytes())
		return err
	}
	hdr := bundleHeader{Format: BundleFormat, CreatedAt: s.now().UTC().Format(checkpointTimeLayout), KeyID: signer.KeyID(),
		PublicKey: EncodePublicKey(signer.PublicKey()), AnchorSeq: anchor.Seq, Checkpoints: anchor.Seq}
	if sel.Stream != nil {
		hdr.Selection.Stream = sel.Stream.String()
	}
	if sel.From != nil {
		hdr.Selection.From = sel.From.UTC().Format(time.RFC3339Nano)
	}
	if sel.To != nil {
		hdr.Selection.To = sel.To.UTC().Format(time.RFC3339Nano)
	}
	if err := line(hdr); err != nil {
		return rep, fmt.Errorf("write bundle: %w", err)
	}
	if err := s.Checkpoints(ctx, 1, anchor.Seq, func(c Checkpoint) error { return line(bundleCheckpoint{Checkpoint: &c}) }); err != nil {
		return rep, fmt.Errorf("write bundle: %w", err)
	}
	tr := newTreeReader(s.pool, uint64(anchor.TreeSize))
	f := Filter{Stream: sel.Stream, From: sel.From, To: sel.To}
	err = s.Query(ctx, f, func(r Record) error {
		if anchor.Last.Less(r.Position()) {
			rep.Uncovered++
			return nil
		}
		tr.forget(4096) // bound the cache; proofs in log order reuse recent chunks
		idx, err := tr.leafIndex(ctx, r.Position())
		if err != nil {
			return err
		}
		ranges, err := merkle.InclusionRanges(idx, uint64(anchor.TreeSize))
		if err != nil {
			return err
		}
		path, err := tr.resolve(ctx, ranges)
		if err != nil {
			return err
		}
		var be bundleEvent
		e := &be.Event
		e.GlobalPosition, e.TransactionID, e.StreamType, e.StreamID = r.GlobalPosition, r.TransactionID, string(r.Stream.Type), r.Stream.ID
		e.Version, e.EventID, e.EventType, e.SchemaVersion = r.Version, r.EventID, r.EventType, r.SchemaVersion
		if r.OwnerSet() {
			owner := r.OwnerID
			e.OwnerID = &owner
		}
		e.DigestVersion = r.DigestVersion
		e.RecordedAt = r.RecordedAt.UTC().Format(checkpointTimeLayout)
		e.Payload, e.Metadata = string(r.Payload), string(r.RawMetadata)
		e.PrevHash, e.Hash = hex.EncodeToString(r.PrevHash), hex.EncodeToString(r.Hash)
		be.Proof.LeafIndex = int64(idx)
		be.Proof.Path = make([]string, len(path))
		for i, h := range path {
			be.Proof.Path[i] = h.String()
		}
		rep.Events++
		return line(be)
	})
	if err != nil {
		return rep, fmt.Errorf("write bundle: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return rep, fmt.Errorf("write bundle: %w", err)
	}
	digest := sum.Sum(nil)
	var t bundleTrailer
	t.Trailer.Events = rep.Events
	t.Trailer.SHA256 = hex.EncodeToString(digest)
	t.Trailer.Signature = base64.StdEncoding.EncodeToString(signer.sign(bundleSignedText(digest)))
	b, err := json.Marshal(t)
	if err != nil {
		return rep, err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return rep, fmt.Errorf("write bundle: %w", err)
	}
	return rep, nil
}

// BundleReport says what VerifyBundle checked.
type BundleReport struct {
	// Anchor is the checkpoint the events' proofs lead to.
	Anchor Checkpoint
	// Checkpoints and Events are how many were verified.
	Checkpoints, Events int64
	// KeyID names the key that signed the checkpoints and the bundle.
	KeyID string
	// Pinned is false when no trusted key was given: the bundle then
	// proves its integrity against its own key, not who made it.
	Pinned bool
	// Selection describes what the export selected.
	Selection string
}

// ErrBundle means a bundle does not verify; the message says where.
var ErrBundle = errors.New("bundle does not verify")

func bundleErr(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrBundle, line, fmt.Sprintf(format, args...))
}

// VerifyBundle checks a bundle with no database: every line parses
// strictly; the checkpoints are signed by a trusted key (or, with none, by
// the bundle's own key) and link up from the first; every event's hash is
// recomputed from its columns, links to the stream's previous event when
// both are in the bundle, and its inclusion proof folds to the anchor's
// signed root; and the trailer's digest covers every byte before it and
// its signature verifies. Any byte changed anywhere fails it.
func VerifyBundle(r io.Reader, trusted TrustedKeys) (BundleReport, error) {
	var rep BundleReport
	br := bufio.NewReaderSize(r, 64<<10)
	sum := sha256.New()
	n := 0
	readLine := func() ([]byte, error) {
		n++
		var buf []byte
		for {
			chunk, err := br.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > maxBundleLine {
				return nil, bundleErr(n, "longer than %d bytes", maxBundleLine)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err == io.EOF && len(buf) > 0 {
				return nil, bundleErr(n, "the file does not end with a newline")
			}
			return buf, err
		}
	}
	strict := func(b []byte, v any) error {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return err
		}
		if dec.More() {
			return errors.New("more than one document on the line")
		}
		return nil
	}

	first, err := readLine()
	if err != nil {
		return rep, bundleErr(n, "no header: %v", err)
	}
	sum.Write(first)
	var hdr bundleHeader
	if err := strict(first, &hdr); err != nil || hdr.Format != BundleFormat {
		return rep, bundleErr(n, "not a %s header", BundleFormat)
	}
	pub, err := ParsePublicKey(hdr.PublicKey)
	if err != nil || KeyID(pub) != hdr.KeyID {
		return rep, bundleErr(n, "the header's key is malformed")
	}
	keys := trusted
	rep.Pinned = len(trusted) > 0
	if !rep.Pinned {
		keys = TrustedKeys{pub}
	}
	rep.KeyID = hdr.KeyID
	rep.Selection = fmt.Sprintf("stream=%q from=%q to=%q", hdr.Selection.Stream, hdr.Selection.From, hdr.Selection.To)
	if hdr.AnchorSeq < 1 || hdr.Checkpoints != hdr.AnchorSeq {
		return rep, bundleErr(n, "the header names no anchor checkpoint")
	}

	var prev *Checkpoint
	for i := int64(1); i <= hdr.Checkpoints; i++ {
		b, err := readLine()
		if err != nil {
			return rep, bundleErr(n, "checkpoint %d: %v", i, err)
		}
		sum.Write(b)
		var bc bundleCheckpoint
		if err := strict(b, &bc); err != nil || bc.Checkpoint == nil {
			return rep, bundleErr(n, "checkpoint %d does not parse: %v", i, err)
		}
		ck := bc.Checkpoint
		if ck.Seq != i {
			return rep, bundleErr(n, "checkpoint %d where %d belongs", ck.Seq, i)
		}
		if err := ck.VerifySignature(keys); err != nil {
			return rep, bundleErr(n, "checkpoint %d: %v", i, err)
		}
		if err := ck.VerifyLink(prev); err != nil {
			return rep, bundleErr(n, "checkpoint %d: %v", i, err)
		}
		prev = ck
		rep.Checkpoints++
	}
	rep.Anchor = *prev

	last := map[uuid.UUID]bundleEvent{} // the previous event of each stream seen, for links
	lastPos := int64(0)
	for {
		b, err := readLine()
		if err != nil {
			return rep, bundleErr(n, "no trailer: %v", err)
		}
		if bytes.HasPrefix(b, []byte(`{"trailer":`)) {
			return rep, verifyTrailer(b, n, sum, &rep, keys, br)
		}
		sum.Write(b)
		var be bundleEvent
		if err := strict(b, &be); err != nil {
			return rep, bundleErr(n, "event does not parse: %v", err)
		}
		if err := checkBundleEvent(be, rep.Anchor, last, &lastPos); err != nil {
			return rep, bundleErr(n, "%v", err)
		}
		if len(last) > 100_000 {
			clear(last) // links are checked between neighbours; bound the memory
		}
		rep.Events++
	}
}

func checkBundleEvent(be bundleEvent, anchor Checkpoint, last map[uuid.UUID]bundleEvent, lastPos *int64) error {
	e := be.Event
	if e.GlobalPosition <= *lastPos {
		return fmt.Errorf("event at position %d is out of order", e.GlobalPosition)
	}
	*lastPos = e.GlobalPosition
	r := Record{GlobalPosition: e.GlobalPosition, TransactionID: e.TransactionID, Stream: Stream{Type: StreamType(e.StreamType), ID: e.StreamID},
		Version: e.Version, EventID: e.EventID, EventType: e.EventType, SchemaVersion: e.SchemaVersion,
		Payload: []byte(e.Payload), RawMetadata: []byte(e.Metadata), DigestVersion: e.DigestVersion}
	r.SetOwner(e.OwnerID)
	if !knownDigestVersion(r.DigestVersion) {
		return fmt.Errorf("event at position %d: unknown digest version %d", e.GlobalPosition, r.DigestVersion)
	}
	var err error
	if r.RecordedAt, err = time.Parse(time.RFC3339Nano, e.RecordedAt); err != nil {
		return fmt.Errorf("event at position %d: recorded_at: %v", e.GlobalPosition, err)
	}
	if r.PrevHash, err = hex.DecodeString(e.PrevHash); err != nil || len(r.PrevHash) != 32 {
		return fmt.Errorf("event at position %d: malformed prev_hash", e.GlobalPosition)
	}
	if r.Hash, err = hex.DecodeString(e.Hash); err != nil || len(r.Hash) != 32 {
		return fmt.Errorf("event at position %d: malformed hash", e.GlobalPosition)
	}
	want, err := ChainHash(r)
	if err != nil || !bytes.Equal(want, r.Hash) {
		return fmt.Errorf("event at position %d (%s v%d): its hash does not match its contents", e.GlobalPosition, r.Stream, r.Version)
	}
	if p, ok := last[r.Stream.ID]; ok && p.Event.Version+1 == r.Version && p.Event.Hash != e.PrevHash {
		return fmt.Errorf("event at position %d (%s v%d): prev_hash is not version %d's hash", e.GlobalPosition, r.Stream, r.Version, r.Version-1)
	}
	// A stream's digest version never goes back, between neighbours or not.
	if p, ok := last[r.Stream.ID]; ok && p.Event.Version < r.Version && p.Event.DigestVersion > r.DigestVersion {
		return fmt.Errorf("event at position %d (%s v%d): digest version %d follows version %d of v%d: a stream's digest version never goes back",
			e.GlobalPosition, r.Stream, r.Version, r.DigestVersion, p.Event.DigestVersion, p.Event.Version)
	}
	if r.Version == 1 && !bytes.Equal(r.PrevHash, ZeroHash) {
		return fmt.Errorf("event at position %d (%s v1): prev_hash is not zero", e.GlobalPosition, r.Stream)
	}
	last[r.Stream.ID] = be
	path := make([]merkle.Hash, len(be.Proof.Path))
	for i, s := range be.Proof.Path {
		if path[i], err = merkle.ParseHash(s); err != nil {
			return fmt.Errorf("event at position %d: proof: %v", e.GlobalPosition, err)
		}
	}
	if be.Proof.LeafIndex < 0 {
		return fmt.Errorf("event at position %d: negative leaf index", e.GlobalPosition)
	}
	if err := merkle.VerifyInclusion(uint64(be.Proof.LeafIndex), uint64(anchor.TreeSize), LeafHashOf(r), path, anchor.Root); err != nil {
		return fmt.Errorf("event at position %d: not in checkpoint %d: %v", e.GlobalPosition, anchor.Seq, err)
	}
	return nil
}

// verifyTrailer checks the last line: its exact bytes, the digest of all
// before it, the signature, and that nothing follows.
func verifyTrailer(b []byte, n int, sum hash.Hash, rep *BundleReport, keys TrustedKeys, rest *bufio.Reader) error {
	var t bundleTrailer
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return bundleErr(n, "trailer does not parse: %v", err)
	}
	// encoding/json matches keys regardless of case and hex and base64
	// decoders forgive case and padding variants: compare the exact bytes.
	again, _ := json.Marshal(t)
	if !bytes.Equal(append(again, '\n'), b) {
		return bundleErr(n, "trailer is not in its canonical form")
	}
	digest := sum.Sum(nil)
	if t.Trailer.SHA256 != hex.EncodeToString(digest) {
		return bundleErr(n, "the bundle's bytes do not match its digest: it was changed after export")
	}
	if t.Trailer.Events != rep.Events {
		return bundleErr(n, "trailer counts %d events, the bundle holds %d", t.Trailer.Events, rep.Events)
	}
	sig, err := base64.StdEncoding.DecodeString(t.Trailer.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return bundleErr(n, "malformed trailer signature")
	}
	ok := false
	for _, k := range keys {
		ok = ok || ed25519.Verify(k, bundleSignedText(digest), sig)
	}
	if !ok {
		return bundleErr(n, "the trailer's signature does not verify")
	}
	if _, err := rest.ReadByte(); err != io.EOF {
		return bundleErr(n+1, "data after the trailer")
	}
	return nil
}
