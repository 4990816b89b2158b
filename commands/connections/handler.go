package connections

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Deps are the collaborators of a Handler; all are required, so a wiring
// mistake fails at start-up rather than on the first connection.
type Deps struct {
	// Store appends to and reads the connections' streams.
	Store *eventstore.Store
	// Pool holds the rows written with the events (states, aliases, vault).
	Pool *pgxpool.Pool
	// Providers is the registry of enabled providers.
	Providers *commands.Providers
	// Vault seals and opens credentials.
	Vault commands.Vault
	// Jobs enqueues refreshes, expiries and mails in the events' transaction.
	Jobs commands.Jobs
	// Pacer spaces provider calls across every instance.
	Pacer commands.ProviderPacer
	// Now is the clock every decision is stamped with.
	Now func() time.Time
	// Logger receives failures; never tokens, codes or secrets.
	Logger *slog.Logger
	// OnConnected, when set, runs in the unit of work that completes an
	// authorisation; the wiring enqueues the sync that follows there
	// (commands/syncs AfterConnected).
	OnConnected func(ctx context.Context, tx *eventstore.Tx, connectionID uuid.UUID) error
	// OnDisconnected, when set, runs in the unit of work that ends a
	// connection; the wiring enqueues the closing of its accounts there
	// (commands/syncs AfterDisconnected).
	OnDisconnected func(ctx context.Context, tx *eventstore.Tx, connectionID uuid.UUID) error
}

// Handler implements Service and the connection jobs.
type Handler struct {
	store       *eventstore.Store
	pool        *pgxpool.Pool
	providers   *commands.Providers
	vault       commands.Vault
	jobs        commands.Jobs
	pacer       commands.ProviderPacer
	clock       commands.Clock
	log         *slog.Logger
	connections *eventstore.Repository[*connection.Connection, connection.Event]
	hooks       hooks
}

// hooks are the optional Deps hooks; a nil one does nothing.
type hooks struct {
	connected, disconnected func(ctx context.Context, tx *eventstore.Tx, connectionID uuid.UUID) error
}

// run calls hook, if set.
func (hooks) run(ctx context.Context, tx *eventstore.Tx, id uuid.UUID, hook func(context.Context, *eventstore.Tx, uuid.UUID) error) error {
	if hook == nil {
		return nil
	}
	return hook(ctx, tx, id)
}

var _ Service = (*Handler)(nil)

// NewHandler returns a Handler over d, refusing missing dependencies.
func NewHandler(d Deps) (*Handler, error) {
	var missing []string
	for name, isNil := range map[string]bool{
		"Store": d.Store == nil, "Pool": d.Pool == nil, "Providers": d.Providers == nil, "Vault": d.Vault == nil,
		"Jobs": d.Jobs == nil, "Pacer": d.Pacer == nil, "Now": d.Now == nil, "Logger": d.Logger == nil,
	} {
		if isNil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("new connections handler: missing " + strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	repo, err := eventstore.NewRepository(d.Store, commands.ConnectionAggregate())
	if err != nil {
		return nil, err
	}
	return &Handler{
		store: d.Store, pool: d.Pool, providers: d.Providers, vault: d.Vault, jobs: d.Jobs, pacer: d.Pacer,
		clock: commands.Clock(d.Now), log: d.Logger, connections: repo,
		hooks: hooks{connected: d.OnConnected, disconnected: d.OnDisconnected},
	}, nil
}

// view shows c as the API does.
func view(c *connection.Connection) View {
	v := View{ID: c.ID(), ProviderSlug: c.ProviderSlug(), Alias: c.Alias(), Status: c.Status(), CreatedAt: c.CreatedAt()}
	v.ConnectedAt = timePtr(c.ConnectedAt())
	v.ReauthorizeBy = timePtr(c.ReauthorizeBy())
	v.DisconnectedAt = timePtr(c.DisconnectedAt())
	if c.Status() == connection.StatusActive {
		v.AccessExpires = timePtr(c.Credentials().AccessExpiresAt)
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
