package syncs

import (
	"context"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// RequestJob asks for a sync of a connection, decided by the system when
// the job runs: after a completed authorisation (AfterConnected enqueues
// it in the callback's unit of work) and for each connection the scheduler
// finds due. A sync that cannot start then (one is running, the last was
// moments ago, the connection is not active) is simply not started.
type RequestJob struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	// Trigger is "first" or "scheduled"; a connection never synced is
	// always a first sync.
	Trigger connection.SyncTrigger `json:"trigger"`
}

// Kind names the job's worker.
func (RequestJob) Kind() string { return "sync_request" }

// CloseAccountsJob closes the accounts of a connection that was
// disconnected (AccountClosed) once no sync of it is running;
// AfterDisconnected enqueues it in the disconnection's unit of work.
type CloseAccountsJob struct {
	ConnectionID uuid.UUID `json:"connection_id"`
}

// Kind names the job's worker.
func (CloseAccountsJob) Kind() string { return "sync_close_accounts" }

// AfterConnected returns the hook connections runs in the unit of work
// that completes an authorisation (connections.Deps.OnConnected): it
// enqueues the sync that follows, so a crash between the commit and the
// sync loses nothing.
func AfterConnected(j commands.Jobs) func(ctx context.Context, tx *eventstore.Tx, connectionID uuid.UUID) error {
	return func(ctx context.Context, tx *eventstore.Tx, id uuid.UUID) error {
		return j.EnqueueTx(ctx, tx, RequestJob{ConnectionID: id, Trigger: connection.SyncFirst}, commands.JobOptions{Unique: true})
	}
}

// AfterDisconnected returns the hook connections runs in the unit of work
// that ends a connection (connections.Deps.OnDisconnected): it enqueues
// the closing of the connection's accounts.
func AfterDisconnected(j commands.Jobs) func(ctx context.Context, tx *eventstore.Tx, connectionID uuid.UUID) error {
	return func(ctx context.Context, tx *eventstore.Tx, id uuid.UUID) error {
		return j.EnqueueTx(ctx, tx, CloseAccountsJob{ConnectionID: id}, commands.JobOptions{Unique: true})
	}
}
