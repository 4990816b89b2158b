package audit

import (
	"context"
	"errors"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// checkpointCursorDigest names the checkpoint list in its cursors, so an
// event cursor is refused there and the other way round.
const checkpointCursorDigest = "checkpoints"

// Checkpoints lists the checkpoints newest first; see Service.
func (h *Handler) Checkpoints(ctx context.Context, p commands.Principal, q CheckpointQuery, rc commands.RequestContext) (CheckpointPage, error) {
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return CheckpointPage{}, invalid("limit", "must be from 1 to %d", MaxLimit)
	}
	var before int64
	filters := map[string]string{}
	if q.Limit != 0 {
		filters["limit"] = itoa(int64(q.Limit))
	}
	if q.Cursor != nil {
		filters["cursor"] = *q.Cursor
		after, err := decodeCursor(*q.Cursor, checkpointCursorDigest)
		if err != nil {
			return CheckpointPage{}, err
		}
		if after < 1 {
			return CheckpointPage{}, invalid("cursor", "is not a cursor this API issued")
		}
		before = after
	}
	if err := h.recordView(ctx, p, rc, routeCheckpoints, filters, ""); err != nil {
		return CheckpointPage{}, err
	}
	cks, err := h.store.CheckpointsBefore(ctx, before, limit+1)
	if err != nil {
		return CheckpointPage{}, err
	}
	var page CheckpointPage
	if len(cks) > limit {
		cks = cks[:limit]
		page.NextCursor = encodeCursor(checkpointCursorDigest, cks[len(cks)-1].Seq)
	}
	page.Checkpoints = cks
	return page, nil
}

// Checkpoint returns one checkpoint; see Service.
func (h *Handler) Checkpoint(ctx context.Context, p commands.Principal, seq int64, rc commands.RequestContext) (eventstore.Checkpoint, error) {
	if seq < 1 {
		return eventstore.Checkpoint{}, invalid("id", "checkpoints are numbered from 1")
	}
	if err := h.recordView(ctx, p, rc, routeCheckpoint, nil, "checkpoint:"+itoa(seq)); err != nil {
		return eventstore.Checkpoint{}, err
	}
	ck, err := h.store.CheckpointBySeq(ctx, seq)
	if errors.Is(err, eventstore.ErrCheckpointNotFound) {
		return eventstore.Checkpoint{}, ErrNotFound
	}
	return ck, err
}
