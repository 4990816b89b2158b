package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Deps are the collaborators of a Handler; all are required.
type Deps struct {
	// Store reads the log and appends the views to the viewers' streams.
	Store *eventstore.Store
	// Pool reads states as of a moment.
	Pool *pgxpool.Pool
	// Aggregates are the described aggregates whose state can be shown.
	Aggregates *eventstore.Aggregates
	// Now stamps the recorded views and is "now" for states.
	Now func() time.Time
}

// Handler implements Service.
type Handler struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
	aggs  *eventstore.Aggregates
	clock commands.Clock
	users *eventstore.Repository[*user.User, user.Event]
}

var _ Service = (*Handler)(nil)

// NewHandler returns a Handler over d, refusing missing dependencies.
func NewHandler(d Deps) (*Handler, error) {
	var missing []string
	for name, isNil := range map[string]bool{"Store": d.Store == nil, "Pool": d.Pool == nil, "Aggregates": d.Aggregates == nil, "Now": d.Now == nil} {
		if isNil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("new audit handler: missing " + strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	users, err := eventstore.NewRepository(d.Store, commands.UserAggregate())
	if err != nil {
		return nil, fmt.Errorf("new audit handler: %w", err)
	}
	return &Handler{store: d.Store, pool: d.Pool, aggs: d.Aggregates, clock: commands.Clock(d.Now), users: users}, nil
}

// recordView appends the view to p's stream; nothing may be shown unless
// it committed. Filters and resource come validated from the caller.
func (h *Handler) recordView(ctx context.Context, p commands.Principal, rc commands.RequestContext, route string, filters map[string]string, resource string) error {
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "view audit trail", rc)
	view := user.AuditView{SessionID: p.SessionID, Route: route, Filters: filters, Resource: resource, At: h.clock.Now()}
	_, err := h.users.Update(ctx, p.UserID, func(_ context.Context, _ *eventstore.Tx, u *user.User) (eventstore.Decision[user.Event], error) {
		return eventstore.Decide(u.RecordAuditTrailView(view))
	})
	if err != nil {
		return fmt.Errorf("record audit trail view: %w", err)
	}
	return nil
}
