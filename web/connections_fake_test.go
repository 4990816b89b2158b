package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/projections"
	"github.com/dashtam/dashtam/web"
)

// fakeConnections is an in-memory connections.Service and
// web.ConnectionLister for web tests: it keeps the service's contract
// (errors, ownership, single-use states) without a database or provider,
// so the tests here exercise the HTTP mapping. The real service runs
// end to end in cmd/dashtam's tests.
type fakeConnections struct {
	clock *fakeClock
	names map[string]string // enabled providers: slug → display name

	mu        sync.Mutex
	conns     map[uuid.UUID]*fakeConn
	states    map[string]uuid.UUID // unspent states
	spent     map[string]bool
	refreshes map[uuid.UUID]error // what RefreshNow answers, by connection
	callbacks []url.Values        // every callback query received

	// gate, when set, holds each callback until it is closed; entered
	// says a callback is waiting there, and callbackErr receives the
	// context's error the callback sees once released.
	gate        chan struct{}
	entered     chan struct{}
	callbackErr chan error
}

// fakeConn is one connection of the fake.
type fakeConn struct {
	user uuid.UUID
	view connections.View
}

var (
	_ connections.Service  = (*fakeConnections)(nil)
	_ web.ConnectionLister = (*fakeConnections)(nil)
)

// newFakeConnections returns a fake with the sandbox and Schwab enabled.
func newFakeConnections(clock *fakeClock) *fakeConnections {
	return &fakeConnections{
		clock: clock, names: map[string]string{"sandbox": "Dashtam Sandbox", "schwab": "Charles Schwab"},
		conns: map[uuid.UUID]*fakeConn{}, states: map[string]uuid.UUID{}, spent: map[string]bool{},
		refreshes: map[uuid.UUID]error{},
	}
}

// FailRefresh makes RefreshNow of connection id answer err.
func (f *fakeConnections) FailRefresh(id uuid.UUID, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes[id] = err
}

// SetStatus moves connection id to s, as a provider's refusal would.
func (f *fakeConnections) SetStatus(id uuid.UUID, s connection.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[id].view.Status = s
}

// Callbacks lists the queries the callback received.
func (f *fakeConnections) Callbacks() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.callbacks)
}

func (f *fakeConnections) owned(p commands.Principal, id uuid.UUID) (*fakeConn, error) {
	c, ok := f.conns[id]
	if !ok || c.user != p.UserID {
		return nil, connections.ErrNotFound
	}
	return c, nil
}

func (f *fakeConnections) aliasTaken(user uuid.UUID, slug, alias string, except uuid.UUID) bool {
	for id, c := range f.conns {
		if id != except && c.user == user && c.view.ProviderSlug == slug && c.view.Status.Live() &&
			strings.EqualFold(c.view.Alias, alias) {
			return true
		}
	}
	return false
}

func (f *fakeConnections) authorize(c *fakeConn) connections.Authorization {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	state := hex.EncodeToString(b)
	f.states[state] = c.view.ID
	return connections.Authorization{Connection: c.view, State: state, ExpiresIn: connections.AuthorizationTTL,
		URL: "https://provider.test/authorize?state=" + state}
}

// Connect creates a pending connection.
func (f *fakeConnections) Connect(_ context.Context, p commands.Principal, slug, alias string, _ commands.RequestContext) (connections.Authorization, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.names[slug]; !ok {
		return connections.Authorization{}, fmt.Errorf("%w %q", commands.ErrUnknownProvider, slug)
	}
	alias, err := connection.NormalizeAlias(alias)
	if err != nil {
		return connections.Authorization{}, err
	}
	if f.aliasTaken(p.UserID, slug, alias, uuid.Nil) {
		return connections.Authorization{}, connections.ErrAliasTaken
	}
	id, _ := uuid.NewV7()
	c := &fakeConn{user: p.UserID, view: connections.View{ID: id, ProviderSlug: slug, Alias: alias,
		Status: connection.StatusPending, CreatedAt: f.clock.Now()}}
	f.conns[id] = c
	return f.authorize(c), nil
}

// Reauthorize authorises an active or needs_reauth connection again.
func (f *fakeConnections) Reauthorize(_ context.Context, p commands.Principal, id uuid.UUID, _ commands.RequestContext) (connections.Authorization, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.owned(p, id)
	if err != nil {
		return connections.Authorization{}, err
	}
	if s := c.view.Status; s != connection.StatusActive && s != connection.StatusNeedsReauth {
		return connections.Authorization{}, fmt.Errorf("reauthorize: %w", connection.ErrNotActive)
	}
	return f.authorize(c), nil
}

