package eventstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/migrations/testdb"

	"github.com/dashtam/dashtam/eventstore"
)

func TestEventsRejectUpdateDeleteTruncate(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	st := newStream(eventstore.StreamUser)
	_, err := s.Append(ctx, st, 0, counterOpened{Name: "kept"})
	require.NoError(t, err)

	// The application role lacks the privileges; the owner, which has
	// them, meets the triggers.
	for who, pool := range map[string]*pgxpool.Pool{"application": s.Pool(), "owner": testdb.Owner(t, s.Pool())} {
		for _, stmt := range []string{
			`UPDATE events SET payload = '{"name":"forged"}'`,
			`DELETE FROM events`,
			`TRUNCATE events`,
		} {
			_, err := pool.Exec(ctx, stmt)
			assert.Error(t, err, "%s role: %s", who, stmt)
		}
	}
	recs, err := s.ReadStream(ctx, st, 0)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.JSONEq(t, `{"name":"kept"}`, string(recs[0].Payload))
}

// tamper changes stored rows the way only a privileged operator could: as
// the owner of events (pool is the application role's, which cannot), with
// the append-only triggers out of the way.
func tamper(t *testing.T, pool *pgxpool.Pool, stmt string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := testdb.Owner(t, pool).Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	var super bool
	require.NoError(t, tx.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super))
	if super {
		_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
	} else {
		_, err = tx.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER USER`)
	}
	require.NoError(t, err)
	_, err = tx.Exec(ctx, stmt, args...)
	require.NoError(t, err)
	if !super {
		_, err = tx.Exec(ctx, `ALTER TABLE events ENABLE TRIGGER USER`)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
}

func TestVerifyChainsFindsTampering(t *testing.T) {
	cases := map[string]func(t *testing.T, s *eventstore.Store, st eventstore.Stream){
		"payload altered": func(t *testing.T, s *eventstore.Store, st eventstore.Stream) {
			tamper(t, s.Pool(), `UPDATE events SET payload = '{"command_id":"forged","amount":"1000000"}' WHERE stream_id = $1 AND version = 2`, st.ID)
		},
		"payload reformatted only": func(t *testing.T, s *eventstore.Store, st eventstore.Stream) {
			// Same JSON value, other bytes: the chain covers the exact bytes stored.
			tamper(t, s.Pool(), `UPDATE events SET payload = (payload::jsonb)::json WHERE stream_id = $1 AND version = 2`, st.ID)
		},
		"metadata altered": func(t *testing.T, s *eventstore.Store, st eventstore.Stream) {
			tamper(t, s.Pool(), `UPDATE events SET metadata = '{"actor":"someone else"}' WHERE stream_id = $1 AND version = 2`, st.ID)
		},
		"event deleted": func(t *testing.T, s *eventstore.Store, st eventstore.Stream) {
			tamper(t, s.Pool(), `DELETE FROM events WHERE stream_id = $1 AND version = 2`, st.ID)
		},
		"recorded_at moved": func(t *testing.T, s *eventstore.Store, st eventstore.Stream) {
			tamper(t, s.Pool(), `UPDATE events SET recorded_at = recorded_at - interval '1 day' WHERE stream_id = $1 AND version = 2`, st.ID)
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := mustStore(t)
			ctx := context.Background()
			other := newStream(eventstore.StreamConnection)
			_, err := s.Append(ctx, other, 0, counterOpened{Name: "untouched"})
			require.NoError(t, err)
			st := newStream(eventstore.StreamAccount)
			_, err = s.Append(ctx, st, 0, counterOpened{}, counterIncremented{CommandID: "a", Amount: "1"}, counterIncremented{CommandID: "b", Amount: "2"})
			require.NoError(t, err)

			rep, brk, err := s.VerifyChains(ctx, nil)
			require.NoError(t, err)
			require.Nil(t, brk)
			assert.Equal(t, eventstore.VerifyReport{Events: 4, Streams: 2}, rep)

			mutate(t, s, st)
			_, brk, err = s.VerifyChains(ctx, nil)
			require.NoError(t, err)
			require.NotNil(t, brk, "tampering must be detected")
			assert.Equal(t, st, brk.Stream)
			assert.Contains(t, []int64{2, 3}, brk.Version)
			assert.Contains(t, brk.Error(), st.String())
		})
	}
}
