package merkle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func leaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		out[i] = LeafHash(b[:])
	}
	return out
}

// memSource answers any complete subtree of ls by computing it.
func memSource(ls []Hash) NodeSource {
	return func(n NodeID) (Hash, error) {
		if n.End() > uint64(len(ls)) {
			return Hash{}, fmt.Errorf("node %+v beyond %d leaves", n, len(ls))
		}
		return RootOf(ls[n.Start():n.End()]), nil
	}
}

func TestFrontierMatchesRecursiveRoot(t *testing.T) {
	ls := leaves(300)
	var f Frontier
	emitted := map[NodeID]Hash{}
	for i, l := range ls {
		f.Append(l, func(id NodeID, h Hash) { emitted[id] = h })
		if got, want := f.Root(), RootOf(ls[:i+1]); got != want {
			t.Fatalf("size %d: root %s, want %s", i+1, got, want)
		}
		g, err := UnmarshalFrontier(f.Size(), f.Marshal())
		if err != nil || g.Root() != f.Root() {
			t.Fatalf("size %d: frontier does not round-trip: %v", i+1, err)
		}
	}
	for id, h := range emitted {
		if want := RootOf(ls[id.Start():id.End()]); h != want {
			t.Errorf("emitted node %+v = %s, want %s", id, h, want)
		}
	}
	if len(emitted) != 2*len(ls)-1-(len(f.Nodes())-1) {
		// Every complete subtree is emitted once: leaves plus merges.
		t.Logf("emitted %d nodes for %d leaves", len(emitted), len(ls))
	}
	if EmptyRoot() != (&Frontier{}).Root() {
		t.Error("empty frontier root")
	}
}

func TestInclusionProofs(t *testing.T) {
	ls := leaves(70)
	for size := 1; size <= len(ls); size++ {
		root := RootOf(ls[:size])
		for i := 0; i < size; i++ {
			ranges, err := InclusionRanges(uint64(i), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			proof, err := Resolve(ranges, memSource(ls[:size]))
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(uint64(i), uint64(size), ls[i], proof, root); err != nil {
				t.Fatalf("size %d leaf %d: %v", size, i, err)
			}
			// Any other leaf, index or root fails.
			if err := VerifyInclusion(uint64(i), uint64(size), ls[(i+1)%len(ls)], proof, root); !errors.Is(err, ErrProof) {
				t.Fatalf("size %d leaf %d: a wrong leaf verified", size, i)
			}
			if size > 1 {
				if err := VerifyInclusion(uint64((i+1)%size), uint64(size), ls[i], proof, root); err == nil {
					t.Fatalf("size %d leaf %d: a wrong index verified", size, i)
				}
			}
			if len(proof) > 0 {
				bad := append([]Hash(nil), proof...)
				bad[len(bad)-1][0] ^= 1
				if err := VerifyInclusion(uint64(i), uint64(size), ls[i], bad, root); err == nil {
					t.Fatalf("size %d leaf %d: an altered proof verified", size, i)
				}
				if err := VerifyInclusion(uint64(i), uint64(size), ls[i], proof[:len(proof)-1], root); err == nil {
					t.Fatalf("size %d leaf %d: a cut proof verified", size, i)
				}
			}
		}
	}
	if _, err := InclusionRanges(3, 3); err == nil {
		t.Error("leaf beyond the tree accepted")
	}
}

func TestConsistencyProofs(t *testing.T) {
	ls := leaves(70)
	for size := 1; size <= len(ls); size++ {
		root := RootOf(ls[:size])
		for old := 1; old <= size; old++ {
			oldRoot := RootOf(ls[:old])
			ranges, err := ConsistencyRanges(uint64(old), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			proof, err := Resolve(ranges, memSource(ls[:size]))
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(uint64(old), uint64(size), oldRoot, root, proof); err != nil {
				t.Fatalf("%d -> %d: %v", old, size, err)
			}
			if old < size {
				other := ls[0]
				other[1] ^= 1
				if err := VerifyConsistency(uint64(old), uint64(size), other, root, proof); err == nil {
					t.Fatalf("%d -> %d: a wrong old root verified", old, size)
				}
				bad := append([]Hash(nil), proof...)
				bad[0][0] ^= 1
				if err := VerifyConsistency(uint64(old), uint64(size), oldRoot, root, bad); err == nil {
					t.Fatalf("%d -> %d: an altered proof verified", old, size)
				}
				// A tree that rewrote an old leaf is not consistent.
				rewritten := append([]Hash(nil), ls[:size]...)
				rewritten[rand.IntN(old)][2] ^= 1
				proof2, _ := Resolve(ranges, memSource(rewritten))
				if err := VerifyConsistency(uint64(old), uint64(size), oldRoot, RootOf(rewritten), proof2); err == nil {
					t.Fatalf("%d -> %d: a rewritten history verified", old, size)
				}
			}
		}
	}
}

func TestRangeNodesAreAligned(t *testing.T) {
	for _, r := range []Range{{0, 13}, {8, 13}, {256, 300}, {0, 1}} {
		at := r.Start
		for _, n := range r.Nodes() {
			if n.Start() != at || n.Start()%(1<<n.Level) != 0 {
				t.Fatalf("%+v: node %+v not aligned at %d", r, n, at)
			}
			at = n.End()
		}
		if at != r.End {
			t.Fatalf("%+v: nodes end at %d", r, at)
		}
	}
}

func TestHashCodecs(t *testing.T) {
	ls := leaves(3)
	got, err := DecodeHashes(EncodeHashes(ls))
	if err != nil || !Equal(got, ls) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := DecodeHashes(make([]byte, 33)); err == nil {
		t.Error("odd length accepted")
	}
	h, err := ParseHash(ls[1].String())
	if err != nil || h != ls[1] {
		t.Fatalf("parse: %v", err)
	}
	if _, err := ParseHash("zz"); err == nil {
		t.Error("bad hex accepted")
	}
	if _, err := UnmarshalFrontier(3, make([]byte, 32)); err == nil {
		t.Error("short frontier accepted")
	}
}

func BenchmarkFrontierAppend(b *testing.B) {
	ls := leaves(1 << 16)
	b.ResetTimer()
	var f Frontier
	for i := 0; i < b.N; i++ {
		f.Append(ls[i&(1<<16-1)], nil)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
}
