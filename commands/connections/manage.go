package connections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Rename sets a connection's alias; see Service.
func (h *Handler) Rename(ctx context.Context, p commands.Principal, id uuid.UUID, alias string, rc commands.RequestContext) (View, error) {
	if _, err := h.owned(ctx, p, id); err != nil {
		return View{}, err
	}
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "rename connection", rc)
	var v View
	_, err := h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		events, err := c.Rename(alias, h.clock.Now())
		if err != nil {
			return decision{}, err
		}
		c.Apply(events...)
		if len(events) > 0 && c.Status().Live() {
			if err := renameAlias(ctx, tx, id, c.Alias()); err != nil {
				return decision{}, err
			}
		}
		v = view(c)
		return decision{Events: events}, nil
	})
	if err != nil {
		return View{}, err
	}
	return v, nil
}

// Revoker is what a provider adapter implements when the institution can
// revoke a grant (RFC 7009); disconnecting calls it before destroying the
// credentials. Providers without one are disconnected locally.
type Revoker interface {
	// Revoke asks the provider to end the grant of c.
	Revoke(ctx context.Context, c commands.Credentials) error
}

// FinishDisconnectJob completes a disconnection whose request ended
// between its attempt and its outcome (a crash, a cancelled request).
type FinishDisconnectJob struct {
	ConnectionID uuid.UUID `json:"connection_id"`
}

// Kind names the job's worker.
func (FinishDisconnectJob) Kind() string { return "connection_finish_disconnect" }

// finishDisconnectAfter is when FinishDisconnectJob looks at a disconnection.
const finishDisconnectAfter = 5 * time.Minute

// Disconnect ends a connection: the attempt is recorded (with a job that
// finishes it should this request not), the provider is asked to revoke
// its grant with no transaction open, then the credentials are destroyed,
// the alias freed and the outcome recorded in one unit of work. See Service.
func (h *Handler) Disconnect(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) error {
	if _, err := h.owned(ctx, p, id); err != nil {
		return err
	}
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "disconnect", rc)
	_, err := h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		now := h.clock.Now()
		events, err := c.AttemptDisconnect(now)
		if err != nil {
			return decision{}, err
		}
		if err := h.jobs.EnqueueTx(ctx, tx, FinishDisconnectJob{ConnectionID: id},
			commands.JobOptions{RunAt: now.Add(finishDisconnectAfter), Unique: true}); err != nil {
			return decision{}, fmt.Errorf("enqueue disconnect finisher: %w", err)
		}
		return decision{Events: events}, nil
	})
	if err != nil {
		return err
	}
	return h.finishDisconnect(ctx, id)
}

// FinishDisconnect is the FinishDisconnectJob's work.
func (h *Handler) FinishDisconnect(ctx context.Context, job FinishDisconnectJob) error {
	l, err := h.connections.Load(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	if !l.State.Disconnecting() {
		return nil
	}
	ctx = commands.WithMetadata(ctx, l.State.UserID(), commands.ActorSystem, "disconnect", commands.RequestContext{})
	return h.finishDisconnect(ctx, job.ConnectionID)
}

// finishDisconnect revokes at the provider (when it can), then records the
// outcome with the credentials destroyed and the alias freed.
func (h *Handler) finishDisconnect(ctx context.Context, id uuid.UUID) error {
	l, err := h.connections.Load(ctx, h.pool, id)
	if err != nil {
		return err
	}
	revoked, failure := h.revoke(ctx, l.State)
	_, err = h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		events, err := c.Disconnected(revoked, failure, h.clock.Now())
		if errors.Is(err, connection.ErrDisconnected) || errors.Is(err, connection.ErrNoDisconnectionPending) {
			return decision{}, nil // finished by another caller meanwhile
		}
		if err != nil {
			return decision{}, err
		}
		if err := destroyCredentials(ctx, tx, id); err != nil {
			return decision{}, err
		}
		// An authorisation still in flight (a re-authorisation the user
		// started) must not exchange its code for a grant nobody keeps.
		if err := deleteStates(ctx, tx, id); err != nil {
			return decision{}, err
		}
		if err := releaseAlias(ctx, tx, id); err != nil {
			return decision{}, err
		}
		return decision{Events: events}, nil
	})
	return err
}

// revoke asks c's provider to end its grant, when the provider can and
// credentials are stored; it reports whether it did, or why not.
func (h *Handler) revoke(ctx context.Context, c *connection.Connection) (bool, connection.FailureReason) {
	prov, err := h.providers.Get(c.ProviderSlug())
	if err != nil {
		return false, ""
	}
	rv, ok := prov.(Revoker)
	if !ok {
		return false, ""
	}
	row, err := readCredentials(ctx, h.pool, c.ID())
	if errors.Is(err, pgx.ErrNoRows) {
		return false, ""
	}
	if err != nil {
		h.log.ErrorContext(ctx, "disconnect: read credentials", "connection_id", c.ID(), "error", err)
		return false, connection.FailedProviderUnavailable
	}
	creds, err := h.open(c.ID(), row)
	if err != nil {
		h.log.ErrorContext(ctx, "disconnect: open credentials", "connection_id", c.ID(), "error", err)
		return false, connection.FailedProviderError
	}
	if err := rv.Revoke(ctx, creds); err != nil {
		h.log.InfoContext(ctx, "disconnect: provider did not revoke", "connection_id", c.ID(), "error", err)
		return false, failureOf(err, connection.FailedProviderError)
	}
	return true, ""
}
