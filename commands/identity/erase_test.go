package identity_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/personaldata"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// fakeConnections stands in for the connections context, which has its
// own tests: it remembers what the erasure asked of it.
type fakeConnections struct {
	mu           sync.Mutex
	live         []uuid.UUID
	forgot       []uuid.UUID
	disconnected []uuid.UUID
	fail         uuid.UUID // Disconnect of this one fails once
}

func (f *fakeConnections) ForgetAliases(_ context.Context, tx pgx.Tx, userID uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tx == nil {
		return errors.New("no transaction")
	}
	f.forgot = append(f.forgot, userID)
	return nil
}

func (f *fakeConnections) Live(context.Context, uuid.UUID) ([]uuid.UUID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uuid.UUID(nil), f.live...), nil
}

func (f *fakeConnections) Disconnect(_ context.Context, _ commands.Principal, id uuid.UUID, _ commands.RequestContext) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == f.fail {
		f.fail = uuid.Nil
		return errors.New("provider down")
	}
	f.disconnected = append(f.disconnected, id)
	for i, l := range f.live {
		if l == id {
			f.live = append(f.live[:i], f.live[i+1:]...)
			break
		}
	}
	return nil
}

func TestEraseEndsSessionsDisconnectsAndRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c1, c2 := uuid.New(), uuid.New()
	conns := &fakeConnections{live: []uuid.UUID{c1, c2}, fail: c2}
	var keys *personaldata.Keys
	e := MustEnv(t, func(d *identity.Deps) {
		ring, err := vault.Parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
		require.NoError(t, err)
		keys, err = personaldata.New(d.Pool, ring, time.Now)
		require.NoError(t, err)
		d.Keys, d.Connections = keys, conns
	})
	v := e.MustRegister("erase.me@example.com")
	tok := e.MustLogin("erase.me@example.com")
	// A mail about a connection waits for its time; its arguments name
	// the connection as she did. The verification mail was sent.
	require.NoError(t, pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		return e.deps.Jobs.EnqueueTx(ctx, tx, commands.UserMail{UserID: v.ID, Template: commands.MailReauthorizationReminder,
			Params: map[string]string{"alias": "Erase Me Household", "provider": "Sandbox"}}, commands.JobOptions{RunAt: time.Now().Add(time.Hour)})
	}))
	drainJobs(t, e.pool)
	mailJobs := func() int {
		var n int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE args->>'user_id' = $1`, v.ID.String()).Scan(&n))
		return n
	}
	require.Equal(t, 2, mailJobs(), "the sent verification mail and the waiting one")
	// A webhook endpoint of hers and one of someone else's.
	other := uuid.New()
	for _, owner := range []uuid.UUID{v.ID, other} {
		_, err := e.pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, user_id, url, event_types, status, secret_blob, secret_key_id, created_at, updated_at)
			VALUES ($1, $2, 'https://hooks.example.com/erase-me', '{sync.completed}', 'enabled', '\x00', 'k1', now(), now())`, uuid.New(), owner)
		require.NoError(t, err)
	}
	endpoints := func(owner uuid.UUID) int {
		var n int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints WHERE user_id = $1`, owner).Scan(&n))
		return n
	}
	p, err := e.h.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)

	require.ErrorIs(t, e.h.EraseSelf(ctx, p, "not the password", rc), identity.ErrInvalidCredentials)
	require.Equal(t, 1, endpoints(v.ID), "a refused erasure deletes nothing")
	err = e.h.EraseSelf(ctx, p, goodPassword, rc)
	require.Error(t, err, "one disconnection failed")
	assert.Contains(t, err.Error(), "provider down")
	assert.Equal(t, []uuid.UUID{v.ID}, conns.forgot, "aliases forgotten in the erasure's transaction")
	assert.Equal(t, []uuid.UUID{c1}, conns.disconnected)
	assert.Zero(t, mailJobs(), "the user's mail jobs are gone with what they said")
	assert.Zero(t, endpoints(v.ID), "her webhook endpoints are gone: nothing of hers is delivered any more")
	assert.Equal(t, 1, endpoints(other), "another user's endpoint stays")

	_, err = e.h.Authenticate(ctx, tok.AccessToken)
	require.Error(t, err, "every session ended")
	erased, err := keys.Erased(ctx, v.ID)
	require.NoError(t, err)
	assert.True(t, erased, "the data key is destroyed")

	// Again, by an administrator: nothing new is recorded, what is left is disconnected.
	require.NoError(t, e.h.EraseUser(ctx, commands.Principal{UserID: uuid.New()}, v.ID, rc))
	assert.Equal(t, []uuid.UUID{c1, c2}, conns.disconnected)
	var erasures int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'UserErased'`, v.ID).Scan(&erasures))
	assert.Equal(t, 1, erasures)
	require.ErrorIs(t, e.h.EraseUser(ctx, p, uuid.New(), rc), identity.ErrNotFound)

	// The address is free; the rows forgot the user.
	e.MustRegister("erase.me@example.com")
	var n int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM auth_sessions WHERE user_id = $1 AND (ip <> '' OR user_agent <> '' OR status = 'active')`, v.ID).Scan(&n))
	assert.Zero(t, n)

	noKeys := MustEnv(t)
	u := noKeys.MustRegister("kept@example.com")
	require.ErrorIs(t, noKeys.h.EraseUser(ctx, p, u.ID, rc), identity.ErrErasureUnavailable)
}
