package web_test

import (
	"context"
	"sync"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/commands/webhooks"
	"github.com/dashtam/dashtam/web"
)

// fakeWebhooks is an in-memory webhooks.Service for the web tests: it
// keeps the contract's ownership rule (another user's endpoint is
// ErrNotFound) so the tests here exercise the HTTP mapping; the real
// service runs against PostgreSQL in commands/webhooks and cmd/dashtam.
type fakeWebhooks struct {
	clock *fakeClock

	mu        sync.Mutex
	endpoints map[uuid.UUID]fakeEndpoint
}

type fakeEndpoint struct {
	user uuid.UUID
	e    webhooks.Endpoint
}

var _ webhooks.Service = (*fakeWebhooks)(nil)

func newFakeWebhooks(clock *fakeClock) *fakeWebhooks {
	return &fakeWebhooks{clock: clock, endpoints: map[uuid.UUID]fakeEndpoint{}}
}

func (f *fakeWebhooks) own(p commands.Principal, id uuid.UUID) (webhooks.Endpoint, error) {
	e, ok := f.endpoints[id]
	if !ok || e.user != p.UserID {
		return webhooks.Endpoint{}, webhooks.ErrNotFound
	}
	return e.e, nil
}

func (f *fakeWebhooks) Create(_ context.Context, p commands.Principal, req webhooks.CreateRequest) (webhooks.Endpoint, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	e := webhooks.Endpoint{ID: uuid.New(), URL: req.URL, EventTypes: req.EventTypes, Status: webhooks.StatusEnabled,
		CreatedAt: now, UpdatedAt: now}
	f.endpoints[e.ID] = fakeEndpoint{user: p.UserID, e: e}
	return e, "whsec_c2VjcmV0", nil
}

func (f *fakeWebhooks) List(_ context.Context, p commands.Principal, _ *webhooks.EndpointKey, limit int) ([]webhooks.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []webhooks.Endpoint
	for _, e := range f.endpoints {
		if e.user == p.UserID && len(out) < limit {
			out = append(out, e.e)
		}
	}
	return out, nil
}

func (f *fakeWebhooks) Get(_ context.Context, p commands.Principal, id uuid.UUID) (webhooks.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.own(p, id)
}

func (f *fakeWebhooks) Update(_ context.Context, p commands.Principal, id uuid.UUID, req webhooks.UpdateRequest) (webhooks.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.own(p, id)
	if err != nil {
		return e, err
	}
	if req.URL != nil {
		e.URL = *req.URL
	}
	if req.EventTypes != nil {
		e.EventTypes = req.EventTypes
	}
	f.endpoints[id] = fakeEndpoint{user: p.UserID, e: e}
	return e, nil
}

func (f *fakeWebhooks) Delete(_ context.Context, p commands.Principal, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.own(p, id); err != nil {
		return err
	}
	delete(f.endpoints, id)
	return nil
}

func (f *fakeWebhooks) RotateSecret(_ context.Context, p commands.Principal, id uuid.UUID) (webhooks.Endpoint, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.own(p, id)
	return e, "whsec_bmV3", err
}

func (f *fakeWebhooks) Test(_ context.Context, p commands.Principal, id uuid.UUID) (webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.own(p, id); err != nil {
		return webhooks.Delivery{}, err
	}
	return webhooks.Delivery{ID: uuid.New(), EndpointID: id, EventID: uuid.New(), EventType: fanout.TypeWebhookTest,
		Status: webhooks.DeliveryPending, CreatedAt: f.clock.Now()}, nil
}

func (f *fakeWebhooks) Deliveries(_ context.Context, p commands.Principal, id uuid.UUID, _ *webhooks.DeliveryKey, _ int) ([]webhooks.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.own(p, id); err != nil {
		return nil, err
	}
	return nil, nil
}

// fakeFeed answers an empty change feed and refuses any cursor but its own.
type fakeFeed struct{}

func (fakeFeed) Sync(_ context.Context, _ uuid.UUID, cursor string, _ int) (fanout.FeedPage, error) {
	if cursor != "" && cursor != "end" {
		return fanout.FeedPage{}, fanout.ErrInvalidCursor
	}
	return fanout.FeedPage{NextCursor: "end"}, nil
}

// fakeStreams opens streams that end at once after catching up nothing,
// or, when open is set, streams that stay open with no event: enough for
// the HTTP contract; the real hub streams in cmd/dashtam's tests.
type fakeStreams struct{ open bool }

func (f fakeStreams) Open(_ context.Context, _ uuid.UUID, lastEventID string) (web.EventStream, error) {
	if lastEventID == "bogus" {
		return nil, fanout.ErrInvalidEventID
	}
	lost := make(chan struct{})
	if !f.open {
		close(lost)
	}
	return endedStream{lost: lost}, nil
}

type endedStream struct{ lost chan struct{} }

func (endedStream) CatchUp(context.Context, func(fanout.Event) error) error { return nil }
func (endedStream) Live() <-chan fanout.Event                               { return nil }
func (s endedStream) Lost() <-chan struct{}                                 { return s.lost }
func (endedStream) Close()                                                  {}
