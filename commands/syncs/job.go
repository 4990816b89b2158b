package syncs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/eventstore"
)

// run is one execution of a sync job: the sync it works on and what it
// found so far.
type run struct {
	h                            *Handler
	connectionID, userID, syncID uuid.UUID
	// own says the job was enqueued for this sync alone: once the sync is
	// over, so is the job (a later sync has its own).
	own bool
	// from and to are the sync's window (YYYY-MM-DD, inclusive).
	from, to string
	// mu guards head, units and counts, which concurrent units of work
	// of one account's batches share.
	mu sync.Mutex
	// head is a version of the connection's stream known to hold the sync
	// in progress; every unit of work checks the stream has not moved, or
	// that the sync is still the one in progress.
	head  int64
	units int

	accounts      int
	counts        connection.SyncCounts
	accountErrors []connection.AccountError
	latestPosted  string
	// retry is the first account failure a later attempt may not meet.
	retry error
}

// errSuperseded means the sync this job ran is no longer the connection's
// sync in progress: it finished, or a later one took its place.
var errSuperseded = errors.New("the sync is no longer in progress")

// RunSync is the Job's work: it runs the connection's sync in progress.
// It lists the accounts, then for each fetches the transactions of the
// window and the holdings (no transaction is open during any provider
// call) and writes them in short units of work: the account, the
// transactions in batches, the pending ones that disappeared. One account
// failing keeps the others and is reported in the sync's account errors;
// a refusal of the credentials fails the sync (the connection then needs
// the user); a rate limit snoozes the job; anything else is retried with
// backoff, and the sync fails when the job gives up. Running it again
// after an interruption converges to what an uninterrupted run stores.
func (h *Handler) RunSync(ctx context.Context, job Job) error {
	l, err := h.connections.Load(ctx, h.pool, job.ConnectionID)
	if err != nil {
		return err
	}
	c := l.State
	syncID, _ := c.Syncing()
	if syncID == uuid.Nil || (job.SyncID != uuid.Nil && job.SyncID != syncID) {
		return nil // completed, failed or replaced meanwhile: nothing left to run
	}
	trigger, from, to := c.SyncTriggered()
	actor := commands.ActorSystem
	if trigger == connection.SyncManual {
		actor = commands.ActorUser(c.UserID())
	}
	ctx = commands.WithMetadata(ctx, c.UserID(), actor, command, commands.RequestContext{})
	r := &run{h: h, connectionID: job.ConnectionID, userID: c.UserID(), syncID: syncID, own: job.SyncID != uuid.Nil,
		from: from, to: to, head: l.Version}
	if c.Status() != connection.StatusActive {
		return r.outcome(ctx, statusError(c.Status()))
	}
	if err := r.pickUp(ctx); err != nil {
		return r.outcome(ctx, err)
	}
	return r.outcome(ctx, r.sync(ctx))
}

// outcome records how the run ended and tells the job runner what next.
func (r *run) outcome(ctx context.Context, err error) error {
	var (
		snooze *commands.JobSnoozeError
		limit  *commands.RateLimitedError
	)
	switch {
	case err == nil:
		return r.complete(ctx)
	case errors.Is(err, errSuperseded):
		if r.own {
			return nil
		}
		// Look again at once: a later sync may be waiting for this job.
		return &commands.JobSnoozeError{Delay: time.Second}
	case errors.Is(err, connections.ErrReauthenticationRequired):
		return r.fail(ctx, connection.FailedAuthentication, err)
	case errors.Is(err, connection.ErrDisconnected):
		return r.fail(ctx, connection.FailedDisconnected, err)
	case errors.Is(err, connection.ErrNotActive), errors.Is(err, connection.ErrFailed), errors.Is(err, connections.ErrNotFound):
		return r.fail(ctx, connection.FailedNotActive, err)
	case errors.As(err, &snooze):
		return snooze
	case errors.As(err, &limit):
		return &commands.JobSnoozeError{Delay: max(limit.RetryAfter, time.Second)}
	case ctx.Err() != nil:
		return err // cancelled or timed out: retried, elsewhere if need be
	case commands.JobAttemptFrom(ctx).Last():
		r.h.log.WarnContext(ctx, "sync failed", "connection_id", r.connectionID, "sync_id", r.syncID, "error", err)
		if ferr := r.fail(ctx, failureOf(err), err); ferr != nil {
			return ferr
		}
		return err
	}
	r.h.log.InfoContext(ctx, "sync attempt failed, retrying", "connection_id", r.connectionID, "sync_id", r.syncID, "error", err)
	return err
}

