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

// RefreshNow refreshes a connection's tokens at once; see Service. When
// another refresh of the connection is running (a job, another instance)
// it waits for that one instead of calling the provider a second time.
func (h *Handler) RefreshNow(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) (Expiry, error) {
	c, err := h.owned(ctx, p, id)
	if err != nil {
		return Expiry{}, err
	}
	// A refresh that completes after this request arrived answers it.
	stored, err := readCredentials(ctx, h.pool, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Expiry{}, h.noCredentials(ctx, id)
	}
	if err != nil {
		return Expiry{}, err
	}
	ctx = commands.WithMetadata(ctx, c.UserID(), commands.ActorUser(p.UserID), "refresh tokens", rc)
	r, err := h.refresh(ctx, c, connection.RefreshManual, stored.generation)
	if errors.Is(err, errRefreshRunning) {
		r, err = h.awaitRefresh(ctx, id, r.generation)
	}
	if err != nil {
		return Expiry{}, err
	}
	return expiryOf(r), nil
}

// RunRefresh is the RefreshJob's work. The job lives as long as the
// connection is active: after each refresh it snoozes until the next one
// is due, so one job per connection keeps its tokens fresh. An early run
// (credentials refreshed by someone else meanwhile) snoozes until due.
func (h *Handler) RunRefresh(ctx context.Context, job RefreshJob) error {
	// The stored generation is read before the state, so that a refresh
	// committed in between shows in the state (not due yet) or moves the
	// generation (refresh sees it and calls nobody): never both missed.
	row, rowErr := readCredentials(ctx, h.pool, job.ConnectionID)
	if rowErr != nil && !errors.Is(rowErr, pgx.ErrNoRows) {
		return rowErr
	}
	l, err := h.connections.Load(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	c := l.State
	if c.Status() != connection.StatusActive || c.Disconnecting() {
		return fmt.Errorf("refresh connection %s (%s): %w", c.ID(), c.Status(), commands.ErrJobCancelled)
	}
	if rowErr != nil {
		return fmt.Errorf("refresh connection %s: no credentials stored", c.ID())
	}
	now := h.clock.Now()
	if due := refreshTime(c.LastCredentialsAt(), c.Credentials().AccessExpiresAt); now.Before(due) {
		return &commands.JobSnoozeError{Delay: due.Sub(now)}
	}
	ctx = commands.WithMetadata(ctx, c.UserID(), commands.ActorSystem, "refresh tokens", commands.RequestContext{})
	r, err := h.refresh(ctx, c, connection.RefreshScheduled, row.generation)
	switch {
	case errors.Is(err, errRefreshRunning):
		return &commands.JobSnoozeError{Delay: time.Minute} // look again once the other one is done
	case errors.Is(err, ErrReauthenticationRequired), errors.Is(err, connection.ErrDisconnected):
		return fmt.Errorf("refresh connection %s: %w: %w", c.ID(), err, commands.ErrJobCancelled)
	case err != nil:
		var snooze *commands.JobSnoozeError
		if errors.As(err, &snooze) {
			return snooze
		}
		return err // retried with backoff
	}
	next := refreshTime(r.updatedAt, r.accessExpiresAt)
	return &commands.JobSnoozeError{Delay: max(next.Sub(h.clock.Now()), time.Second)}
}

// errRefreshRunning means another refresh of the connection holds the lease.
var errRefreshRunning = errors.New("another refresh of the connection is running")

// refresh runs one refresh of active connection c: claim the lease, book
// a slot of the provider's shared rate, record the attempt, call the
// provider with no transaction open, then record the outcome and store the
// new credentials in one short unit of work. It returns the stored row.
//
// since is the generation of the credentials the caller found wanting (a
// refused access token), zero for none: when the stored credentials moved
// on since, another caller refreshed them, and they are returned without a
// call.
func (h *Handler) refresh(ctx context.Context, c *connection.Connection, trigger connection.RefreshTrigger, since int64) (vaultRow, error) {
	id := c.ID()
	now := h.clock.Now()
	if c.Status() != connection.StatusActive {
		return vaultRow{}, fmt.Errorf("refresh: %w", statusError(c.Status()))
	}
	if c.Disconnecting() {
		return vaultRow{}, fmt.Errorf("refresh: %w", connection.ErrDisconnected)
	}
	if end := c.Credentials().RefreshExpiresAt; !end.IsZero() && !now.Before(end) {
		// The refresh token reached its end of life: no call can succeed.
		return vaultRow{}, h.requireReauthentication(ctx, c, connection.FailedRefreshTokenExpired, false)
	}
	prov, err := h.providers.Get(c.ProviderSlug())
	if err != nil {
		return vaultRow{}, err
	}
	var old vaultRow
	for attempt := 1; ; attempt++ {
		row, ok, err := takeRefreshLease(ctx, h.pool, id, now, now.Add(refreshLease))
		if errors.Is(err, pgx.ErrNoRows) {
			return vaultRow{}, h.noCredentials(ctx, id)
		}
		if err != nil {
			return vaultRow{}, err
		}
		if ok {
			old = row
			break
		}
		current, err := readCredentials(ctx, h.pool, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return vaultRow{}, h.noCredentials(ctx, id)
		}
		if err != nil {
			return vaultRow{}, err
		}
		if since != 0 && current.generation != since {
			return current, nil
		}
		// A lease in force was taken on the generation read with it, so
		// the caller waits for that generation to move. A lease gone
		// already means its refresh ended between the two statements:
		// look again rather than wait on a generation nobody refreshes.
		if (current.refreshingUntil != nil && current.refreshingUntil.After(now)) || attempt == 3 {
			return current, errRefreshRunning
		}
	}
	release := func() {
		if err := releaseLease(context.WithoutCancel(ctx), h.pool, id, old.generation); err != nil {
			h.log.ErrorContext(ctx, "release refresh lease", "connection_id", id, "error", err)
		}
	}
	if since != 0 && old.generation != since {
		release()
		return old, nil // refreshed by another caller since
	}
	// The slot is booked before the attempt is recorded: a refresh that
	// finds no slot soon enough sends nothing and so records nothing.
	slot, err := h.reserve(ctx, c.ProviderSlug())
	if err != nil {
		release()
		return vaultRow{}, err
	}
	// The attempt writes nothing but its event: one statement, no
	// transaction left open around it (the projectors' horizon).
	if _, err := h.connections.UpdateAlone(ctx, id, func(c *connection.Connection) (decision, error) {
		return eventstore.Decide(c.AttemptRefresh(trigger, h.clock.Now()))
	}); err != nil {
		release()
		return vaultRow{}, err
	}
	creds, err := h.open(id, old)
	if err != nil {
		release()
		return vaultRow{}, err
	}
	var next commands.Credentials
	// Until the slot, not for its wait: the attempt's write is part of it.
	if err = sleep(ctx, time.Until(slot)); err == nil {
		next, err = prov.Refresh(ctx, creds)
	}
	if err != nil {
		release()
		if ctx.Err() != nil {
			return vaultRow{}, err
		}
		return vaultRow{}, h.refreshFailed(ctx, c, err)
	}
	at := h.clock.Now()
	r, err := h.seal(id, next)
	if err != nil {
		release()
		return vaultRow{}, err
	}
	r.updatedAt = at
	_, err = h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		events, err := c.RefreshSucceeded(r.describe(), at)
		if err != nil {
			return decision{}, err
		}
		stored, err := replaceCredentials(ctx, tx, id, old.generation, r, at)
		if err != nil {
			return decision{}, err
		}
		if !stored {
			// Re-authorised or disconnected while the provider answered:
			// those credentials win, these are dropped unrecorded.
			return decision{}, errCredentialsMoved
		}
		if end := r.refreshExpiresAt; end != nil && !end.Equal(timeOrZero(old.refreshExpiresAt)) {
			if err := h.scheduleReminder(ctx, tx, id, *end, at); err != nil {
				return decision{}, err
			}
		}
		return decision{Events: events}, nil
	})
	if errors.Is(err, errCredentialsMoved) {
		current, rerr := readCredentials(ctx, h.pool, id)
		if errors.Is(rerr, pgx.ErrNoRows) {
			return vaultRow{}, h.noCredentials(ctx, id)
		}
		if rerr != nil {
			return vaultRow{}, rerr
		}
		return current, nil
	}
	if err != nil {
		release()
		return vaultRow{}, err
	}
	r.generation = old.generation + 1
	return r, nil
}

