// Package merkle is the RFC 6962 (Certificate Transparency) Merkle tree the
// audit checkpoints commit to: leaf and node hashes, an incremental frontier
// that grows a tree by one leaf at a time in O(1) amortised hashes, and
// inclusion and consistency proofs with their verification (RFC 9162 §2.1).
//
// The package is pure: proofs are built from a NodeSource the caller backs
// with whatever it stores (see eventstore's checkpoint tables), so the same
// code answers from the database, from memory and, offline, from a bundle.
package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// HashSize is the size of every hash in the tree (SHA-256).
const HashSize = sha256.Size

// Hash is a leaf or node hash.
type Hash [HashSize]byte

// String renders the hash in lower-case hex, the form logs and JSON use.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hash from its hex form.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != HashSize {
		return h, fmt.Errorf("hash %q: want %d bytes of hex", s, HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// HashFromBytes copies b, which must be HashSize bytes long, into a Hash.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != HashSize {
		return h, fmt.Errorf("hash of %d bytes, want %d", len(b), HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// EmptyRoot is the root of the tree with no leaves: SHA-256 of nothing.
func EmptyRoot() Hash { return sha256.Sum256(nil) }

// LeafHash is RFC 6962's leaf hash, SHA-256(0x00 || data); the prefix keeps
// a leaf from ever passing for an inner node.
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is RFC 6962's inner node hash, SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// NodeID names a complete, aligned subtree: the 2^Level leaves starting at
// leaf Index << Level. Level 0 is a leaf.
type NodeID struct {
	Level uint8
	Index uint64
}

// Start is the index of the subtree's first leaf.
func (n NodeID) Start() uint64 { return n.Index << n.Level }

// End is one past the index of the subtree's last leaf.
func (n NodeID) End() uint64 { return (n.Index + 1) << n.Level }

// Range is a run of leaves [Start, End) whose RFC 6962 hash a proof needs.
// Every range a proof names starts at a multiple of a power of two at least
// as large as its size, so it is the fold of the complete subtrees of its
// binary decomposition (Nodes), largest first.
type Range struct {
	Start, End uint64
}

// Nodes returns the complete aligned subtrees that make up r, left to right.
func (r Range) Nodes() []NodeID {
	var out []NodeID
	for at := r.Start; at < r.End; {
		size := r.End - at
		level := uint8(bits.Len64(size) - 1)
		// The range's start is aligned to its size's highest power of two
		// (see the type's comment), and so is every later piece's.
		out = append(out, NodeID{Level: level, Index: at >> level})
		at += 1 << level
	}
	return out
}

// NodeSource returns the hash of a complete aligned subtree of a tree; it
// fails for subtrees it does not hold.
type NodeSource func(NodeID) (Hash, error)

// Hash folds r's subtrees from src right to left, as RFC 6962's MTH does.
func (r Range) Hash(src NodeSource) (Hash, error) {
	nodes := r.Nodes()
	if len(nodes) == 0 {
		return Hash{}, errors.New("merkle: empty range")
	}
	acc, err := src(nodes[len(nodes)-1])
	if err != nil {
		return Hash{}, err
	}
	for i := len(nodes) - 2; i >= 0; i-- {
		left, err := src(nodes[i])
		if err != nil {
			return Hash{}, err
		}
		acc = NodeHash(left, acc)
	}
	return acc, nil
}

// largestPowerBelow returns the largest power of two strictly below n (n > 1).
func largestPowerBelow(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }

// InclusionRanges returns the ranges whose hashes form the inclusion proof
// of leaf index in a tree of size leaves (RFC 6962 PATH), leaf side first.
func InclusionRanges(index, size uint64) ([]Range, error) {
	if index >= size {
		return nil, fmt.Errorf("merkle: leaf %d is not in a tree of %d", index, size)
	}
	var out []Range
	var path func(m, a, b uint64)
	path = func(m, a, b uint64) {
		if b-a == 1 {
			return
		}
		k := largestPowerBelow(b - a)
		if m < a+k {
			path(m, a, a+k)
			out = append(out, Range{a + k, b})
		} else {
			path(m, a+k, b)
			out = append(out, Range{a, a + k})
		}
	}
	path(index, 0, size)
	return out, nil
}

// ConsistencyRanges returns the ranges whose hashes form the consistency
// proof from a tree of size old to one of size size (RFC 6962 PROOF). It is
// empty when the sizes are equal.
func ConsistencyRanges(old, size uint64) ([]Range, error) {
	if old == 0 || old > size {
		return nil, fmt.Errorf("merkle: no consistency proof from %d to %d leaves", old, size)
	}
	var out []Range
	var sub func(m, a, b uint64, whole bool)
	sub = func(m, a, b uint64, whole bool) {
		if m == b {
			if !whole {
				out = append(out, Range{a, b})
			}
			return
		}
		k := largestPowerBelow(b - a)
		if m <= a+k {
			sub(m, a, a+k, whole)
			out = append(out, Range{a + k, b})
		} else {
			sub(m, a+k, b, false)
			out = append(out, Range{a, a + k})
		}
	}
	sub(old, 0, size, true)
	return out, nil
}

// Resolve turns ranges into the proof hashes through src.
func Resolve(ranges []Range, src NodeSource) ([]Hash, error) {
	out := make([]Hash, len(ranges))
	for i, r := range ranges {
		h, err := r.Hash(src)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// ErrProof means a proof does not verify.
var ErrProof = errors.New("merkle: proof does not verify")

// VerifyInclusion checks that leaf (a leaf hash) is leaf index of the tree
// of size leaves with the given root (RFC 9162 §2.1.3.2).
func VerifyInclusion(index, size uint64, leaf Hash, proof []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("%w: leaf %d is not in a tree of %d", ErrProof, index, size)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("%w: proof too long", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: proof too short", ErrProof)
	}
	if r != root {
		return fmt.Errorf("%w: root mismatch", ErrProof)
	}
	return nil
}

// VerifyConsistency checks that the tree of size old with root oldRoot is a
// prefix of the tree of size size with root newRoot (RFC 9162 §2.1.4.2).
func VerifyConsistency(old, size uint64, oldRoot, newRoot Hash, proof []Hash) error {
	switch {
	case old == 0 || old > size:
		return fmt.Errorf("%w: no consistency from %d to %d leaves", ErrProof, old, size)
	case old == size:
		if len(proof) != 0 || oldRoot != newRoot {
			return fmt.Errorf("%w: equal sizes need equal roots and an empty proof", ErrProof)
		}
		return nil
	case len(proof) == 0:
		return fmt.Errorf("%w: empty proof", ErrProof)
	}
	if old&(old-1) == 0 {
		proof = append([]Hash{oldRoot}, proof...)
	}
	fn, sn := old-1, size-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := proof[0], proof[0]
	for _, c := range proof[1:] {
		if sn == 0 {
			return fmt.Errorf("%w: proof too long", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: proof too short", ErrProof)
	}
	if fr != oldRoot || sr != newRoot {
		return fmt.Errorf("%w: root mismatch", ErrProof)
	}
	return nil
}

// Frontier is the right edge of a tree being grown leaf by leaf: the roots
// of the complete subtrees of its size's binary decomposition, largest
// first. It is O(log n) hashes, and appending a leaf costs one leaf hash
// plus, amortised, one node hash, so a checkpoint over k new leaves costs
// about 2k hashes however large the tree already is.
type Frontier struct {
	size  uint64
	nodes []Hash
}

// Size is the number of leaves appended.
func (f *Frontier) Size() uint64 { return f.size }

// Append adds a leaf hash; emit, when not nil, hears every complete subtree
// the leaf completes, from the leaf itself (level 0) upwards, so a caller
// can store the levels it wants.
func (f *Frontier) Append(leaf Hash, emit func(NodeID, Hash)) {
	h, idx, level := leaf, f.size, uint8(0)
	if emit != nil {
		emit(NodeID{Level: 0, Index: idx}, h)
	}
	for s := f.size; s&1 == 1; s >>= 1 {
		left := f.nodes[len(f.nodes)-1]
		f.nodes = f.nodes[:len(f.nodes)-1]
		h = NodeHash(left, h)
		level++
		idx >>= 1
		if emit != nil {
			emit(NodeID{Level: level, Index: idx}, h)
		}
	}
	f.nodes = append(f.nodes, h)
	f.size++
}

// Root is the RFC 6962 root of the leaves appended so far.
func (f *Frontier) Root() Hash {
	if f.size == 0 {
		return EmptyRoot()
	}
	acc := f.nodes[len(f.nodes)-1]
	for i := len(f.nodes) - 2; i >= 0; i-- {
		acc = NodeHash(f.nodes[i], acc)
	}
	return acc
}

// Nodes returns the frontier's subtrees with their ids, largest first.
func (f *Frontier) Nodes() []NodeID {
	return Range{0, f.size}.Nodes()
}

// Hashes returns a copy of the frontier's hashes, largest subtree first.
func (f *Frontier) Hashes() []Hash { return append([]Hash(nil), f.nodes...) }

// Clone returns an independent copy.
func (f *Frontier) Clone() *Frontier {
	return &Frontier{size: f.size, nodes: f.Hashes()}
}

// Marshal encodes the frontier's hashes, concatenated; the size is kept by
// whoever stores it.
func (f *Frontier) Marshal() []byte {
	out := make([]byte, 0, len(f.nodes)*HashSize)
	for _, h := range f.nodes {
		out = append(out, h[:]...)
	}
	return out
}

// UnmarshalFrontier rebuilds the frontier of a tree of size leaves from
// Marshal's bytes.
func UnmarshalFrontier(size uint64, b []byte) (*Frontier, error) {
	want := bits.OnesCount64(size)
	if len(b) != want*HashSize {
		return nil, fmt.Errorf("merkle: frontier of %d leaves has %d bytes, want %d", size, len(b), want*HashSize)
	}
	f := &Frontier{size: size, nodes: make([]Hash, want)}
	for i := range f.nodes {
		copy(f.nodes[i][:], b[i*HashSize:])
	}
	return f, nil
}

// RootOf computes the root of leaves directly (RFC 6962 MTH), for tests and
// for small ranges.
func RootOf(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return EmptyRoot()
	case 1:
		return leaves[0]
	}
	k := largestPowerBelow(uint64(len(leaves)))
	return NodeHash(RootOf(leaves[:k]), RootOf(leaves[k:]))
}

// EncodeHashes concatenates hashes, the stored form of a proof.
func EncodeHashes(hs []Hash) []byte {
	out := make([]byte, 0, len(hs)*HashSize)
	for _, h := range hs {
		out = append(out, h[:]...)
	}
	return out
}

// DecodeHashes splits EncodeHashes's bytes.
func DecodeHashes(b []byte) ([]Hash, error) {
	if len(b)%HashSize != 0 {
		return nil, fmt.Errorf("merkle: %d bytes are not a list of hashes", len(b))
	}
	out := make([]Hash, len(b)/HashSize)
	for i := range out {
		copy(out[i][:], b[i*HashSize:])
	}
	return out, nil
}

// Equal reports whether two hash lists are equal.
func Equal(a, b []Hash) bool {
	return bytes.Equal(EncodeHashes(a), EncodeHashes(b))
}
