package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/eventstore"
)

// replay folds user id's stream from its first event up to version (0: the
// whole stream), as load did before snapshots; it returns the version folded.
func (e *env) replay(id uuid.UUID, upTo int64) (*user.User, int64) {
	e.tb.Helper()
	recs, err := e.store.ReadStream(context.Background(), eventstore.Stream{Type: eventstore.StreamUser, ID: id}, 0)
	require.NoError(e.tb, err)
	var (
		history []user.Event
		version int64
	)
	for _, r := range recs {
		if upTo > 0 && r.Version > upTo {
			break
		}
		ev, err := e.store.Decode(r)
		require.NoError(e.tb, err)
		history = append(history, ev.(user.Event))
		version = r.Version
	}
	return user.FromHistory(history), version
}

// snapshotRow is user id's row in snapshots.
type snapshotRow struct {
	version int64
	schema  int
	state   []byte
}

// snapshot returns user id's stored snapshot, and false when there is none.
func (e *env) snapshot(id uuid.UUID) (snapshotRow, bool) {
	e.tb.Helper()
	var s snapshotRow
	err := e.pool.QueryRow(context.Background(), `SELECT version, schema, state FROM snapshots WHERE stream_type = 'user' AND stream_id = $1`, id).
		Scan(&s.version, &s.schema, &s.state)
	if errors.Is(err, pgx.ErrNoRows) {
		return snapshotRow{}, false
	}
	require.NoError(e.tb, err)
	return s, true
}

// mustLoadAsReplay checks that loading user id, as every decision does,
// gives exactly the user and version a full replay gives; it returns the
// version of the snapshot the load started from (0 for none).
func (e *env) mustLoadAsReplay(id uuid.UUID) int64 {
	e.tb.Helper()
	got, version, from, err := e.h.LoadUser(context.Background(), id)
	require.NoError(e.tb, err)
	want, wantVersion := e.replay(id, 0)
	require.Equal(e.tb, wantVersion, version, "loaded version")
	require.Equal(e.tb, want, got, "user loaded from the snapshot at version %d differs from a full replay", from)
	return from
}

// mustSnapshotOfReplay checks that user id's stored snapshot is of the
// current schema and holds exactly the state of a replay up to its version,
// which is never past the stream's head; it returns that version.
func (e *env) mustSnapshotOfReplay(id uuid.UUID) int64 {
	e.tb.Helper()
	row, ok := e.snapshot(id)
	require.True(e.tb, ok, "no snapshot of user %s", id)
	require.Equal(e.tb, user.SnapshotSchema, row.schema)
	var s user.Snapshot
	require.NoError(e.tb, json.Unmarshal(row.state, &s))
	got, err := user.FromSnapshot(s)
	require.NoError(e.tb, err)
	want, version := e.replay(id, row.version)
	require.Equal(e.tb, row.version, version, "snapshot version past the stream's head")
	require.Equal(e.tb, want, got, "snapshot at version %d differs from a replay up to it", row.version)
	return row.version
}

// mustRefresh refreshes with token, failing the test on an error.
func (e *env) mustRefresh(token string) identity.Tokens {
	e.tb.Helper()
	tok, err := e.h.Refresh(context.Background(), token, rc, nil)
	require.NoError(e.tb, err)
	return tok
}

// mustGrowPast logs email in and refreshes until the user's stream holds at
// least version events, returning the latest tokens.
func (e *env) mustGrowPast(id uuid.UUID, email string, version int64) identity.Tokens {
	e.tb.Helper()
	tok := e.MustLogin(email)
	for {
		_, v, _, err := e.h.LoadUser(context.Background(), id)
		require.NoError(e.tb, err)
		if v >= version {
			return tok
		}
		tok = e.mustRefresh(tok.RefreshToken)
	}
}

// TestSnapshotEveryInterval: a user's first snapshot is taken by the
// decision that brings the stream to SnapshotInterval events, the next one
// SnapshotInterval events later, each of exactly the state at its version.
func TestSnapshotEveryInterval(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	const email = "long@example.com"
	id := e.MustRegister(email).ID
	tok := e.MustLogin(email)
	for {
		_, version, _, err := e.h.LoadUser(context.Background(), id)
		require.NoError(t, err)
		want := version / commands.UserSnapshotInterval * commands.UserSnapshotInterval // refreshes append one event each
		if want == 0 {
			_, ok := e.snapshot(id)
			require.False(t, ok, "a snapshot at version %d, before %d events", version, commands.UserSnapshotInterval)
		} else {
			require.Equal(t, want, e.mustSnapshotOfReplay(id), "snapshot version at stream version %d", version)
			require.Equal(t, want, e.mustLoadAsReplay(id), "the load did not start from the snapshot")
		}
		if version > 2*commands.UserSnapshotInterval {
			return
		}
		tok = e.mustRefresh(tok.RefreshToken)
	}
}