// noCredentials explains a connection without stored credentials: it was
// disconnected (or otherwise left active) meanwhile, or, when it is still
// active, something removed its row.
func (h *Handler) noCredentials(ctx context.Context, id uuid.UUID) error {
	l, err := h.connections.Load(ctx, h.pool, id)
	if err != nil {
		return err
	}
	if s := l.State.Status(); s != connection.StatusActive {
		return fmt.Errorf("connection %s: %w", id, statusError(s))
	}
	return fmt.Errorf("connection %s: no credentials stored", id)
}

// errCredentialsMoved means the credentials a refresh started from were
// replaced or destroyed before it could store its own.
var errCredentialsMoved = errors.New("credentials changed during the refresh")

// refreshFailed records a refresh the provider refused or failed and
// returns the use case's error: a refusal needs the user (needs_reauth and
// a mail), a rate limit snoozes, anything else is retried.
func (h *Handler) refreshFailed(ctx context.Context, c *connection.Connection, err error) error {
	h.log.InfoContext(ctx, "token refresh failed", "connection_id", c.ID(), "error", err)
	if errors.Is(err, commands.ErrProviderAuth) {
		return h.requireReauthentication(ctx, c, connection.FailedAuthentication, true)
	}
	reason := failureOf(err, connection.FailedAuthentication)
	h.recordRefreshFailure(ctx, c.ID(), reason, true)
	var rl *commands.RateLimitedError
	if errors.As(err, &rl) {
		return fmt.Errorf("%w: %w", ErrProviderBusy, &commands.JobSnoozeError{Delay: max(rl.RetryAfter, time.Second)})
	}
	return fmt.Errorf("%w: %w", ErrProviderBusy, err)
}

