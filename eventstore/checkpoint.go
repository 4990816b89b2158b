package eventstore

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dashtam/dashtam/eventstore/merkle"
)

// CheckpointFormat names the checkpoint's JSON and signed-text layout.
const CheckpointFormat = "dashtam-audit-checkpoint/v1"

// chunkLevel is the lowest tree level stored (audit_tree_nodes), and a
// chunk (audit_tree_chunks) is the 2^chunkLevel leaves below one such node.
const (
	chunkLevel = 8
	chunkSize  = 1 << chunkLevel
	// leafDataSize is a leaf's data: 8-byte global position, 32-byte chain hash.
	leafDataSize = 8 + 32
)

// LeafData is what the audit tree commits to for one event: its global
// position, big-endian, and its chain hash. The position pins the event's
// place in the log; the chain hash covers every stored field.
func LeafData(position int64, hash []byte) []byte {
	out := make([]byte, leafDataSize)
	binary.BigEndian.PutUint64(out, uint64(position))
	copy(out[8:], hash)
	return out
}

// leafHash is the RFC 6962 leaf hash of an event.
func leafHash(position int64, hash []byte) merkle.Hash {
	var buf [leafDataSize]byte
	binary.BigEndian.PutUint64(buf[:], uint64(position))
	copy(buf[8:], hash)
	return merkle.LeafHash(buf[:])
}

// LeafHashOf is the tree's leaf hash of a record.
func LeafHashOf(r Record) merkle.Hash { return leafHash(r.GlobalPosition, r.Hash) }

// Checkpoint is a signed statement that the first TreeSize events of the
// log in commit order, the last of them at Last, have the Merkle root Root.
type Checkpoint struct {
	// Seq numbers checkpoints from 1, without gaps.
	Seq int64
	// TreeSize is how many events the checkpoint covers.
	TreeSize int64
	// Root is the RFC 6962 root over their leaves (LeafData).
	Root merkle.Hash
	// Last is the commit position of the last event covered.
	Last Position
	// CreatedAt is when the checkpoint was made, in microseconds.
	CreatedAt time.Time
	// PrevDigest is the Digest of checkpoint Seq-1 (zero for the first).
	PrevDigest merkle.Hash
	// Consistency is the RFC 6962 proof that the previous checkpoint's tree
	// is a prefix of this one's (empty for the first).
	Consistency []merkle.Hash
	// KeyID names PublicKey.
	KeyID string
	// PublicKey verifies Signature.
	PublicKey ed25519.PublicKey
	// Signature is Ed25519 over SignedText.
	Signature []byte
}

// SignedText is the exact text the signature covers: every field but the
// proof (verifiable from the two roots) and the signature itself.
func (c Checkpoint) SignedText() []byte {
	var b bytes.Buffer
	b.WriteString(CheckpointFormat + "\n")
	fmt.Fprintf(&b, "seq %d\n", c.Seq)
	fmt.Fprintf(&b, "tree_size %d\n", c.TreeSize)
	fmt.Fprintf(&b, "root %s\n", c.Root)
	fmt.Fprintf(&b, "last %d %d\n", c.Last.TransactionID, c.Last.GlobalPosition)
	fmt.Fprintf(&b, "created_at %s\n", c.CreatedAt.UTC().Format(checkpointTimeLayout))
	fmt.Fprintf(&b, "prev %s\n", c.PrevDigest)
	fmt.Fprintf(&b, "key %s\n", c.KeyID)
	return b.Bytes()
}

// checkpointTimeLayout renders times at the database's microsecond precision.
const checkpointTimeLayout = "2006-01-02T15:04:05.000000Z"

// Digest is SHA-256 of SignedText: what the next checkpoint names as PrevDigest.
func (c Checkpoint) Digest() merkle.Hash { return sha256.Sum256(c.SignedText()) }

// sign fills in the key and signature.
func (c *Checkpoint) sign(s *Signer) {
	c.KeyID, c.PublicKey = s.KeyID(), s.PublicKey()
	c.Signature = s.sign(c.SignedText())
}

// VerifySignature checks the signature and that the key is trusted.
func (c Checkpoint) VerifySignature(trusted TrustedKeys) error {
	if c.KeyID != KeyID(c.PublicKey) {
		return errors.New("key id does not name the checkpoint's public key")
	}
	return trusted.check(c.PublicKey, c.SignedText(), c.Signature)
}

// VerifyLink checks that c follows prev: the next sequence number, prev's
// digest, a larger tree, and a consistency proof from prev's tree to c's.
func (c Checkpoint) VerifyLink(prev *Checkpoint) error {
	if prev == nil {
		if c.Seq != 1 {
			return fmt.Errorf("checkpoint %d has no predecessor", c.Seq)
		}
		if c.PrevDigest != (merkle.Hash{}) || len(c.Consistency) != 0 {
			return errors.New("the first checkpoint names a predecessor")
		}
		return nil
	}
	switch {
	case c.Seq != prev.Seq+1:
		return fmt.Errorf("follows checkpoint %d", prev.Seq)
	case c.PrevDigest != prev.Digest():
		return fmt.Errorf("does not name checkpoint %d's digest", prev.Seq)
	case c.TreeSize <= prev.TreeSize:
		return fmt.Errorf("covers %d events, no more than checkpoint %d's %d", c.TreeSize, prev.Seq, prev.TreeSize)
	case !prev.Last.Less(c.Last):
		return fmt.Errorf("ends at or before checkpoint %d's last position", prev.Seq)
	}
	if err := merkle.VerifyConsistency(uint64(prev.TreeSize), uint64(c.TreeSize), prev.Root, c.Root, c.Consistency); err != nil {
		return fmt.Errorf("consistency proof from checkpoint %d: %w", prev.Seq, err)
	}
	return nil
}

