package eventstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore/merkle"
)

// segment is a run of consecutive leaves as audit_tree_leaves stores them:
// never crossing a multiple of chunkSize.
type segment struct {
	start       uint64
	first, last Position
	leaves      []byte // LeafData, concatenated
}

func (s segment) end() uint64 { return s.start + uint64(len(s.leaves)/leafDataSize) }

// treeReader answers the complete subtrees of the audit tree of one size:
// levels of chunkLevel and above from audit_tree_nodes, lower levels from
// the stored leaves of their chunk. A proof names O(log n) subtrees, so it
// costs a few indexed reads however long the log is. Nothing it reads is
// trusted: every proof is checked against a signed root.
type treeReader struct {
	q     Querier
	size  uint64
	upper map[merkle.NodeID]merkle.Hash
	// chunks holds the leaves of chunk c (up to size) once loaded.
	chunks map[uint64][]byte
	// extra are segments not stored yet: those of a checkpoint being made.
	extra []segment
	// leafOf maps the global positions of loaded chunks' leaves to their
	// index, so proofs of neighbouring events (an export) find theirs
	// without a query.
	leafOf map[int64]uint64
}

func newTreeReader(q Querier, size uint64) *treeReader {
	return &treeReader{q: q, size: size, upper: map[merkle.NodeID]merkle.Hash{}, chunks: map[uint64][]byte{}, leafOf: map[int64]uint64{}}
}

// load fetches whatever nodes need that is not cached yet.
func (t *treeReader) load(ctx context.Context, nodes []merkle.NodeID) error {
	var levels []int16
	var idxs []int64
	for _, n := range nodes {
		if n.End() > t.size {
			return fmt.Errorf("audit tree: node %d/%d lies beyond %d leaves", n.Level, n.Index, t.size)
		}
		if n.Level >= chunkLevel {
			if _, ok := t.upper[n]; !ok {
				levels, idxs = append(levels, int16(n.Level)), append(idxs, int64(n.Index))
			}
			continue
		}
		if err := t.loadChunk(ctx, n.Start()/chunkSize); err != nil {
			return err
		}
	}
	if len(levels) == 0 {
		return nil
	}
	rows, err := t.q.Query(ctx, `SELECT level, idx, hash FROM audit_tree_nodes
		WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))`, levels, idxs)
	if err != nil {
		return fmt.Errorf("read audit tree nodes: %w", err)
	}
	var (
		level int16
		idx   int64
		hash  []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&level, &idx, &hash}, func() error {
		h, err := merkle.HashFromBytes(hash)
		t.upper[merkle.NodeID{Level: uint8(level), Index: uint64(idx)}] = h
		return err
	})
	if err != nil {
		return fmt.Errorf("read audit tree nodes: %w", err)
	}
	return nil
}

// loadChunk loads the leaves of chunk c up to the tree's size.
func (t *treeReader) loadChunk(ctx context.Context, c uint64) error {
	if _, ok := t.chunks[c]; ok {
		return nil
	}
	from, to := c*chunkSize, min((c+1)*chunkSize, t.size)
	data, err := t.leaves(ctx, from, to)
	if err != nil {
		return err
	}
	t.chunks[c] = data
	for i := 0; i+leafDataSize <= len(data); i += leafDataSize {
		t.leafOf[int64(beUint64(data[i:]))] = from + uint64(i/leafDataSize)
	}
	return nil
}

// forget empties the caches once they hold more than max chunks.
func (t *treeReader) forget(max int) {
	if len(t.chunks) > max {
		t.chunks, t.leafOf = map[uint64][]byte{}, map[int64]uint64{}
	}
}

// leaves returns the LeafData of leaves [from, to), from the stored
// segments and the extra ones, checking that they join up without a gap.
func (t *treeReader) leaves(ctx context.Context, from, to uint64) ([]byte, error) {
	// A segment never crosses a chunk boundary, so the one holding leaf
	// from starts at most chunkSize-1 before it.
	lo := int64(from) - (chunkSize - 1)
	rows, err := t.q.Query(ctx, `SELECT start_index, first_transaction_id, first_position, last_transaction_id, last_position, leaves
		FROM audit_tree_leaves WHERE start_index >= $1 AND start_index < $2 ORDER BY start_index`, max(lo, 0), int64(to))
	if err != nil {
		return nil, fmt.Errorf("read audit tree leaves: %w", err)
	}
	segs, err := scanSegments(rows)
	if err != nil {
		return nil, err
	}
	for _, s := range t.extra {
		if s.end() > from && s.start < to {
			segs = append(segs, s)
		}
	}
	out := make([]byte, 0, (to-from)*leafDataSize)
	at := from
	for _, s := range segs {
		if s.end() <= at {
			continue
		}
		if s.start > at {
			break
		}
		hi := min(s.end(), to)
		out = append(out, s.leaves[(at-s.start)*leafDataSize:(hi-s.start)*leafDataSize]...)
		at = hi
		if at == to {
			break
		}
	}
	if at != to {
		return nil, fmt.Errorf("audit tree: leaves %d to %d are not stored (stored up to %d)", from, to, at)
	}
	return out, nil
}