// recordRefreshFailure records a transient refresh failure; a failure to
// record it is only logged, the caller's error says enough.
func (h *Handler) recordRefreshFailure(ctx context.Context, id uuid.UUID, reason connection.FailureReason, transient bool) {
	_, err := h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		events, err := c.RefreshFailed(reason, transient, h.clock.Now())
		if errors.Is(err, connection.ErrNotActive) || errors.Is(err, connection.ErrDisconnected) {
			return decision{}, nil
		}
		return decision{Events: events}, err
	})
	if err != nil {
		h.log.ErrorContext(ctx, "record refresh failure", "connection_id", id, "error", err)
	}
}

// requireReauthentication moves c to needs_reauth, records why and mails
// the owner, in one unit of work; it returns ErrReauthenticationRequired.
// refused says that a refresh was refused (recorded as its failed outcome);
// otherwise the credentials were found wanting elsewhere (a dead refresh
// token, a data call refused right after a successful refresh). A
// connection that already needs it records nothing and mails nobody again.
func (h *Handler) requireReauthentication(ctx context.Context, c *connection.Connection, reason connection.FailureReason, refused bool) error {
	prov, _ := h.providers.Get(c.ProviderSlug())
	name := c.ProviderSlug()
	if prov != nil {
		name = prov.Info().Name
	}
	_, err := h.connections.Update(ctx, c.ID(), func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		now := h.clock.Now()
		var events []connection.Event
		var err error
		switch {
		case c.Status() == connection.StatusNeedsReauth:
			return decision{}, nil
		case refused:
			events, err = c.RefreshFailed(reason, false, now)
		default:
			events, err = c.RequireReauthentication(reason, now)
		}
		if err != nil || len(events) == 0 {
			return decision{}, err
		}
		if err := h.jobs.EnqueueTx(ctx, tx, commands.UserMail{UserID: c.UserID(), Template: commands.MailReauthorizationRequired,
			Params: map[string]string{"alias": c.Alias(), "provider": name}}, commands.JobOptions{}); err != nil {
			return decision{}, fmt.Errorf("enqueue reauthorization mail: %w", err)
		}
		return decision{Events: events}, nil
	})
	if err != nil {
		return err
	}
	return ErrReauthenticationRequired
}

