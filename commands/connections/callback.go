package connections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Callback completes an authorisation from the provider's redirect; see
// Service. The state is spent in its own short transaction before the
// provider is called, so a replay fails even while the first callback
// still exchanges its code, and no transaction is open during the
// exchange. Every failure that names a pending connection is recorded on
// it as ProviderConnectionFailed; nothing is stored for it.
func (h *Handler) Callback(ctx context.Context, providerSlug string, query url.Values, rc commands.RequestContext) CallbackOutcome {
	state := query.Get("state")
	if state == "" {
		return CallbackOutcome{BadRequest: true, Reason: connection.FailedInvalidState}
	}
	now := h.clock.Now()
	row, err := spendState(ctx, h.pool, stateDigest(state), now)
	if errors.Is(err, errStateUnknown) {
		h.log.InfoContext(ctx, "oauth callback with an unknown state", "provider", providerSlug, "trace_id", rc.TraceID)
		return CallbackOutcome{Reason: connection.FailedInvalidState}
	}
	if err != nil {
		h.log.ErrorContext(ctx, "oauth callback: spend state", "trace_id", rc.TraceID, "error", err)
		return CallbackOutcome{Reason: connection.FailedProviderUnavailable}
	}
	out := CallbackOutcome{ConnectionID: row.connectionID}
	ctx = commands.WithMetadata(ctx, row.userID, commands.ActorUser(row.userID), "oauth callback", rc)
	fail := func(reason connection.FailureReason) CallbackOutcome {
		h.fail(ctx, row.connectionID, reason, rc)
		out.Reason = reason
		return out
	}
	prov, err := h.providers.Get(row.providerSlug)
	switch {
	case row.used && h.inFlight(ctx, row):
		// A replay of the authorisation still in flight (a reloaded page,
		// a callback delivered twice) tells the browser so and nothing
		// more: the first callback may still be exchanging the code, and
		// must not see its connection fail under it.
		out.Reason = connection.FailedInvalidState
		return out
	case row.used:
		// A spent state of an earlier authorisation fails the one pending.
		return fail(connection.FailedInvalidState)
	case row.providerSlug != providerSlug || err != nil:
		// A state of one provider's flow brought to another's callback.
		return fail(connection.FailedInvalidState)
	case !now.Before(row.expiresAt):
		return fail(connection.FailedExpired)
	case query.Get("error") == "access_denied":
		return fail(connection.FailedAccessDenied)
	case query.Get("error") != "" || query.Get("code") == "":
		return fail(connection.FailedProviderError)
	}
	out.ProviderName = prov.Info().Name
	verifier := ""
	if row.verifierBlob != nil {
		v, err := h.vault.Open(row.connectionID, row.verifierBlob)
		if err != nil {
			h.log.ErrorContext(ctx, "oauth callback: open pkce verifier", "connection_id", row.connectionID, "trace_id", rc.TraceID, "error", err)
			return fail(connection.FailedInvalidState)
		}
		verifier = string(v)
	}
	creds, err := prov.Exchange(ctx, query.Get("code"), verifier)
	if err != nil {
		h.log.InfoContext(ctx, "oauth code exchange failed", "connection_id", row.connectionID, "trace_id", rc.TraceID, "error", err)
		return fail(failureOf(err, connection.FailedProviderError))
	}
	at := h.clock.Now()
	sealed, err := h.seal(row.connectionID, creds)
	if err != nil {
		h.log.ErrorContext(ctx, "oauth callback: seal credentials", "connection_id", row.connectionID, "trace_id", rc.TraceID, "error", err)
		return fail(connection.FailedProviderError)
	}
	var alias string
	_, err = h.connections.Update(ctx, row.connectionID, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		events, err := c.Complete(sealed.describe(), at)
		if err != nil {
			return decision{}, err
		}
		if err := storeCredentials(ctx, tx, row.connectionID, sealed, at); err != nil {
			return decision{}, err
		}
		if err := h.scheduleCredentialJobs(ctx, tx, row.connectionID, sealed, at); err != nil {
			return decision{}, err
		}
		alias = c.Alias()
		return decision{Events: events}, nil
	})
	if errors.Is(err, connection.ErrAuthorizationExpired) {
		return fail(connection.FailedExpired)
	}
	if err != nil {
		// Already failed (a replay won the race) or the database failed:
		// the credentials were not stored, and the page says so.
		h.log.ErrorContext(ctx, "oauth callback: store connection", "connection_id", row.connectionID, "trace_id", rc.TraceID, "error", err)
		out.Reason = connection.FailedProviderError
		return out
	}
	out.OK, out.Alias = true, alias
	return out
}

// inFlight reports whether the authorisation of a spent state is the one
// its connection still waits for: the state's deadline is the pending one.
func (h *Handler) inFlight(ctx context.Context, row stateRow) bool {
	l, err := h.connections.Load(ctx, h.pool, row.connectionID)
	return err == nil && l.State.AuthorizationPending().Equal(row.expiresAt)
}

