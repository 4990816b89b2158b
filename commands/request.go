package commands

import (
	"context"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
)

// RequestContext is who asked and from where: every use case writes it into
// its events' metadata, so the log alone says where each change came from.
type RequestContext struct {
	IP        netip.Addr
	UserAgent string
	TraceID   string
}

// IPString is the request's address as event metadata and session records
// keep it, or "" when unknown.
func (rc RequestContext) IPString() string {
	if !rc.IP.IsValid() {
		return ""
	}
	return rc.IP.String()
}

// Principal is the verified caller of a request, as authentication found it.
type Principal struct {
	UserID    uuid.UUID
	SessionID uuid.UUID
	Roles     []user.Role
}

// Actors written into event metadata: who caused an event.
const (
	// ActorAnonymous is a public endpoint's caller: nobody is authenticated yet.
	ActorAnonymous = "anonymous"
	// ActorOperator is the command line (dashtam users create, keys rotate).
	ActorOperator = "operator"
	// ActorSystem is the server acting on its own (scheduled jobs).
	ActorSystem = "system"
)

// ActorUser is the actor of events caused by an authenticated user.
func ActorUser(id uuid.UUID) string { return "user:" + id.String() }

// WithMetadata returns ctx carrying the metadata every event appended in
// it gets: the stream's owner, the actor, the use case and the request.
func WithMetadata(ctx context.Context, owner uuid.UUID, actor, command string, rc RequestContext) context.Context {
	return eventstore.WithMetadata(ctx, eventstore.Metadata{
		OwnerID:   owner,
		Actor:     actor,
		TraceID:   rc.TraceID,
		IP:        rc.IPString(),
		UserAgent: rc.UserAgent,
		Command:   command,
	})
}

// Clock is the time source handlers stamp decisions with; tests inject
// their own so that expiry and scheduling are tested without waiting.
type Clock func() time.Time

// Now returns the time in UTC at microsecond precision, the precision
// PostgreSQL keeps, so that what is decided and what is stored agree.
func (c Clock) Now() time.Time { return c().UTC().Truncate(time.Microsecond) }