// statusError is the error of a sync of a connection that is not active.
func statusError(s connection.Status) error {
	switch s {
	case connection.StatusDisconnected:
		return connection.ErrDisconnected
	case connection.StatusFailed:
		return connection.ErrFailed
	case connection.StatusNone:
		return connections.ErrNotFound
	case connection.StatusNeedsReauth:
		return connections.ErrReauthenticationRequired
	}
	return connection.ErrNotActive
}

// failureOf names a provider failure in the aggregate's vocabulary.
func failureOf(err error) connection.FailureReason {
	switch {
	case errors.Is(err, commands.ErrProviderAuth):
		return connection.FailedAuthentication
	case errors.Is(err, commands.ErrProviderRateLimited):
		return connection.FailedRateLimited
	case errors.Is(err, commands.ErrProviderInvalidResponse):
		return connection.FailedInvalidResponse
	case errors.Is(err, commands.ErrProviderNotFound):
		return connection.FailedProviderError
	}
	return connection.FailedProviderUnavailable
}

// pickUp records that the sync runs (once, however often the job is tried).
func (r *run) pickUp(ctx context.Context) error {
	res, err := r.h.connections.Update(ctx, r.connectionID, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (eventstore.Decision[connection.Event], error) {
		if c.Status() != connection.StatusActive {
			return eventstore.Decision[connection.Event]{}, statusError(c.Status())
		}
		return eventstore.Decide(c.PickUpSync(r.syncID, r.h.clock.Now()))
	})
	if errors.Is(err, connection.ErrNoSuchSync) {
		return errSuperseded
	}
	if err != nil {
		return err
	}
	r.head = res.Version
	return nil
}

// complete records the end of the sync with what it did.
func (r *run) complete(ctx context.Context) error {
	result := connection.SyncResult{Accounts: r.accounts, Counts: r.counts, AccountErrors: r.accountErrors, LatestPosted: r.latestPosted}
	_, err := r.h.connections.Update(ctx, r.connectionID, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (eventstore.Decision[connection.Event], error) {
		return eventstore.Decide(c.CompleteSync(r.syncID, result, r.h.clock.Now()))
	})
	if errors.Is(err, connection.ErrNoSuchSync) {
		if r.own {
			return nil
		}
		return &commands.JobSnoozeError{Delay: time.Second}
	}
	return err
}

// fail records that the sync could not run and ends the job: retrying
// cannot help (the connection needs the user or is gone), or it gave up.
func (r *run) fail(ctx context.Context, reason connection.FailureReason, cause error) error {
	_, err := r.h.connections.Update(ctx, r.connectionID, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (eventstore.Decision[connection.Event], error) {
		events, err := c.FailSync(r.syncID, reason, r.h.clock.Now())
		if errors.Is(err, connection.ErrNoSuchSync) {
			return eventstore.Decision[connection.Event]{}, nil
		}
		return eventstore.Decision[connection.Event]{Events: events}, err
	})
	if err != nil {
		return err
	}
	r.h.log.InfoContext(ctx, "sync failed", "connection_id", r.connectionID, "sync_id", r.syncID, "reason", reason, "error", cause)
	return nil
}

// unit runs fn in a unit of work of the sync's writes, after checking
// that the sync is still in progress on an active connection, and counts
// it.
func (r *run) unit(ctx context.Context, fn func(ctx context.Context, tx *eventstore.Tx) error) error {
	err := r.h.store.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		if err := r.guard(ctx, tx); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.units++
	if r.h.afterUnit != nil {
		return r.h.afterUnit(r.units)
	}
	return nil
}