// TestDecisionsAfterSnapshot: once a user has a snapshot, logins,
// refreshes, revocations and a reused refresh token decide exactly as on a
// full replay, and every load equals one.
func TestDecisionsAfterSnapshot(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	const email = "snap@example.com"
	id := e.MustRegister(email).ID
	a := e.mustGrowPast(id, email, commands.UserSnapshotInterval+3)
	require.Positive(t, e.mustLoadAsReplay(id), "no snapshot to start from")

	b := e.MustLogin(email)
	e.mustLoadAsReplay(id)
	pb := e.MustAuthenticate(b.AccessToken)
	b2 := e.mustRefresh(b.RefreshToken)
	e.mustLoadAsReplay(id)

	// A revokes B: B's refresh token and access token stop working.
	pa := e.MustAuthenticate(a.AccessToken)
	require.NoError(t, e.h.RevokeSession(ctx, pa, pb.SessionID, rc))
	e.mustLoadAsReplay(id)
	_, err := e.h.Refresh(ctx, b2.RefreshToken, rc, nil)
	require.ErrorIs(t, err, identity.ErrInvalidRefreshToken, "refresh of a revoked session")
	_, err = e.h.Authenticate(ctx, b2.AccessToken)
	require.ErrorIs(t, err, identity.ErrSessionRevoked)
	require.ErrorIs(t, e.h.RevokeSession(ctx, pa, pb.SessionID, rc), identity.ErrNotFound, "revoking an ended session")

	// A's spent refresh token presented again: reuse, A is revoked.
	a2 := e.mustRefresh(a.RefreshToken)
	_, err = e.h.Refresh(ctx, a.RefreshToken, rc, nil)
	require.ErrorIs(t, err, identity.ErrInvalidRefreshToken, "reused refresh token")
	_, err = e.h.Authenticate(ctx, a2.AccessToken)
	require.ErrorIs(t, err, identity.ErrSessionRevoked, "the session whose token was reused")
	evs := eventTypes(e.events(id))
	require.Equal(t, []string{"UserRefreshTokenReuseDetected", "UserSessionRevoked"}, evs[len(evs)-2:])
	e.mustLoadAsReplay(id)

	me, err := e.h.Me(ctx, pa)
	require.NoError(t, err)
	require.Equal(t, email, me.Email)
	e.MustLogin(email)
	e.mustLoadAsReplay(id)
}

// TestUnusableSnapshotIsReplaced: a snapshot deleted, of another schema,
// undecodable or of another user is not used — the load replays the whole
// stream and decides as before — and the next decision replaces it.
func TestUnusableSnapshotIsReplaced(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		spoil  string
		logged bool // the load says why it replays
	}{
		"deleted":         {spoil: `DELETE FROM snapshots WHERE stream_type = 'user' AND stream_id = $1`},
		"another schema":  {spoil: `UPDATE snapshots SET schema = schema + 1 WHERE stream_type = 'user' AND stream_id = $1`},
		"undecodable":     {spoil: `UPDATE snapshots SET state = '{"sessions": 5}' WHERE stream_type = 'user' AND stream_id = $1`, logged: true},
		"unknown field":   {spoil: `UPDATE snapshots SET state = state || '{"extra": 1}' WHERE stream_type = 'user' AND stream_id = $1`, logged: true},
		"schema inside":   {spoil: `UPDATE snapshots SET state = jsonb_set(state, '{schema}', '99') WHERE stream_type = 'user' AND stream_id = $1`, logged: true},
		"another user's":  {spoil: `UPDATE snapshots SET state = jsonb_set(state, '{id}', '"00000000-0000-0000-0000-000000000001"') WHERE stream_type = 'user' AND stream_id = $1`, logged: true},
		"not json object": {spoil: `UPDATE snapshots SET state = '[]' WHERE stream_type = 'user' AND stream_id = $1`, logged: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := MustEnv(t)
			ctx := context.Background()
			email := fmt.Sprintf("spoilt-%s@example.com", uuid.NewString()[:8])
			id := e.MustRegister(email).ID
			tok := e.mustGrowPast(id, email, commands.UserSnapshotInterval)
			e.mustSnapshotOfReplay(id)

			_, err := e.pool.Exec(ctx, c.spoil, id)
			require.NoError(t, err)
			require.Zero(t, e.mustLoadAsReplay(id), "loaded from a spoilt snapshot")
			require.Equal(t, c.logged, strings.Contains(e.logs.String(), "unusable snapshot"), "log:\n%s", e.logs.String())

			e.mustRefresh(tok.RefreshToken)
			_, head, _, err := e.h.LoadUser(ctx, id)
			require.NoError(t, err)
			require.Equal(t, head, e.mustSnapshotOfReplay(id), "the next decision did not replace the snapshot")
			require.Equal(t, head, e.mustLoadAsReplay(id))
		})
	}
}

// TestConcurrentWritersAcrossSnapshots: sessions of one user refreshing at
// once, through several snapshots, lose nothing and leave snapshots equal
// to a replay. A writer that loses the race for a version conflicts and
// appends nothing, snapshot included; the test then tries it again.
func TestConcurrentWritersAcrossSnapshots(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	const (
		email   = "crowd@example.com"
		writers = 3
	)
	id := e.MustRegister(email).ID
	rounds := int(4*commands.UserSnapshotInterval/writers) + 1
	toks := make([]identity.Tokens, writers)
	for i := range toks {
		toks[i] = e.MustLogin(email)
	}
	_, start, _, err := e.h.LoadUser(context.Background(), id)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			for done := 0; done < rounds; {
				tok, err := e.h.Refresh(context.Background(), toks[i].RefreshToken, rc, nil)
				if errors.Is(err, eventstore.ErrConflict) {
					continue // nothing was stored; the same token is still the current one
				}
				if err != nil {
					errs[i] = err
					return
				}
				toks[i] = tok
				done++
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
	}

	require.Len(t, e.events(id), int(start)+writers*rounds, "events after the race")
	require.GreaterOrEqual(t, e.mustSnapshotOfReplay(id), 2*int64(commands.UserSnapshotInterval))
	e.mustLoadAsReplay(id)
	for _, tok := range toks {
		e.MustAuthenticate(tok.AccessToken)
		e.mustRefresh(tok.RefreshToken)
	}
}
