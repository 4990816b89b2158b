package web

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/commands/fanout"
)

// EventStreams opens live streams of a user's integration events;
// HubStreams adapts fanout.Hub to it.
type EventStreams interface {
	// Open opens a stream of user's events committed from now on, or after
	// lastEventID when set. Errors: fanout.ErrTooManyStreams,
	// fanout.ErrInvalidEventID.
	Open(ctx context.Context, user uuid.UUID, lastEventID string) (EventStream, error)
}

// EventStream is one open stream; *fanout.Stream implements it.
type EventStream interface {
	// CatchUp emits the events after the Last-Event-ID up to where the
	// live part starts, in order.
	CatchUp(ctx context.Context, emit func(fanout.Event) error) error
	// Live delivers the events committed after the stream opened.
	Live() <-chan fanout.Event
	// Lost is closed when the stream fell behind and was cut.
	Lost() <-chan struct{}
	// Close releases the stream.
	Close()
}

// HubStreams serves event streams from a fanout.Hub.
type HubStreams struct{ Hub *fanout.Hub }

// Open opens a stream of the hub; see EventStreams.
func (h HubStreams) Open(ctx context.Context, user uuid.UUID, lastEventID string) (EventStream, error) {
	st, err := h.Hub.Open(ctx, user, lastEventID)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// DefaultHeartbeat is how often an idle event stream gets a comment line:
// well inside the 60-second idle timeouts of common proxies and load
// balancers, which would otherwise close a quiet stream.
const DefaultHeartbeat = 15 * time.Second

// sseRetry is the reconnection delay the stream asks browsers for.
const sseRetry = 2 * time.Second

// errStreamsOff answers GET /api/v1/events on a server built without a hub.
var errStreamsOff = &Error{Code: CodeUnavailable, Detail: "the live event stream is not configured on this server"}

// streamEvents serves GET /api/v1/events: the caller's integration events
// as Server-Sent Events, resumed after Last-Event-ID, with heartbeats. It
// is served by hand (a stream is no JSON answer), behind the same
// authentication, permission and rate-limit middleware as every route.
func (s *Server) streamEvents(c echo.Context) error {
	if s.streams == nil {
		return errStreamsOff
	}
	ctx := c.Request().Context()
	p, err := callerOf(ctx)
	if err != nil {
		return err
	}
	st, err := s.streams.Open(ctx, p.UserID, c.Request().Header.Get("Last-Event-ID"))
	if err != nil {
		return err
	}
	defer st.Close()

	w := c.Response()
	rc := http.NewResponseController(w)
	// The server's write timeout bounds answers, not a stream that lasts
	// as long as the client wants it.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		return fmt.Errorf("lift the write deadline of an event stream: %w", err)
	}
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set(echo.HeaderCacheControl, "no-store")
	// Tells nginx-style proxies not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", sseRetry.Milliseconds()); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	emit := func(e fanout.Event) error {
		body, err := e.Marshal()
		if err != nil {
			return fmt.Errorf("encode integration event %s: %w", e.ID, err)
		}
		if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", fanout.EventID(e), e.Type, body); err != nil {
			return err
		}
		return rc.Flush()
	}
	// Once the answer has started, failures end the stream: the client
	// reconnects with its Last-Event-ID.
	if err := st.CatchUp(ctx, emit); err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "event stream catch-up failed", "err", err)
		}
		return nil
	}
	beat := time.NewTicker(s.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-st.Lost():
			return nil
		case e := <-st.Live():
			if emit(e) != nil {
				return nil
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			if rc.Flush() != nil {
				return nil
			}
		}
	}
}