// awaitRefresh waits for the refresh another caller is running on the
// credentials of generation to store new ones, and returns them. When that
// refresh ends without storing any (it failed), the connection's state
// says why: needs_reauth, disconnected, or else ErrProviderBusy.
func (h *Handler) awaitRefresh(ctx context.Context, id uuid.UUID, generation int64) (vaultRow, error) {
	h.log.DebugContext(ctx, "waiting for another refresh of the connection", "connection_id", id)
	ctx, cancel := context.WithTimeout(ctx, refreshLease)
	defer cancel()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		r, err := readCredentials(ctx, h.pool, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return vaultRow{}, h.noCredentials(ctx, id)
		}
		if err != nil {
			return vaultRow{}, err
		}
		if r.generation != generation {
			return r, nil
		}
		if r.refreshingUntil == nil || !r.refreshingUntil.After(h.clock.Now()) {
			// The lease ended without new credentials: that refresh failed.
			l, err := h.connections.Load(ctx, h.pool, id)
			if err != nil {
				return vaultRow{}, err
			}
			if s := l.State.Status(); s != connection.StatusActive {
				return vaultRow{}, fmt.Errorf("connection %s: %w", id, statusError(s))
			}
			return vaultRow{}, fmt.Errorf("%w: the other refresh of connection %s failed", ErrProviderBusy, id)
		}
		if err := sleep(ctx, wait); err != nil {
			return vaultRow{}, fmt.Errorf("%w: %w", ErrProviderBusy, err)
		}
	}
}

// RemindReauthorization is the ReminderJob's work: mail the owner of a
// connection whose refresh token ends within a day, unless the connection
// was authorised again (a later end of life) or is no longer active.
func (h *Handler) RemindReauthorization(ctx context.Context, job ReminderJob) error {
	l, err := h.connections.Load(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	c := l.State
	if c.Status() != connection.StatusActive || !c.Credentials().RefreshExpiresAt.Equal(job.RefreshExpiresAt) {
		return nil
	}
	name := c.ProviderSlug()
	if prov, err := h.providers.Get(c.ProviderSlug()); err == nil {
		name = prov.Info().Name
	}
	return pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		return h.jobs.EnqueueTx(ctx, tx, commands.UserMail{UserID: c.UserID(), Template: commands.MailReauthorizationReminder,
			Params: map[string]string{"alias": c.Alias(), "provider": name, "deadline": job.RefreshExpiresAt.UTC().Format(time.RFC3339)}},
			commands.JobOptions{})
	})
}

// scheduleReminder enqueues the reminder a day before a refresh token's end of life.
func (h *Handler) scheduleReminder(ctx context.Context, tx *eventstore.Tx, id uuid.UUID, end, now time.Time) error {
	remindAt := end.Add(-reminderAhead)
	if !remindAt.After(now) {
		return nil
	}
	if err := h.jobs.EnqueueTx(ctx, tx, ReminderJob{ConnectionID: id, RefreshExpiresAt: end},
		commands.JobOptions{RunAt: remindAt, Unique: true}); err != nil {
		return fmt.Errorf("enqueue reauthorization reminder: %w", err)
	}
	return nil
}

// statusError is the error of a command that needs an active connection.
func statusError(s connection.Status) error {
	switch s {
	case connection.StatusNeedsReauth:
		return ErrReauthenticationRequired
	case connection.StatusDisconnected:
		return connection.ErrDisconnected
	case connection.StatusFailed:
		return connection.ErrFailed
	case connection.StatusNone:
		return ErrNotFound
	}
	return connection.ErrNotActive
}

func expiryOf(r vaultRow) Expiry {
	return Expiry{AccessExpiresAt: r.accessExpiresAt, ReauthorizeBy: r.refreshExpiresAt}
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
