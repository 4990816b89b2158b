package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

func TestAuditStateCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	clock := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	p, err := connect(ctx, &globalOptions{databaseURL: url})
	require.NoError(t, err)
	defer p.Close()
	store, err := eventstore.New(p, newEventRegistry(), eventstore.WithClock(func() time.Time { return clock }))
	require.NoError(t, err)
	repo, err := eventstore.NewRepository(store, commands.UserAggregate())
	require.NoError(t, err)
	id := uuid.New()
	decide := func(f func(u *user.User) ([]user.Event, error)) {
		_, err := repo.Update(ctx, id, func(_ context.Context, _ *eventstore.Tx, u *user.User) (eventstore.Decision[user.Event], error) {
			return eventstore.Decide(f(u))
		})
		require.NoError(t, err)
	}
	decide(func(u *user.User) ([]user.Event, error) {
		return u.Register(id, "state@example.com", user.RoleUser, clock)
	})
	clock = clock.Add(time.Hour)
	decide(func(u *user.User) ([]user.Event, error) { return u.SetRoles([]user.Role{user.RoleAuditor}, clock) })

	state := func(asOf string) stateJSON {
		code, stdout, stderr := runAuditCLI(t, "--database-url", url, "audit", "state", "--stream", "user:"+id.String(), "--as-of", asOf)
		require.Equal(t, 0, code, stderr)
		var out struct {
			stateJSON
			State commands.UserState `json:"state"`
		}
		require.NoError(t, json.Unmarshal([]byte(stdout), &out))
		out.stateJSON.State = out.State
		return out.stateJSON
	}
	before := state("2026-04-01T12:30:00Z")
	assert.EqualValues(t, 1, before.Version)
	assert.Equal(t, []user.Role{user.RoleUser}, before.State.(commands.UserState).Roles)
	after := state("2026-04-01T13:00:00Z")
	assert.EqualValues(t, 3, after.Version, "a grant and a revoke")
	assert.Equal(t, []user.Role{user.RoleAuditor}, after.State.(commands.UserState).Roles)
	assert.Greater(t, after.Position, before.Position)

	code, _, stderr := runAuditCLI(t, "--database-url", url, "audit", "state", "--stream", "user:"+id.String(), "--as-of", "2026-04-01")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "had no event recorded by")
	code, _, stderr = runAuditCLI(t, "--database-url", url, "audit", "state", "--stream", "account:"+id.String(), "--as-of", "2026-04-01")
	assert.Equal(t, 1, code, "an account stream with no event: %s", stderr)
	for _, args := range [][]string{
		{"--stream", "user:" + id.String()},
		{"--as-of", "2026-04-01"},
		{"--stream", "ledger:" + id.String(), "--as-of", "2026-04-01"},
		{"--stream", "user:" + id.String(), "--as-of", "yesterday"},
	} {
		code, _, stderr := runAuditCLI(t, append([]string{"--database-url", url, "audit", "state"}, args...)...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
	}
}