// Callback completes an authorisation: code "unreachable" plays a
// provider that cannot be reached, any other code succeeds.
func (f *fakeConnections) Callback(ctx context.Context, slug string, q url.Values, _ commands.RequestContext) connections.CallbackOutcome {
	if f.gate != nil {
		f.entered <- struct{}{}
		<-f.gate
		f.callbackErr <- ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callbacks = append(f.callbacks, q)
	state := q.Get("state")
	if state == "" {
		return connections.CallbackOutcome{BadRequest: true, Reason: connection.FailedInvalidState}
	}
	id, ok := f.states[state]
	if !ok || f.spent[state] {
		return connections.CallbackOutcome{Reason: connection.FailedInvalidState}
	}
	f.spent[state] = true
	c := f.conns[id]
	out := connections.CallbackOutcome{ConnectionID: id}
	fail := func(r connection.FailureReason) connections.CallbackOutcome {
		if c.view.Status == connection.StatusPending {
			c.view.Status = connection.StatusFailed
		}
		out.Reason = r
		return out
	}
	switch {
	case c.view.ProviderSlug != slug:
		return fail(connection.FailedInvalidState)
	case q.Get("error") == "access_denied":
		return fail(connection.FailedAccessDenied)
	case q.Get("code") == "":
		return fail(connection.FailedProviderError)
	case q.Get("code") == "unreachable":
		return fail(connection.FailedProviderUnavailable)
	}
	now := f.clock.Now()
	access, refresh := now.Add(30*time.Minute), now.Add(7*24*time.Hour)
	c.view.Status, c.view.AccessExpires, c.view.ReauthorizeBy = connection.StatusActive, &access, &refresh
	if c.view.ConnectedAt == nil {
		c.view.ConnectedAt = &now
	}
	out.OK, out.Alias, out.ProviderName = true, c.view.Alias, f.names[slug]
	return out
}

// Get returns one of p's connections.
func (f *fakeConnections) Get(_ context.Context, p commands.Principal, id uuid.UUID) (connections.View, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.owned(p, id)
	if err != nil {
		return connections.View{}, err
	}
	return c.view, nil
}

// Rename sets the alias.
func (f *fakeConnections) Rename(_ context.Context, p commands.Principal, id uuid.UUID, alias string, _ commands.RequestContext) (connections.View, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.owned(p, id)
	if err != nil {
		return connections.View{}, err
	}
	if c.view.Status == connection.StatusDisconnected {
		return connections.View{}, connection.ErrDisconnected
	}
	alias, err = connection.NormalizeAlias(alias)
	if err != nil {
		return connections.View{}, err
	}
	if f.aliasTaken(p.UserID, c.view.ProviderSlug, alias, id) {
		return connections.View{}, connections.ErrAliasTaken
	}
	c.view.Alias = alias
	return c.view, nil
}

// Disconnect ends the connection.
func (f *fakeConnections) Disconnect(_ context.Context, p commands.Principal, id uuid.UUID, _ commands.RequestContext) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.owned(p, id)
	if err != nil {
		return err
	}
	if c.view.Status == connection.StatusDisconnected {
		return connection.ErrDisconnected
	}
	now := f.clock.Now()
	c.view.Status, c.view.DisconnectedAt, c.view.AccessExpires, c.view.ReauthorizeBy = connection.StatusDisconnected, &now, nil, nil
	return nil
}

// RefreshNow answers new expiries, or the error a test set.
func (f *fakeConnections) RefreshNow(_ context.Context, p commands.Principal, id uuid.UUID, _ commands.RequestContext) (connections.Expiry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.owned(p, id)
	if err != nil {
		return connections.Expiry{}, err
	}
	if err := f.refreshes[id]; err != nil {
		return connections.Expiry{}, err
	}
	switch c.view.Status {
	case connection.StatusActive:
	case connection.StatusNeedsReauth:
		return connections.Expiry{}, connections.ErrReauthenticationRequired
	case connection.StatusDisconnected:
		return connections.Expiry{}, fmt.Errorf("refresh: %w", connection.ErrDisconnected)
	default:
		return connections.Expiry{}, fmt.Errorf("refresh: %w", connection.ErrNotActive)
	}
	access := f.clock.Now().Add(30 * time.Minute)
	c.view.AccessExpires = &access
	return connections.Expiry{AccessExpiresAt: access, ReauthorizeBy: c.view.ReauthorizeBy}, nil
}

// ListConnections lists userID's connections oldest first, like the read model.
func (f *fakeConnections) ListConnections(_ context.Context, userID uuid.UUID, after *projections.ConnectionKey, limit int) ([]projections.ConnectionView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []projections.ConnectionView
	for _, c := range f.conns {
		if c.user != userID {
			continue
		}
		v := c.view
		out = append(out, projections.ConnectionView{ID: v.ID, UserID: c.user, ProviderSlug: v.ProviderSlug, Alias: v.Alias,
			Status: v.Status, CreatedAt: v.CreatedAt.Truncate(time.Microsecond), ConnectedAt: v.ConnectedAt,
			ReauthorizeBy: v.ReauthorizeBy, AccessExpiresAt: v.AccessExpires, DisconnectedAt: v.DisconnectedAt})
	}
	less := func(a, b projections.ConnectionKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	}
	slices.SortFunc(out, func(a, b projections.ConnectionView) int { return less(a.Key(), b.Key()) })
	if after != nil {
		out = slices.DeleteFunc(out, func(v projections.ConnectionView) bool { return less(v.Key(), *after) <= 0 })
	}
	return out[:min(limit, len(out))], nil
}