// fail records that connection id's authorisation failed, releasing the
// alias of a connection that thereby failed for good. A connection with no
// authorisation pending (a replay after success) records nothing.
func (h *Handler) fail(ctx context.Context, id uuid.UUID, reason connection.FailureReason, rc commands.RequestContext) {
	at := h.clock.Now()
	_, err := h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		events, err := c.Fail(reason, at)
		if errors.Is(err, connection.ErrNoAuthorizationPending) {
			return decision{}, nil
		}
		if err != nil {
			return decision{}, err
		}
		c.Apply(events...)
		if c.Status() == connection.StatusFailed {
			if err := releaseAlias(ctx, tx, id); err != nil {
				return decision{}, err
			}
		}
		return decision{Events: events}, nil
	})
	if err != nil {
		h.log.ErrorContext(ctx, "record failed authorization", "connection_id", id, "reason", reason, "trace_id", rc.TraceID, "error", err)
	}
}

// ExpireAuthorization is the ExpiryJob's work: an authorisation still
// pending at its deadline fails as expired.
func (h *Handler) ExpireAuthorization(ctx context.Context, job ExpiryJob) error {
	l, err := h.connections.Load(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	c := l.State
	if pending := c.AuthorizationPending(); pending.IsZero() || !pending.Equal(job.Deadline) {
		return nil // completed, failed, or superseded by a newer authorisation
	}
	ctx = commands.WithMetadata(ctx, c.UserID(), commands.ActorSystem, "expire authorization", commands.RequestContext{})
	h.fail(ctx, job.ConnectionID, connection.FailedExpired, commands.RequestContext{})
	return nil
}

// seal encrypts creds for connection id.
func (h *Handler) seal(id uuid.UUID, creds commands.Credentials) (vaultRow, error) {
	plain, err := json.Marshal(creds)
	if err != nil {
		return vaultRow{}, err
	}
	blob, keyID, err := h.vault.Seal(id, plain)
	if err != nil {
		return vaultRow{}, err
	}
	// Expiries at PostgreSQL's precision, so that what this refresh
	// answers, what its events say and what another caller reads back from
	// the row are the same instants (adapters may stamp nanoseconds).
	r := vaultRow{keyID: keyID, blob: blob, fingerprint: commands.Fingerprint(creds),
		accessExpiresAt: creds.AccessExpiresAt.UTC().Truncate(time.Microsecond)}
	if !creds.RefreshExpiresAt.IsZero() {
		t := creds.RefreshExpiresAt.UTC().Truncate(time.Microsecond)
		r.refreshExpiresAt = &t
	}
	return r, nil
}

// describe is what the events say of the stored credentials.
func (r vaultRow) describe() connection.Credentials {
	c := connection.Credentials{KeyID: r.keyID, Fingerprint: r.fingerprint, AccessExpiresAt: r.accessExpiresAt.Truncate(time.Microsecond)}
	if r.refreshExpiresAt != nil {
		c.RefreshExpiresAt = r.refreshExpiresAt.Truncate(time.Microsecond)
	}
	return c
}

// open decrypts a connection's stored credentials.
func (h *Handler) open(id uuid.UUID, r vaultRow) (commands.Credentials, error) {
	plain, err := h.vault.Open(id, r.blob)
	if err != nil {
		return commands.Credentials{}, fmt.Errorf("open credentials of connection %s: %w", id, err)
	}
	var c commands.Credentials
	if err := json.Unmarshal(plain, &c); err != nil {
		return commands.Credentials{}, fmt.Errorf("decode credentials of connection %s: %w", id, err)
	}
	return c, nil
}

// scheduleCredentialJobs enqueues, with new credentials, the refresh ahead
// of the access token's expiry and the reminder before the refresh token's
// end of life.
func (h *Handler) scheduleCredentialJobs(ctx context.Context, tx *eventstore.Tx, id uuid.UUID, r vaultRow, issued time.Time) error {
	if err := h.jobs.EnqueueTx(ctx, tx, RefreshJob{ConnectionID: id},
		commands.JobOptions{RunAt: refreshTime(issued, r.accessExpiresAt), Unique: true}); err != nil {
		return fmt.Errorf("enqueue refresh: %w", err)
	}
	if r.refreshExpiresAt != nil {
		remindAt := r.refreshExpiresAt.Add(-reminderAhead)
		if remindAt.After(issued) {
			if err := h.jobs.EnqueueTx(ctx, tx, ReminderJob{ConnectionID: id, RefreshExpiresAt: *r.refreshExpiresAt},
				commands.JobOptions{RunAt: remindAt, Unique: true}); err != nil {
				return fmt.Errorf("enqueue reauthorization reminder: %w", err)
			}
		}
	}
	return nil
}

// failureOf names a provider error in the aggregate's vocabulary;
// authentication failures get auth.
func failureOf(err error, auth connection.FailureReason) connection.FailureReason {
	switch {
	case errors.Is(err, commands.ErrProviderAuth):
		return auth
	case errors.Is(err, commands.ErrProviderRateLimited):
		return connection.FailedRateLimited
	case errors.Is(err, commands.ErrProviderInvalidResponse):
		return connection.FailedInvalidResponse
	}
	return connection.FailedProviderUnavailable
}
