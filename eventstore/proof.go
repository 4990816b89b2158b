package eventstore

import (
	"context"
	"fmt"

	"github.com/dashtam/dashtam/eventstore/merkle"
)

// InclusionProof shows that an event is leaf LeafIndex of Checkpoint's tree:
// hash the event's LeafData, fold Path (merkle.VerifyInclusion) and compare
// with the checkpoint's signed root.
type InclusionProof struct {
	Checkpoint Checkpoint
	LeafIndex  int64
	Path       []merkle.Hash
}

// Verify checks the proof for r: r's leaf at LeafIndex folds to the root.
func (p InclusionProof) Verify(r Record) error {
	return merkle.VerifyInclusion(uint64(p.LeafIndex), uint64(p.Checkpoint.TreeSize), LeafHashOf(r), p.Path, p.Checkpoint.Root)
}

// InclusionProof proves r's place in the newest checkpoint; it returns
// ErrNotCheckpointed when the newest checkpoint does not cover r yet (or
// there is none). The proof is built from the stored tree levels in a few
// indexed reads; it is checked by the caller, not here, so that an altered
// event yields a proof that fails rather than an error.
func (s *Store) InclusionProof(ctx context.Context, r Record) (InclusionProof, error) {
	ck, ok, err := s.NewestCheckpoint(ctx)
	if err != nil {
		return InclusionProof{}, err
	}
	if !ok || ck.Last.Less(r.Position()) {
		return InclusionProof{}, ErrNotCheckpointed
	}
	return s.inclusionProofIn(ctx, ck, r.Position())
}

func (s *Store) inclusionProofIn(ctx context.Context, ck Checkpoint, pos Position) (InclusionProof, error) {
	tr := newTreeReader(s.pool, uint64(ck.TreeSize))
	idx, err := tr.leafIndex(ctx, pos)
	if err != nil {
		return InclusionProof{}, err
	}
	ranges, err := merkle.InclusionRanges(idx, uint64(ck.TreeSize))
	if err != nil {
		return InclusionProof{}, err
	}
	path, err := tr.resolve(ctx, ranges)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("inclusion proof of position %d: %w", pos.GlobalPosition, err)
	}
	return InclusionProof{Checkpoint: ck, LeafIndex: int64(idx), Path: path}, nil
}

// leafIndex finds the leaf of the event at pos: in the stored segment whose
// first event is the last one at or before pos.
func (t *treeReader) leafIndex(ctx context.Context, pos Position) (uint64, error) {
	if i, ok := t.leafOf[pos.GlobalPosition]; ok {
		return i, nil
	}
	rows, err := t.q.Query(ctx, `SELECT start_index, first_transaction_id, first_position, last_transaction_id, last_position, leaves
		FROM audit_tree_leaves WHERE (first_transaction_id, first_position) <= ($1::xid8, $2)
		ORDER BY first_transaction_id DESC, first_position DESC LIMIT 1`, pos.TransactionID, pos.GlobalPosition)
	if err != nil {
		return 0, fmt.Errorf("find the leaf of position %d: %w", pos.GlobalPosition, err)
	}
	segs, err := scanSegments(rows)
	if err != nil {
		return 0, fmt.Errorf("find the leaf of position %d: %w", pos.GlobalPosition, err)
	}
	if len(segs) == 1 && !segs[0].last.Less(pos) {
		if i, ok := findLeaf(segs[0].leaves, pos.GlobalPosition); ok && segs[0].start+uint64(i) < t.size {
			return segs[0].start + uint64(i), nil
		}
	}
	return 0, fmt.Errorf("position %d: %w", pos.GlobalPosition, ErrNotCheckpointed)
}

// findLeaf returns the index of the leaf with global position gp in data.
func findLeaf(data []byte, gp int64) (int, bool) {
	for i := 0; i+leafDataSize <= len(data); i += leafDataSize {
		if int64(beUint64(data[i:])) == gp {
			return i / leafDataSize, true
		}
	}
	return 0, false
}
