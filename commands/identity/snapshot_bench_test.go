package identity_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
)

// longStream is the stream length BenchmarkRefreshLongStream starts from:
// five days of a user with ten sessions refreshing every 15 minutes.
const longStream = 5000

// BenchmarkRefreshLongStream refreshes the sessions of a user whose stream
// holds longStream events, with no snapshots ("replay": every refresh folds
// the whole stream, as before snapshots) and with snapshots every 10 to 400
// events, SnapshotInterval among them, all in one run on one database. Each refresh appends an event, so
// with snapshots the tail a load folds cycles through the interval and the
// rate is its average, snapshot writes included. "short" refreshes users
// with fewer than 25 events, who never have a snapshot, so looking for one
// is pure cost. Refreshes are real: token lookup, load, decision, session
// and token rows, append, commit.
func BenchmarkRefreshLongStream(b *testing.B) {
	e := MustEnv(b)
	const sessions = 10
	long := benchUser(b, e, "long@example.com", sessions)
	for grown := 0; e.streamVersion(long.id) < longStream; grown++ {
		e.clock.Advance(15 * time.Minute / sessions)
		long.refresh(b, grown%sessions)
	}

	walLSN := func(b *testing.B) string {
		var lsn string
		if err := e.pool.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
			b.Fatal(err)
		}
		return lsn
	}
	report := func(b *testing.B, u *benchSessions, walFrom string) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
		var wal float64
		if err := e.pool.QueryRow(context.Background(), `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)`, walFrom).Scan(&wal); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(wal/float64(b.N), "WAL-B/refresh")
		b.ReportMetric(float64(e.streamVersion(u.id)), "stream-events")
		var size int64
		if err := e.pool.QueryRow(context.Background(), `SELECT coalesce(max(octet_length(state::text)), 0)
			FROM snapshots WHERE stream_type = 'user' AND stream_id = $1`, u.id).Scan(&size); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(size), "snapshot-bytes")
	}
	intervals := []int64{0, 10, 25, 50, 100, 400}
	if !slices.Contains(intervals, commands.UserSnapshotInterval) {
		intervals = append(intervals, commands.UserSnapshotInterval)
	}
	for _, n := range intervals {
		name := fmt.Sprintf("long/snapshot-every-%d", n)
		if n == 0 {
			name = "long/replay"
		}
		b.Run(name, func(b *testing.B) {
			defer e.h.SetSnapshotInterval(n)()
			wal := walLSN(b)
			i := 0
			for b.Loop() {
				long.refresh(b, i%sessions)
				i++
			}
			report(b, long, wal)
		})
	}

	for _, n := range []int64{0, commands.UserSnapshotInterval} {
		name := "short/replay"
		if n > 0 {
			name = "short/snapshots"
		}
		b.Run(name, func(b *testing.B) {
			defer e.h.SetSnapshotInterval(n)()
			const perUser = 15 // with registration and login, 20 events: below any interval measured but 10
			var u *benchSessions
			wal := walLSN(b)
			i := 0
			for b.Loop() {
				if i%perUser == 0 {
					b.StopTimer()
					u = benchUser(b, e, fmt.Sprintf("short-%s@example.com", uuid.NewString()), 1)
					b.StartTimer()
				}
				u.refresh(b, 0)
				i++
			}
			report(b, u, wal)
		})
	}
}

// benchSessions is a user and the current refresh tokens of its sessions.
type benchSessions struct {
	e      *env
	id     uuid.UUID
	tokens []string
}

func benchUser(b *testing.B, e *env, email string, sessions int) *benchSessions {
	b.Helper()
	u := &benchSessions{e: e, id: e.MustRegister(email).ID}
	for range sessions {
		u.tokens = append(u.tokens, e.MustLogin(email).RefreshToken)
	}
	return u
}

// refresh refreshes session i and keeps its new token.
func (u *benchSessions) refresh(b *testing.B, i int) {
	tok, err := u.e.h.Refresh(context.Background(), u.tokens[i], rc, nil)
	if err != nil {
		b.Fatal(err)
	}
	u.tokens[i] = tok.RefreshToken
}

// streamVersion is the version of user id's stream.
func (e *env) streamVersion(id uuid.UUID) int64 {
	e.tb.Helper()
	var v int64
	if err := e.pool.QueryRow(context.Background(), `SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1`, id).Scan(&v); err != nil {
		e.tb.Fatal(err)
	}
	return v
}
