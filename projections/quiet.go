package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/eventstore"
)

// batchXIDs holds the transaction ids of the batch transactions a Manager's
// consumers have open, for their reads to look past (eventstore.ReadAllPast).
//
// The xid horizon holds every reader behind the oldest transaction running
// in the cluster, because that transaction might still append events that
// belong before those already committed. A projector's batch transaction
// never appends: it writes its read model and its checkpoint. Yet with the
// plain horizon, five projectors side by side each held the others back
// for as long as their own batch was open, and the lag of the last one
// grew with the sum (docs/benchmarks.md, refreshes). An id enters the set
// only once its transaction holds it and leaves before that transaction
// ends or soon after, so a reader at worst waits for a batch it could have
// looked past, never looks past anything else.
type batchXIDs struct {
	mu  sync.Mutex
	ids map[uint64]struct{}
}

func newBatchXIDs() *batchXIDs { return &batchXIDs{ids: map[uint64]struct{}{}} }

// add records xid as an open batch transaction until the returned func runs.
func (b *batchXIDs) add(xid uint64) (remove func()) {
	if b == nil {
		return func() {}
	}
	b.mu.Lock()
	b.ids[xid] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.ids, xid)
		b.mu.Unlock()
	}
}

// list returns the open batch transactions' ids; nil when there are none.
func (b *batchXIDs) list() []uint64 {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ids) == 0 {
		return nil
	}
	out := make([]uint64, 0, len(b.ids))
	for id := range b.ids {
		out = append(out, id)
	}
	return out
}

// read reads the batch after pos that the projector selects, looking past
// the batch transactions of the consumers this one runs beside, and
// returns the position the read scanned past (eventstore.ReadSelected).
func (c *consumer) read(ctx context.Context, pos eventstore.Position, limit int) (recs []eventstore.Record, scanned eventstore.Position, full bool, err error) {
	if c.shared != nil {
		all, full, err := c.shared.read(ctx, c, pos, limit)
		if err != nil {
			return nil, pos, false, err
		}
		scanned = pos
		if len(all) > 0 {
			scanned = all[len(all)-1].Position()
		}
		return selectRecords(all, c.sel), scanned, full, nil
	}
	recs, scanned, err = eventstore.ReadSelected(ctx, c.pool, pos, limit, c.sel, c.cfg.batches.list())
	return recs, scanned, len(recs) == limit, err
}

// lockCheckpointAsBatch is lockCheckpoint for a consumer's batch: it also
// returns the id the lock gave tx (a row lock needs one), so that the
// batch's transaction can be entered into the set the readers look past.
func lockCheckpointAsBatch(ctx context.Context, tx pgx.Tx, name string) (eventstore.Position, uint64, error) {
	var (
		pos eventstore.Position
		xid uint64
	)
	err := tx.QueryRow(ctx, `SELECT transaction_id, global_position, pg_current_xact_id() FROM projection_checkpoints
		WHERE name = $1 FOR UPDATE`, name).Scan(&pos.TransactionID, &pos.GlobalPosition, &xid)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Position{}, 0, fmt.Errorf("lock checkpoint %s: no checkpoint row", name)
	}
	if err != nil {
		return eventstore.Position{}, 0, fmt.Errorf("lock checkpoint %s: %w", name, err)
	}
	return pos, xid, nil
}
