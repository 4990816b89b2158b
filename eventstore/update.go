package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// MaxUpdateAttempts bounds how often Update reloads and decides again after a
// conflict before giving up with the conflict error.
const MaxUpdateAttempts = 8

// Update is the one place for load-decide-append: it loads stream, passes its
// history (typed as the aggregate's own event type E) to decide, appends what
// decide returns at the loaded version, and on a version conflict reloads and
// decides again, at most MaxUpdateAttempts times. decide must be pure: it may
// run more than once. Deciding no events appends nothing.
func Update[E Event](ctx context.Context, s *Store, stream Stream, decide func(history []E) ([]E, error)) (AppendResult, error) {
	var lastErr error
	for attempt := 0; attempt < MaxUpdateAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return AppendResult{}, fmt.Errorf("update %s after %d conflicts: %w", stream, attempt, err)
			}
		}
		records, err := s.ReadStream(ctx, stream, 0)
		if err != nil {
			return AppendResult{}, err
		}
		history := make([]E, 0, len(records))
		for _, r := range records {
			e, err := s.Decode(r)
			if err != nil {
				return AppendResult{}, err
			}
			typed, ok := e.(E)
			if !ok {
				return AppendResult{}, fmt.Errorf("update %s: event %s (%T) does not belong to this aggregate", stream, r.EventType, e)
			}
			history = append(history, typed)
		}
		var version int64
		if n := len(records); n > 0 {
			version = records[n-1].Version
		}
		decided, err := decide(history)
		if err != nil {
			return AppendResult{}, err
		}
		if len(decided) == 0 {
			return AppendResult{Version: version}, nil
		}
		events := make([]Event, len(decided))
		for i, e := range decided {
			events[i] = e
		}
		res, err := s.Append(ctx, stream, version, events...)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, ErrConflict) {
			return AppendResult{}, err
		}
		lastErr = err
	}
	return AppendResult{}, lastErr
}

// backoff waits a short, jittered, growing time so that writers colliding on
// one stream spread out instead of colliding again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	base := time.Millisecond << min(attempt, 6)
	d := base/2 + rand.N(base)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
