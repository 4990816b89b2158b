package audit

import (
	"context"
	"errors"
	"strings"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// StreamState returns a stream's state as of a moment; see Service.
func (h *Handler) StreamState(ctx context.Context, p commands.Principal, q StateQuery, rc commands.RequestContext) (State, error) {
	typ := eventstore.StreamType(q.Type)
	if !typ.Valid() {
		return State{}, invalid("type", "unknown stream type (want connection, account, transaction or user)")
	}
	reader, err := h.aggs.Reader(typ)
	if err != nil {
		return State{}, invalid("type", "%s streams have no state to show yet", typ)
	}
	at := h.clock.Now()
	filters := map[string]string{}
	if q.AsOf != nil {
		s := strings.TrimSpace(*q.AsOf)
		t, err := parseTime(s)
		if err != nil || len(s) > maxFilterLength {
			return State{}, invalid("as_of", timeHint)
		}
		at, filters["as_of"] = t.UTC(), s
	}
	stream := eventstore.Stream{Type: typ, ID: q.ID}
	if err := h.recordView(ctx, p, rc, routeState, filters, stream.String()); err != nil {
		return State{}, err
	}
	v, err := reader.StateAsOf(ctx, h.pool, q.ID, at)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return State{}, ErrNotFound
	}
	if err != nil {
		return State{}, err
	}
	return State{StateView: v, AsOf: at}, nil
}
