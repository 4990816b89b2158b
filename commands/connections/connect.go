package connections

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// decision is what a step on a connection decided.
type decision = eventstore.Decision[connection.Event]

// Connect creates a pending connection and an authorisation for it; see Service.
func (h *Handler) Connect(ctx context.Context, p commands.Principal, providerSlug, alias string, rc commands.RequestContext) (Authorization, error) {
	prov, err := h.providers.Get(providerSlug)
	if err != nil {
		return Authorization{}, err
	}
	if alias, err = connection.NormalizeAlias(alias); err != nil {
		return Authorization{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Authorization{}, fmt.Errorf("connect: new connection id: %w", err)
	}
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "connect", rc)
	return h.authorize(ctx, prov, id, func(c *connection.Connection, a authorization) ([]connection.Event, error) {
		return c.Start(connection.Start{UserID: p.UserID, ProviderSlug: providerSlug, Alias: alias, ExpiresAt: a.expires, At: a.now})
	}, func(ctx context.Context, tx *eventstore.Tx) error {
		return insertAlias(ctx, tx, id, p.UserID, providerSlug, alias)
	})
}

// Reauthorize sends the user to the provider again; see Service.
func (h *Handler) Reauthorize(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) (Authorization, error) {
	c, err := h.owned(ctx, p, id)
	if err != nil {
		return Authorization{}, err
	}
	prov, err := h.providers.Get(c.ProviderSlug())
	if err != nil {
		return Authorization{}, err
	}
	ctx = commands.WithMetadata(ctx, p.UserID, commands.ActorUser(p.UserID), "reauthorize", rc)
	return h.authorize(ctx, prov, id, func(c *connection.Connection, a authorization) ([]connection.Event, error) {
		if c.UserID() != p.UserID {
			return nil, ErrNotFound
		}
		return c.Reauthorize(a.expires, a.now)
	}, nil)
}

// authorization is one authorisation being started.
type authorization struct {
	state, challenge string
	stateDigest      []byte
	verifierBlob     []byte
	now, expires     time.Time
}

// authorize starts an authorisation of connection id at prov: a fresh
// state (and PKCE verifier, sealed), decided by decide, stored with the
// rows more writes and a job that fails it once its deadline passes.
func (h *Handler) authorize(ctx context.Context, prov commands.Provider, id uuid.UUID,
	decide func(*connection.Connection, authorization) ([]connection.Event, error),
	more func(context.Context, *eventstore.Tx) error,
) (Authorization, error) {
	var a authorization
	var err error
	if a.state, a.stateDigest, err = newState(); err != nil {
		return Authorization{}, err
	}
	if prov.Info().PKCE {
		verifier, challenge, err := newPKCE()
		if err != nil {
			return Authorization{}, err
		}
		a.challenge = challenge
		if a.verifierBlob, _, err = h.vault.Seal(id, []byte(verifier)); err != nil {
			return Authorization{}, fmt.Errorf("seal pkce verifier: %w", err)
		}
	}
	a.now = h.clock.Now()
	a.expires = a.now.Add(AuthorizationTTL)
	var v View
	_, err = h.connections.Update(ctx, id, func(ctx context.Context, tx *eventstore.Tx, c *connection.Connection) (decision, error) {
		events, err := decide(c, a)
		if err != nil {
			return decision{}, err
		}
		if more != nil {
			if err := more(ctx, tx); err != nil {
				return decision{}, err
			}
		}
		c.Apply(events...)
		if err := insertState(ctx, tx, a.stateDigest, id, c.UserID(), c.ProviderSlug(), a.verifierBlob, a.expires); err != nil {
			return decision{}, err
		}
		if err := h.jobs.EnqueueTx(ctx, tx, ExpiryJob{ConnectionID: id, Deadline: a.expires},
			commands.JobOptions{RunAt: a.expires}); err != nil {
			return decision{}, fmt.Errorf("enqueue authorization expiry: %w", err)
		}
		v = view(c)
		return decision{Events: events}, nil
	})
	if errors.Is(err, connection.ErrNotFound) {
		return Authorization{}, ErrNotFound
	}
	if err != nil {
		return Authorization{}, err
	}
	u := prov.AuthorizationURL(a.state, a.challenge)
	if ap, ok := prov.(aliasAuthorizer); ok {
		u = ap.AuthorizationURLForAlias(a.state, a.challenge, v.Alias)
	}
	return Authorization{Connection: v, URL: u, State: a.state, ExpiresIn: AuthorizationTTL}, nil
}

// aliasAuthorizer is what a provider implements whose authorisation
// depends on the connection's alias: the sandbox picks a test persona by it.
type aliasAuthorizer interface {
	AuthorizationURLForAlias(state, challenge, alias string) string
}

// owned loads connection id for p, or ErrNotFound when it does not exist
// or belongs to another user: the two answer alike.
func (h *Handler) owned(ctx context.Context, p commands.Principal, id uuid.UUID) (*connection.Connection, error) {
	l, err := h.connections.Load(ctx, h.pool, id)
	if err != nil {
		return nil, err
	}
	if l.State.Status() == connection.StatusNone || l.State.UserID() != p.UserID {
		return nil, ErrNotFound
	}
	return l.State, nil
}

// Get returns one of the principal's connections; see Service.
func (h *Handler) Get(ctx context.Context, p commands.Principal, id uuid.UUID) (View, error) {
	c, err := h.owned(ctx, p, id)
	if err != nil {
		return View{}, err
	}
	return view(c), nil
}

// newState returns a fresh OAuth state (256 random bits, base64url) and
// the digest it is stored under.
func newState() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("new oauth state: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	return s, stateDigest(s), nil
}

// stateDigest is the stored form of a state.
func stateDigest(state string) []byte {
	sum := sha256.Sum256([]byte(state))
	return sum[:]
}

// newPKCE returns an RFC 7636 verifier (43 characters of 256 random bits)
// and its S256 challenge.
func newPKCE() (verifier, challenge string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("new pkce verifier: %w", err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
