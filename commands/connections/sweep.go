package connections

import (
	"context"
	"time"
)

// StateRetention is how long an OAuth state row outlives its deadline:
// nothing accepts it after the deadline; the margin only keeps the sweep
// clear of a callback that read the row a moment before.
const StateRetention = 24 * time.Hour

// Sweep deletes the OAuth states that expired more than StateRetention
// before now and returns how many; a server calls it periodically. Nothing
// auditable goes: the log records every authorisation's outcome.
func (h *Handler) Sweep(ctx context.Context, now time.Time) (int64, error) {
	return sweepStates(ctx, h.pool, now.Add(-StateRetention))
}
