package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore/merkle"
)

// MaxCheckpointLeaves bounds how many new events one checkpoint covers, so
// that the rows it writes (about 40 bytes per event) fit in memory and in one
// short transaction; a longer backlog gets several checkpoints in a row.
const MaxCheckpointLeaves = 1 << 20

// lockAudit is the advisory-lock namespace of checkpointing: one instance
// checkpoints at a time.
const lockAudit int32 = 0x64700020

// ErrCheckpointBusy means another process holds the checkpoint lock.
var ErrCheckpointBusy = errors.New("another process is making a checkpoint")

// ErrLogChanged means events the newest checkpoint covers no longer hash
// to its tree: the log was rewritten, and `dashtam audit verify` says where.
var ErrLogChanged = errors.New("the log changed under the newest checkpoint")

// Checkpointer makes signed checkpoints of the store's log and keeps the
// write-once directory copy of them (see docs/audit.md).
type Checkpointer struct {
	store     *Store
	signer    *Signer
	dir       *CheckpointDir // nil: the database only
	maxLeaves int
}

// NewCheckpointer returns a checkpointer signing with signer; dir, when not
// nil, receives a file per checkpoint.
func NewCheckpointer(store *Store, signer *Signer, dir *CheckpointDir) (*Checkpointer, error) {
	if store == nil || signer == nil {
		return nil, errors.New("eventstore: checkpointer needs a store and a signer")
	}
	return &Checkpointer{store: store, signer: signer, dir: dir, maxLeaves: MaxCheckpointLeaves}, nil
}

// Checkpoint makes one checkpoint over the events behind the xid horizon
// that the newest checkpoint does not cover, at most MaxCheckpointLeaves of
// them; made is false when there are none. It waits for the checkpoint lock
// when wait is true and returns ErrCheckpointBusy otherwise. The files of
// checkpoints the directory lacks are written afterwards.
func (c *Checkpointer) Checkpoint(ctx context.Context, wait bool) (ck Checkpoint, made bool, err error) {
	conn, err := c.store.pool.Acquire(ctx)
	if err != nil {
		return ck, false, fmt.Errorf("checkpoint: %w", err)
	}
	defer conn.Release()
	if wait {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1, 0)`, lockAudit)
	} else {
		var got bool
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, 0)`, lockAudit).Scan(&got)
		if err == nil && !got {
			return ck, false, ErrCheckpointBusy
		}
	}
	if err != nil {
		return ck, false, fmt.Errorf("checkpoint: lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, 0)`, lockAudit); uerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // a lost unlock must not keep the lock
		}
	}()
	ck, made, err = c.checkpoint(ctx)
	if err != nil {
		return ck, false, err
	}
	if c.dir != nil {
		if err := c.SyncDir(ctx); err != nil {
			return ck, made, err
		}
	}
	return ck, made, nil
}

// CheckpointAll makes checkpoints until everything behind the horizon is
// covered (several when the backlog exceeds MaxCheckpointLeaves) and
// returns them.
func (c *Checkpointer) CheckpointAll(ctx context.Context, wait bool) ([]Checkpoint, error) {
	var out []Checkpoint
	for {
		ck, made, err := c.Checkpoint(ctx, wait)
		if err != nil || !made {
			return out, err
		}
		out = append(out, ck)
	}
}