func scanSegments(rows pgx.Rows) ([]segment, error) {
	var out []segment
	var (
		start  int64
		s      segment
		leaves []byte
	)
	_, err := pgx.ForEachRow(rows, []any{&start, &s.first.TransactionID, &s.first.GlobalPosition,
		&s.last.TransactionID, &s.last.GlobalPosition, &leaves}, func() error {
		if len(leaves) == 0 || len(leaves)%leafDataSize != 0 {
			return fmt.Errorf("segment at leaf %d holds %d bytes", start, len(leaves))
		}
		out = append(out, segment{start: uint64(start), first: s.first, last: s.last, leaves: append([]byte(nil), leaves...)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit tree leaves: %w", err)
	}
	return out, nil
}

// node returns a complete subtree's hash from what load fetched.
func (t *treeReader) node(n merkle.NodeID) (merkle.Hash, error) {
	if n.Level >= chunkLevel {
		h, ok := t.upper[n]
		if !ok {
			return h, fmt.Errorf("audit tree: node %d/%d is not stored", n.Level, n.Index)
		}
		return h, nil
	}
	c := n.Start() / chunkSize
	data := t.chunks[c]
	from := n.Start() - c*chunkSize
	to := from + (1 << n.Level)
	if uint64(len(data)) < to*leafDataSize {
		return merkle.Hash{}, fmt.Errorf("audit tree: leaves of node %d/%d are not loaded", n.Level, n.Index)
	}
	hs := make([]merkle.Hash, 0, to-from)
	for i := from; i < to; i++ {
		hs = append(hs, merkle.LeafHash(data[i*leafDataSize:(i+1)*leafDataSize]))
	}
	return merkle.RootOf(hs), nil
}

// resolve loads and hashes the ranges of a proof.
func (t *treeReader) resolve(ctx context.Context, ranges []merkle.Range) ([]merkle.Hash, error) {
	var nodes []merkle.NodeID
	for _, r := range ranges {
		nodes = append(nodes, r.Nodes()...)
	}
	if err := t.load(ctx, nodes); err != nil {
		return nil, err
	}
	return merkle.Resolve(ranges, t.node)
}

// leaf is one event as the tree sees it.
type leaf struct {
	pos  Position
	hash []byte
}

// appendLeafData appends a leaf's LeafData to out.
func appendLeafData(out []byte, l leaf) []byte {
	out = binary.BigEndian.AppendUint64(out, uint64(l.pos.GlobalPosition))
	return append(out, l.hash...)
}

// readLeavesSQL reads events in commit order after a position, only what
// the commit-order index holds plus the hash.
const readLeavesSQL = `SELECT transaction_id, global_position, hash FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2)
	ORDER BY events.transaction_id, events.global_position LIMIT $3`

// readLeavesBelowSQL is readLeavesSQL behind a fixed horizon: transactions
// older than it have all ended, so nothing can appear among them later.
const readLeavesBelowSQL = `SELECT transaction_id, global_position, hash FROM events
	WHERE (transaction_id, global_position) > ($1::xid8, $2) AND transaction_id < $4::xid8
	ORDER BY events.transaction_id, events.global_position LIMIT $3`

// readLeaves reads up to limit leaves after pos in commit order (behind
// horizon when it is not nil) and returns them with the last position read.
func readLeaves(ctx context.Context, q Querier, after Position, horizon *uint64, limit int) ([]leaf, Position, error) {
	var rows pgx.Rows
	var err error
	if horizon != nil {
		rows, err = q.Query(ctx, readLeavesBelowSQL, after.TransactionID, after.GlobalPosition, limit, *horizon)
	} else {
		rows, err = q.Query(ctx, readLeavesSQL, after.TransactionID, after.GlobalPosition, limit)
	}
	if err != nil {
		return nil, after, fmt.Errorf("read the log in commit order: %w", err)
	}
	out := make([]leaf, 0, min(limit, pageSize))
	// One backing array for the page's hashes instead of one per row.
	hashes := make([]byte, 0, min(limit, pageSize)*32)
	var l leaf
	_, err = pgx.ForEachRow(rows, []any{&l.pos.TransactionID, &l.pos.GlobalPosition, &l.hash}, func() error {
		if len(l.hash) != 32 {
			return fmt.Errorf("event at position %d has a %d-byte hash", l.pos.GlobalPosition, len(l.hash))
		}
		hashes = append(hashes, l.hash...)
		out = append(out, leaf{pos: l.pos, hash: hashes[len(hashes)-32 : len(hashes) : len(hashes)]})
		return nil
	})
	if err != nil {
		return nil, after, fmt.Errorf("read the log in commit order: %w", err)
	}
	if len(out) > 0 {
		after = out[len(out)-1].pos
	}
	return out, after, nil
}

// ErrNotCheckpointed means no checkpoint covers the event yet.
var ErrNotCheckpointed = errors.New("no checkpoint covers the event yet")

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