// checkpointJSON is the one-line JSON form of a checkpoint: what `dashtam
// audit checkpoint` prints, what each file of the checkpoint directory holds
// and what export bundles carry.
type checkpointJSON struct {
	Format            string   `json:"format"`
	Seq               int64    `json:"seq"`
	TreeSize          int64    `json:"tree_size"`
	Root              string   `json:"root"`
	LastTransactionID uint64   `json:"last_transaction_id"`
	LastPosition      int64    `json:"last_position"`
	CreatedAt         string   `json:"created_at"`
	PrevDigest        string   `json:"prev_digest"`
	ConsistencyProof  []string `json:"consistency_proof"`
	KeyID             string   `json:"key_id"`
	PublicKey         string   `json:"public_key"`
	Signature         string   `json:"signature"`
	Digest            string   `json:"digest"`
}

// MarshalJSON renders the checkpoint's one-line JSON form.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	proof := make([]string, len(c.Consistency))
	for i, h := range c.Consistency {
		proof[i] = h.String()
	}
	return json.Marshal(checkpointJSON{
		Format: CheckpointFormat, Seq: c.Seq, TreeSize: c.TreeSize, Root: c.Root.String(),
		LastTransactionID: c.Last.TransactionID, LastPosition: c.Last.GlobalPosition,
		CreatedAt: c.CreatedAt.UTC().Format(checkpointTimeLayout), PrevDigest: c.PrevDigest.String(),
		ConsistencyProof: proof, KeyID: c.KeyID, PublicKey: base64.StdEncoding.EncodeToString(c.PublicKey),
		Signature: base64.StdEncoding.EncodeToString(c.Signature), Digest: c.Digest().String(),
	})
}

// UnmarshalJSON reads the one-line JSON form strictly: unknown members, a
// wrong format or a digest that does not match the fields are refused.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var j checkpointJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if j.Format != CheckpointFormat {
		return fmt.Errorf("checkpoint: format %q, want %q", j.Format, CheckpointFormat)
	}
	var out Checkpoint
	var err error
	out.Seq, out.TreeSize = j.Seq, j.TreeSize
	out.Last = Position{TransactionID: j.LastTransactionID, GlobalPosition: j.LastPosition}
	if out.Root, err = merkle.ParseHash(j.Root); err != nil {
		return fmt.Errorf("checkpoint root: %w", err)
	}
	if out.PrevDigest, err = merkle.ParseHash(j.PrevDigest); err != nil {
		return fmt.Errorf("checkpoint prev_digest: %w", err)
	}
	if out.CreatedAt, err = time.Parse(time.RFC3339Nano, j.CreatedAt); err != nil {
		return fmt.Errorf("checkpoint created_at: %w", err)
	}
	out.CreatedAt = out.CreatedAt.UTC()
	for _, s := range j.ConsistencyProof {
		h, err := merkle.ParseHash(s)
		if err != nil {
			return fmt.Errorf("checkpoint consistency_proof: %w", err)
		}
		out.Consistency = append(out.Consistency, h)
	}
	out.KeyID = j.KeyID
	if out.PublicKey, err = base64.StdEncoding.DecodeString(j.PublicKey); err != nil {
		return fmt.Errorf("checkpoint public_key: %w", err)
	}
	if out.Signature, err = base64.StdEncoding.DecodeString(j.Signature); err != nil {
		return fmt.Errorf("checkpoint signature: %w", err)
	}
	if out.Seq <= 0 || out.TreeSize <= 0 {
		return errors.New("checkpoint: seq and tree_size must be positive")
	}
	if got := out.Digest().String(); got != j.Digest {
		return fmt.Errorf("checkpoint %d: digest %s does not match its fields (%s)", out.Seq, j.Digest, got)
	}
	*c = out
	return nil
}

// Equal reports whether two checkpoints are the same in every field,
// proof included.
func (c Checkpoint) Equal(o Checkpoint) bool {
	return bytes.Equal(c.SignedText(), o.SignedText()) && merkle.Equal(c.Consistency, o.Consistency) &&
		bytes.Equal(c.PublicKey, o.PublicKey) && bytes.Equal(c.Signature, o.Signature)
}

// String names the checkpoint for messages.
func (c Checkpoint) String() string {
	return "checkpoint " + strconv.FormatInt(c.Seq, 10) + " (" + strconv.FormatInt(c.TreeSize, 10) +
		" events, last position " + strconv.FormatInt(c.Last.GlobalPosition, 10) + ")"
}
