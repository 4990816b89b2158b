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
)

// Call runs fn, a data call, against connection id's provider with its
// current credentials: only for an active connection (a disconnected one
// has none and the provider is never called), paced by the provider's
// shared rate, with no transaction open. When fn reports
// commands.ErrProviderAuth, the credentials are refreshed once and fn runs
// again; a second refusal needs the user (ErrReauthenticationRequired).
func (h *Handler) Call(ctx context.Context, id uuid.UUID, fn func(ctx context.Context, p commands.Provider, c commands.Credentials) error) error {
	l, err := h.connections.Load(ctx, h.pool, id)
	if err != nil {
		return err
	}
	c := l.State
	if c.Status() != connection.StatusActive {
		return fmt.Errorf("call connection %s: %w", id, statusError(c.Status()))
	}
	if c.Disconnecting() {
		// The user asked to disconnect; its outcome is only not recorded yet.
		return fmt.Errorf("call connection %s: %w", id, connection.ErrDisconnected)
	}
	prov, err := h.providers.Get(c.ProviderSlug())
	if err != nil {
		return err
	}
	row, err := readCredentials(ctx, h.pool, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("call connection %s: no credentials stored", id)
	}
	if err != nil {
		return err
	}
	creds, err := h.open(id, row)
	if err != nil {
		return err
	}
	err = h.paced(ctx, c.ProviderSlug(), func() error { return fn(ctx, prov, creds) })
	if !errors.Is(err, commands.ErrProviderAuth) {
		return err
	}
	// The access token was refused: refresh once (or wait for the refresh
	// someone else runs) and try again with what is stored then.
	ctx = commands.WithMetadata(ctx, c.UserID(), commands.ActorSystem, "refresh tokens", commands.RequestContext{})
	row, err = h.refresh(ctx, c, connection.RefreshOnUnauthorized, row.generation)
	if errors.Is(err, errRefreshRunning) {
		row, err = h.awaitRefresh(ctx, id, row.generation)
	}
	if err != nil {
		return err
	}
	if creds, err = h.open(id, row); err != nil {
		return err
	}
	err = h.paced(ctx, c.ProviderSlug(), func() error { return fn(ctx, prov, creds) })
	if errors.Is(err, commands.ErrProviderAuth) {
		// Refused with credentials refreshed a moment ago: the grant itself is gone.
		return h.requireReauthentication(ctx, c, connection.FailedAuthentication, false)
	}
	return err
}

// paced runs call in the next slot of provider's shared rate, or returns
// a snooze when that slot is far away.
func (h *Handler) paced(ctx context.Context, provider string, call func() error) error {
	slot, err := h.reserve(ctx, provider)
	if err != nil {
		return err
	}
	if err := sleep(ctx, time.Until(slot)); err != nil {
		return err
	}
	return call()
}

// reserve books the next slot of provider's shared rate and returns when
// it is, by the monotonic clock (the pacer's wait counted from when the
// booking returned, so a call made at the slot is never early, whatever
// the caller does before it); a slot further than maxPaceWait books
// nothing and is ErrProviderBusy with a snooze until then.
func (h *Handler) reserve(ctx context.Context, provider string) (time.Time, error) {
	wait, reserved, err := h.pacer.Reserve(ctx, provider, maxPaceWait)
	if err != nil {
		return time.Time{}, err
	}
	if !reserved {
		return time.Time{}, fmt.Errorf("%w: %w", ErrProviderBusy, &commands.JobSnoozeError{Delay: max(wait, time.Second)})
	}
	return time.Now().Add(wait), nil
}