// guard refuses a unit of work once the sync is no longer the one in
// progress or the connection is no longer active: a disconnection waits
// for its sync to end before it closes the accounts, and must not see one
// reopened after. Reading the stream's head is one indexed lookup; the
// stream is folded again only when it moved.
func (r *run) guard(ctx context.Context, tx *eventstore.Tx) error {
	head, err := connectionHead(ctx, tx, r.connectionID)
	if err != nil {
		return err
	}
	r.mu.Lock()
	known := r.head
	r.mu.Unlock()
	if head == known {
		return nil
	}
	l, err := r.h.connections.Load(ctx, tx, r.connectionID)
	if err != nil {
		return err
	}
	c := l.State
	if id, _ := c.Syncing(); id != r.syncID {
		return errSuperseded
	}
	if c.Status() != connection.StatusActive {
		return statusError(c.Status())
	}
	r.mu.Lock()
	r.head = max(r.head, l.Version)
	r.mu.Unlock()
	return nil
}

// sync lists the accounts and brings each up to date, then closes those
// the provider no longer lists.
func (r *run) sync(ctx context.Context) error {
	var listed []commands.ProviderAccount
	err := r.h.caller.Call(ctx, r.connectionID, func(ctx context.Context, p commands.Provider, c commands.Credentials) error {
		var err error
		listed, err = p.Accounts(ctx, c)
		return err
	})
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	known, err := readAccounts(ctx, r.h.pool, r.connectionID)
	if err != nil {
		return err
	}
	byProviderID := make(map[string]knownAccount, len(known))
	for _, k := range known {
		byProviderID[k.providerAccountID] = k
	}
	slices.SortFunc(listed, func(a, b commands.ProviderAccount) int { return strings.Compare(a.ID, b.ID) })
	listed = slices.CompactFunc(listed, func(a, b commands.ProviderAccount) bool { return a.ID == b.ID })
	r.accounts = len(listed)
	for _, pa := range listed {
		k, ok := byProviderID[pa.ID]
		if err := r.account(ctx, pa, ok, ok && k.active); err != nil {
			return err
		}
	}
	if err := r.closeGone(ctx, listed, known); err != nil {
		return err
	}
	if r.retry != nil && !commands.JobAttemptFrom(ctx).Last() {
		return fmt.Errorf("an account failed, the sync is tried again: %w", r.retry)
	}
	return nil
}

// closeGone closes the open accounts the provider no longer lists. An
// empty list closes nothing: a provider that suddenly lists no account at
// all is more likely wrong than right.
func (r *run) closeGone(ctx context.Context, listed []commands.ProviderAccount, known []knownAccount) error {
	if len(listed) == 0 {
		return nil
	}
	var gone []uuid.UUID
	for _, k := range known {
		if k.active && !slices.ContainsFunc(listed, func(pa commands.ProviderAccount) bool { return pa.ID == k.providerAccountID }) {
			gone = append(gone, k.id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return r.unit(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
		now := r.h.clock.Now()
		if _, err := r.h.accounts.UpdateMany(ctx, tx, gone, func(_ uuid.UUID, a *account.Account) ([]account.Event, error) {
			return a.Close(account.ClosedDisappeared, now)
		}); err != nil {
			return err
		}
		return closeAccounts(ctx, tx, r.connectionID, gone)
	})
}

// accountFailed records that account id could not be brought up to date
// (the first reason only) and whether trying again may help.
func (r *run) accountFailed(id uuid.UUID, err error) {
	if !slices.ContainsFunc(r.accountErrors, func(e connection.AccountError) bool { return e.AccountID == id }) {
		r.accountErrors = append(r.accountErrors, connection.AccountError{AccountID: id, Reason: failureOf(err)})
	}
	if r.retry == nil && !errors.Is(err, commands.ErrProviderNotFound) && !errors.Is(err, errInvalidData) {
		r.retry = err
	}
}

// fatal reports whether a provider error ends the whole run rather than
// one account's part of it: refused credentials (Call refreshes once),
// rate limits (the job snoozes) and the job itself being cancelled or
// timed out (job is the job's context). A call that timed out on its own
// (the adapter's HTTP timeout, which Go reports as a deadline too) is
// one account's failure, like any unavailability.
func fatal(job context.Context, err error) bool {
	return errors.Is(err, commands.ErrProviderAuth) || errors.Is(err, commands.ErrProviderRateLimited) || job.Err() != nil
}

// errInvalidData means the provider reported an account or transaction
// the aggregates refuse (no id, no date, no currency).
var errInvalidData = fmt.Errorf("provider data refused: %w", commands.ErrProviderInvalidResponse)
