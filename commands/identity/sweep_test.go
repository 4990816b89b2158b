package identity_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands/identity"
)

// tokenRows counts the secret_tokens rows of kind, spent or not.
func (e *env) tokenRows(kind string) int {
	e.tb.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM secret_tokens WHERE kind = $1`, kind).Scan(&n); err != nil {
		e.tb.Fatal(err)
	}
	return n
}

// sessionTokenRows counts the secret_tokens rows of one session.
func (e *env) sessionTokenRows(id uuid.UUID) int {
	e.tb.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM secret_tokens WHERE session_id = $1`, id).Scan(&n); err != nil {
		e.tb.Fatal(err)
	}
	return n
}

// sessionStatus returns the session row's status, or "" when it is gone.
func (e *env) sessionStatus(id uuid.UUID) string {
	e.tb.Helper()
	var status string
	err := e.pool.QueryRow(context.Background(), `SELECT status FROM auth_sessions WHERE id = $1`, id).Scan(&status)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		e.tb.Fatal(err)
	}
	return status
}

// MustSweep sweeps as of the test clock and returns how many rows went.
func (e *env) MustSweep() int64 {
	e.tb.Helper()
	n, err := e.h.Sweep(context.Background(), e.clock.Now())
	if err != nil {
		e.tb.Fatalf("sweep: %v", err)
	}
	return n
}

func TestSweepKeepsWhatReuseDetectionAndHistoryNeed(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	e.MustRegister("ada@example.com") // its verification token is spent now

	// kept: an active session whose first refresh token is spent.
	active := e.MustLogin("ada@example.com")
	if _, err := e.h.Refresh(ctx, active.RefreshToken, rc, nil); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	// ended: a session logged out at once, its refresh token unspent.
	ended := e.MustLogin("ada@example.com")
	if err := e.h.RevokeSession(ctx, e.MustAuthenticate(ended.AccessToken), ended.SessionID, rc); err != nil {
		t.Fatalf("logout: %v", err)
	}

	if n := e.MustSweep(); n != 0 {
		t.Fatalf("a sweep right away deleted %d rows, want none inside the retention", n)
	}

	e.clock.Advance(identity.TokenRetention + time.Minute)
	if n := e.MustSweep(); n != 1 {
		t.Fatalf("after the token retention the sweep deleted %d rows, want the spent verification token only", n)
	}
	if n := e.tokenRows("verify"); n != 0 {
		t.Fatalf("%d verification tokens left", n)
	}
	if n := e.sessionTokenRows(active.SessionID); n != 2 {
		t.Fatalf("the active session keeps %d token rows, want its spent and its current one", n)
	}
	if n := e.sessionTokenRows(ended.SessionID); n != 1 {
		t.Fatalf("the ended session keeps %d token rows, want its unexpired one", n)
	}
	if s := e.sessionStatus(ended.SessionID); s != "logged_out" {
		t.Fatalf("the ended session is %q, want it kept for its history", s)
	}
	// The kept spent token still detects reuse.
	if _, err := e.h.Refresh(ctx, active.RefreshToken, rc, nil); !errors.Is(err, identity.ErrInvalidRefreshToken) {
		t.Fatalf("reused refresh token: %v, want ErrInvalidRefreshToken", err)
	}
	if s := e.sessionStatus(active.SessionID); s != "revoked" {
		t.Fatalf("after reuse the session is %q, want revoked", s)
	}

	// The ended session is past its history retention: it goes with its token.
	// The revoked session's tokens are spent or expired and go; it stays.
	e.clock.Advance(identity.SessionRetention)
	if n := e.MustSweep(); n != 4 {
		t.Fatalf("after the session retention the sweep deleted %d rows, want 3 tokens and 1 session", n)
	}
	if s := e.sessionStatus(ended.SessionID); s != "" {
		t.Fatalf("the session ended over 30 days ago is still %q", s)
	}
	if s := e.sessionStatus(active.SessionID); s != "revoked" {
		t.Fatalf("the session revoked under 30 days ago is %q, want kept", s)
	}
	if n := e.tokenRows("refresh"); n != 0 {
		t.Fatalf("%d refresh tokens left", n)
	}

	// A minute later the revocation, too, is over 30 days old.
	e.clock.Advance(time.Minute)
	fresh := e.MustLogin("ada@example.com")
	if n := e.MustSweep(); n != 1 {
		t.Fatalf("the last sweep deleted %d rows, want the revoked session only", n)
	}
	if s := e.sessionStatus(active.SessionID); s != "" {
		t.Fatalf("the session revoked over 30 days ago is still %q", s)
	}
	if s := e.sessionStatus(fresh.SessionID); s != "active" || e.sessionTokenRows(fresh.SessionID) != 1 {
		t.Fatalf("a new session is %q with %d tokens, want active with its token", s, e.sessionTokenRows(fresh.SessionID))
	}
	e.MustAuthenticate(fresh.AccessToken)
}

func TestSweepDeletesABacklogInBatches(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	ctx := context.Background()
	view := e.MustRegister("ada@example.com")
	const backlog = 2500 // more than two batches
	if _, err := e.pool.Exec(ctx, `INSERT INTO secret_tokens (digest, kind, user_id, request_id, expires_at)
		SELECT sha256(('backlog-' || i)::bytea), 'reset', $1, gen_random_uuid(), $2
		FROM generate_series(1, $3) i`, view.ID, e.clock.Now().Add(time.Hour), backlog); err != nil {
		t.Fatal(err)
	}
	if n := e.MustSweep(); n != 0 {
		t.Fatalf("the sweep deleted %d unexpired tokens", n)
	}
	e.clock.Advance(time.Hour + identity.TokenRetention + time.Minute)
	if n := e.MustSweep(); n != backlog+1 {
		t.Fatalf("the sweep deleted %d rows, want the %d expired reset tokens and the spent verification token", n, backlog+1)
	}
	if n := e.tokenRows("reset"); n != 0 {
		t.Fatalf("%d reset tokens left", n)
	}
}

// TestSweepForgetsStaleLoginThrottles: the lockout row of an unknown name
// stays while it can still change an answer and goes once its last failure
// no longer counts (user.FailureWindow).
func TestSweepForgetsStaleLoginThrottles(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	count := func() int {
		var n int
		require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM login_throttle`).Scan(&n))
		return n
	}
	for range user.MaxFailedLogins {
		_, err := e.h.Login(context.Background(), identity.LoginInput{Email: "ghost@example.com", Password: "nope nope nope", RequestContext: rc})
		require.Error(t, err)
	}
	e.MustSweep()
	require.Equal(t, 1, count(), "a lockout in force was swept")
	e.clock.Advance(user.FailureWindow - time.Second)
	e.MustSweep()
	require.Equal(t, 1, count(), "swept while the failures still count")
	e.clock.Advance(2 * time.Second)
	e.MustSweep()
	require.Equal(t, 0, count())
}