// checkpoint does the work under the lock: read, hash, then write in one
// short transaction. Reading happens outside any transaction, so the
// horizon is never held back for longer than the write.
func (c *Checkpointer) checkpoint(ctx context.Context) (Checkpoint, bool, error) {
	pool := c.store.pool
	prev, frontier, err := c.resume(ctx)
	if err != nil {
		return Checkpoint{}, false, err
	}
	var horizon uint64
	if err := pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())`).Scan(&horizon); err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: read the horizon: %w", err)
	}
	after := Position{}
	if prev != nil {
		after = prev.Last
	}
	oldSize := frontier.Size()
	newNodes := map[merkle.NodeID]merkle.Hash{}
	emit := func(n merkle.NodeID, h merkle.Hash) {
		if n.Level >= chunkLevel {
			newNodes[n] = h
		}
	}
	// New leaves go into segments cut at every chunk boundary.
	var segs []segment
	cur := segment{start: oldSize}
	added := 0
	for added < c.maxLeaves {
		page, next, err := readLeaves(ctx, pool, after, &horizon, min(pageSize, c.maxLeaves-added))
		if err != nil {
			return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
		}
		for _, l := range page {
			frontier.Append(leafHash(l.pos.GlobalPosition, l.hash), emit)
			if len(cur.leaves) == 0 {
				cur.first = l.pos
			}
			cur.last = l.pos
			cur.leaves = appendLeafData(cur.leaves, l)
			if frontier.Size()%chunkSize == 0 {
				segs = append(segs, cur)
				cur = segment{start: frontier.Size()}
			}
		}
		added += len(page)
		after = next
		if len(page) < pageSize {
			break
		}
	}
	if len(cur.leaves) > 0 {
		segs = append(segs, cur)
	}
	if added == 0 {
		if prev != nil {
			return *prev, false, nil
		}
		return Checkpoint{}, false, nil
	}
	ck := Checkpoint{
		TreeSize:  int64(frontier.Size()),
		Root:      frontier.Root(),
		Last:      after,
		CreatedAt: c.store.now().UTC().Truncate(time.Microsecond),
		Seq:       1,
	}
	if prev != nil {
		ck.Seq, ck.PrevDigest = prev.Seq+1, prev.Digest()
		// The consistency proof reads the stored tree where the old and new
		// ones overlap, and the rows about to be written for the rest.
		tr := newTreeReader(pool, frontier.Size())
		for n, h := range newNodes {
			tr.upper[n] = h
		}
		tr.extra = segs
		ranges, err := merkle.ConsistencyRanges(oldSize, frontier.Size())
		if err != nil {
			return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
		}
		if ck.Consistency, err = tr.resolve(ctx, ranges); err != nil {
			return Checkpoint{}, false, fmt.Errorf("checkpoint: consistency proof: %w", err)
		}
		if err := ck.VerifyLink(prev); err != nil {
			return Checkpoint{}, false, fmt.Errorf("checkpoint: %w: %v", ErrLogChanged, err)
		}
	}
	ck.sign(c.signer)

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, tree_size, root, last_transaction_id, last_position,
			created_at, prev_digest, consistency_proof, key_id, public_key, signature, frontier)
			VALUES ($1, $2, $3, $4::xid8, $5, $6, $7, $8, $9, $10, $11, $12)`,
			ck.Seq, ck.TreeSize, ck.Root[:], ck.Last.TransactionID, ck.Last.GlobalPosition, ck.CreatedAt,
			ck.PrevDigest[:], merkle.EncodeHashes(ck.Consistency), ck.KeyID, []byte(ck.PublicKey), ck.Signature,
			frontier.Marshal()); err != nil {
			return fmt.Errorf("store checkpoint %d: %w", ck.Seq, err)
		}
		rows := make([][]any, len(segs))
		for i, sg := range segs {
			rows[i] = []any{int64(sg.start), sg.first.TransactionID, sg.first.GlobalPosition, sg.last.TransactionID, sg.last.GlobalPosition, sg.leaves}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_tree_leaves"},
			[]string{"start_index", "first_transaction_id", "first_position", "last_transaction_id", "last_position", "leaves"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("store audit tree leaves: %w", err)
		}
		if len(newNodes) > 0 {
			rows := make([][]any, 0, len(newNodes))
			for n, h := range newNodes {
				rows = append(rows, []any{int16(n.Level), int64(n.Index), h[:]})
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_tree_nodes"}, []string{"level", "idx", "hash"},
				pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("store audit tree nodes: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
	}
	return ck, true, nil
}

// resume loads the newest checkpoint and the tree's right edge, checking
// that the edge still folds to the signed root: a checkpoint is never built
// on a frontier someone rewrote.
func (c *Checkpointer) resume(ctx context.Context) (*Checkpoint, *merkle.Frontier, error) {
	prev, stored, err := newestCheckpoint(ctx, c.store.pool)
	if err != nil || prev == nil {
		return nil, &merkle.Frontier{}, err
	}
	frontier, err := merkle.UnmarshalFrontier(uint64(prev.TreeSize), stored)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", prev, err)
	}
	if frontier.Root() != prev.Root {
		return nil, nil, fmt.Errorf("checkpoint: %w: the stored frontier of %s does not fold to its root", ErrLogChanged, prev)
	}
	return prev, frontier, nil
}

// checkpointColumns is the select list scanCheckpoint expects.
const checkpointColumns = `seq, tree_size, root, last_transaction_id, last_position, created_at, prev_digest,
	consistency_proof, key_id, public_key, signature`

func scanCheckpoint(row pgx.Row, extra ...any) (Checkpoint, error) {
	var (
		c                 Checkpoint
		root, prev, proof []byte
		pub, sig          []byte
	)
	dest := append([]any{&c.Seq, &c.TreeSize, &root, &c.Last.TransactionID, &c.Last.GlobalPosition, &c.CreatedAt,
		&prev, &proof, &c.KeyID, &pub, &sig}, extra...)
	if err := row.Scan(dest...); err != nil {
		return c, err
	}
	var err error
	if c.Root, err = merkle.HashFromBytes(root); err != nil {
		return c, err
	}
	if c.PrevDigest, err = merkle.HashFromBytes(prev); err != nil {
		return c, err
	}
	if c.Consistency, err = merkle.DecodeHashes(proof); err != nil {
		return c, err
	}
	c.CreatedAt = c.CreatedAt.UTC()
	c.PublicKey, c.Signature = pub, sig
	return c, nil
}

// newestCheckpoint returns the newest stored checkpoint and its frontier, or nil.
func newestCheckpoint(ctx context.Context, q Querier) (*Checkpoint, []byte, error) {
	rows, err := q.Query(ctx, `SELECT `+checkpointColumns+`, frontier FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return nil, nil, fmt.Errorf("read the newest checkpoint: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, nil, rows.Err()
	}
	var frontier []byte
	c, err := scanCheckpoint(rows, &frontier)
	if err != nil {
		return nil, nil, fmt.Errorf("read the newest checkpoint: %w", err)
	}
	return &c, frontier, nil
}

// NewestCheckpoint returns the newest checkpoint, or false when there is none.
func (s *Store) NewestCheckpoint(ctx context.Context) (Checkpoint, bool, error) {
	c, _, err := newestCheckpoint(ctx, s.pool)
	if err != nil || c == nil {
		return Checkpoint{}, false, err
	}
	return *c, true, nil
}

// ErrCheckpointNotFound means no checkpoint has the requested sequence number.
var ErrCheckpointNotFound = errors.New("checkpoint not found")

// CheckpointBySeq returns checkpoint seq.
func (s *Store) CheckpointBySeq(ctx context.Context, seq int64) (Checkpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints WHERE seq = $1`, seq)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint %d: %w", seq, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Checkpoint{}, fmt.Errorf("read checkpoint %d: %w", seq, err)
		}
		return Checkpoint{}, ErrCheckpointNotFound
	}
	c, err := scanCheckpoint(rows)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint %d: %w", seq, err)
	}
	return c, nil
}

// Checkpoints calls fn with the stored checkpoints whose seq lies in
// [from, to] (to <= 0: no upper bound), in seq order, reading them in pages.
func (s *Store) Checkpoints(ctx context.Context, from, to int64, fn func(Checkpoint) error) error {
	const page = 500
	for {
		rows, err := s.pool.Query(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints
			WHERE seq >= $1 AND ($2 <= 0 OR seq <= $2) ORDER BY seq LIMIT $3`, from, to, page)
		if err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		var got []Checkpoint
		for rows.Next() {
			c, err := scanCheckpoint(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("read checkpoints: %w", err)
			}
			got = append(got, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		for _, c := range got {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(got) < page {
			return nil
		}
		from = got[len(got)-1].Seq + 1
	}
}

// CheckpointsBefore returns up to limit stored checkpoints with seq below
// before (0: the newest), newest first: one keyset page of the audit API.
func (s *Store) CheckpointsBefore(ctx context.Context, before int64, limit int) ([]Checkpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints
		WHERE $1 <= 0 OR seq < $1 ORDER BY seq DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return out, nil
}
