package syncs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Job runs one sync of a connection. Each sync gets its own job, enqueued
// with the decision that started it: a job for the connection alone would
// be refused as a duplicate of the previous sync's job while river has not
// yet recorded that job's completion (it completes jobs in batches, after
// the handler returned), and the new sync would wait, queued, until it went
// stale.
type Job struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	// SyncID is the sync the job runs; a job whose sync has ended (or was
	// replaced) has nothing to do. The nil id, in jobs enqueued before
	// syncs had their own, runs whichever sync is in progress.
	SyncID uuid.UUID `json:"sync_id"`
}

// Kind names the job's worker.
func (Job) Kind() string { return "sync" }

// jobAttempts bounds a sync job's tries: with river's backoff (1 s, 16 s,
// 81 s, 256 s) a provider down for about six minutes fails the sync,
// well within SyncStale.
const jobAttempts = 5

// Request starts a sync of one of the principal's connections (POST
// /connections/{id}/syncs) and enqueues its job in the same unit of work.
// Errors: ErrNotFound (also for another user's connection), *RefusedError.
func (h *Handler) Request(ctx context.Context, p commands.Principal, connectionID uuid.UUID, force bool, rc commands.RequestContext) (View, error) {
	c, err := h.owned(ctx, p, connectionID)
	if err != nil {
		return View{}, err
	}
	ctx = commands.WithMetadata(ctx, c.UserID(), commands.ActorUser(p.UserID), command, rc)
	return h.start(ctx, connectionID, connection.SyncManual, force)
}

// InProgress returns the principal's connection's sync in progress, read
// from its stream (so current even before the read model has caught up);
// ok is false when none is. Errors: ErrNotFound.
func (h *Handler) InProgress(ctx context.Context, p commands.Principal, connectionID uuid.UUID) (View, bool, error) {
	c, err := h.owned(ctx, p, connectionID)
	if err != nil {
		return View{}, false, err
	}
	id, at := c.Syncing()
	if id == uuid.Nil {
		return View{}, false, nil
	}
	trigger, from, to := c.SyncTriggered()
	v := View{ID: id, ConnectionID: connectionID, Status: StatusQueued, Trigger: trigger, From: from, To: to, StartedAt: at}
	if c.SyncPicked() {
		v.Status = StatusRunning
	}
	return v, true, nil
}

// RunRequest is the RequestJob's work: a sync decided by the
// system, after an authorisation or for the scheduler. A connection that
// cannot sync now (one is running, the last was moments ago, it is not
// active) is left alone.
func (h *Handler) RunRequest(ctx context.Context, job RequestJob) error {
	l, err := h.connections.Load(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	c := l.State
	if c.Status() != connection.StatusActive {
		return nil
	}
	trigger := job.Trigger
	if c.LastSyncStartedAt().IsZero() {
		trigger = connection.SyncFirst
	} else if !trigger.Valid() || trigger == connection.SyncManual {
		trigger = connection.SyncScheduled
	}
	ctx = commands.WithMetadata(ctx, c.UserID(), commands.ActorSystem, command, commands.RequestContext{})
	_, err = h.start(ctx, job.ConnectionID, trigger, false)
	var refused *RefusedError
	if errors.As(err, &refused) {
		return nil
	}
	return err
}

// command is the use case every sync event's metadata names.
const command = "sync"

// start decides a sync of connection id and enqueues its job, in one unit
// of work; the stream's optimistic concurrency makes concurrent requests
// (on any instance) decide one after the other, so only one starts.
func (h *Handler) start(ctx context.Context, id uuid.UUID, trigger connection.SyncTrigger, force bool) (View, error) {
	oldest, err := oldestPending(ctx, h.pool, id)
	if err != nil {
		return View{}, err
	}
	syncID, err := uuid.NewV7()
	if err != nil {
		return View{}, fmt.Errorf("start sync: new sync id: %w", err)
	}
	var v View
	var refused *RefusedError
	_, err = h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (eventstore.Decision[connection.Event], error) {
		now := h.clock.Now()
		from, to := c.Window(now, h.overlap, oldest)
		events, err := c.StartSync(connection.SyncRequest{SyncID: syncID, Trigger: trigger, Force: force, From: from, To: to, At: now})
		if err != nil {
			refused = refusal(c, err, now)
			return eventstore.Decision[connection.Event]{}, err
		}
		if err := h.jobs.EnqueueTx(ctx, tx, Job{ConnectionID: id, SyncID: syncID}, commands.JobOptions{Unique: true, MaxAttempts: jobAttempts}); err != nil {
			return eventstore.Decision[connection.Event]{}, fmt.Errorf("enqueue sync: %w", err)
		}
		v = View{ID: syncID, ConnectionID: id, Status: StatusQueued, Trigger: trigger, Force: force, From: from, To: to, StartedAt: now}
		return eventstore.Decision[connection.Event]{Events: events}, nil
	})
	if refused != nil && err != nil && errors.Is(err, refused.Err) {
		return View{}, refused
	}
	if err != nil {
		return View{}, err
	}
	return v, nil
}

// refusal explains a StartSync error to the client, or returns nil for
// an error that is not a refusal (invalid input is a bug).
func refusal(c *connection.Connection, err error, now time.Time) *RefusedError {
	switch {
	case errors.Is(err, connection.ErrSyncRunning):
		running, _ := c.Syncing()
		return &RefusedError{Err: connection.ErrSyncRunning, RetryAfter: runningRetryAfter, Running: running}
	case errors.Is(err, connection.ErrSyncTooSoon):
		return &RefusedError{Err: connection.ErrSyncTooSoon, RetryAfter: c.LastSyncStartedAt().Add(connection.MinSyncInterval).Sub(now)}
	case errors.Is(err, connection.ErrNotActive), errors.Is(err, connection.ErrDisconnected), errors.Is(err, connection.ErrFailed):
		return &RefusedError{Err: err}
	}
	return nil
}

// owned loads connection id and checks that p owns it.
func (h *Handler) owned(ctx context.Context, p commands.Principal, id uuid.UUID) (*connection.Connection, error) {
	l, err := h.connections.Load(ctx, h.pool, id)
	if err != nil {
		return nil, err
	}
	if c := l.State; c.Status() != connection.StatusNone && c.UserID() == p.UserID && p.UserID != uuid.Nil {
		return c, nil
	}
	return nil, ErrNotFound
}
