package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

// tamperSeed is the audit signing key of the tamper tests' data dirs.
var tamperSeed = func() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(0xA0 + i)
	}
	return b
}()

// checkpointedLog is a log with real hash chains, a signed checkpoint over
// all of it (in the database and in dataDir/checkpoints), a few events after
// the checkpoint, and the streams read model.
type checkpointedLog struct {
	// url is the application role's, ownerURL the owner's.
	url, ownerURL string
	pool          *pgxpool.Pool
	dataDir       string
	store         *eventstore.Store
	// streams holds three streams of four events each, appended round
	// robin; the third has no owner (owner_id NULL), like a system stream.
	streams []eventstore.Stream
	// pos maps "stream index/version" to the event's global position.
	pos    map[[2]int]int64
	newest eventstore.Checkpoint
}

func newCheckpointedLog(t *testing.T) *checkpointedLog {
	t.Helper()
	return buildCheckpointedLog(t, false)
}

// buildCheckpointedLog is newCheckpointedLog; with firstAlone, a first
// checkpoint covers the log's first event only, as when the xid horizon
// held the checkpointer back while the log was written.
func buildCheckpointedLog(t *testing.T, firstAlone bool) *checkpointedLog {
	t.Helper()
	ctx := context.Background()
	l := &checkpointedLog{dataDir: t.TempDir(), pos: map[[2]int]int64{}}
	l.url, l.ownerURL = testdb.NewURLs(t)
	require.NoError(t, os.WriteFile(filepath.Join(l.dataDir, signingKeyFile), []byte(base64.StdEncoding.EncodeToString(tamperSeed)), 0o600))
	pool, err := pgxpool.New(ctx, l.url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	l.pool = pool
	reg := eventstore.NewRegistry()
	eventstore.Register[auditTestConnected](reg, 1)
	eventstore.Register[auditTestBalanceRecorded](reg, 1)
	at := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	l.store, err = eventstore.New(pool, reg, eventstore.WithClock(func() time.Time { at = at.Add(time.Minute); return at }))
	require.NoError(t, err)
	owner := uuid.New()
	for i, typ := range []eventstore.StreamType{eventstore.StreamConnection, eventstore.StreamAccount, eventstore.StreamAccount} {
		l.streams = append(l.streams, eventstore.Stream{Type: typ, ID: uuid.New()})
		_ = i
	}
	signer, err := eventstore.NewSigner(tamperSeed)
	require.NoError(t, err)
	dir, err := eventstore.OpenCheckpointDir(filepath.Join(l.dataDir, "checkpoints"))
	require.NoError(t, err)
	cp, err := eventstore.NewCheckpointer(l.store, signer, dir)
	require.NoError(t, err)
	checkpointUpTo := func(size int64) {
		require.Eventually(t, func() bool {
			// Checkpoint only once the horizon has passed the whole log,
			// or a transaction of a parallel test would leave an extra
			// checkpoint of part of it, which moves what verify names.
			if recs, err := l.store.ReadAll(ctx, eventstore.Position{}, 100); err != nil || int64(len(recs)) < size {
				return false
			}
			_, err := cp.CheckpointAll(ctx, true)
			require.NoError(t, err)
			l.newest, _, err = l.store.NewestCheckpoint(ctx)
			require.NoError(t, err)
			return l.newest.TreeSize == size
		}, 30*time.Second, 5*time.Millisecond, "the checkpoint never covered the log (xid horizon held back?)")
	}
	md := eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "user:" + owner.String(), IP: "192.0.2.1"})
	system := eventstore.WithMetadata(ctx, eventstore.Metadata{Actor: "system"})
	appendRound := func(v int) {
		for i, s := range l.streams {
			var e eventstore.Event = auditTestBalanceRecorded{Amount: "10" + string(rune('0'+v)) + ".00"}
			if v == 1 {
				e = auditTestConnected{Institution: "sandbox"}
			}
			ctx := md
			if i == 2 {
				ctx = system
			}
			res, err := l.store.Append(ctx, s, int64(v-1), e)
			require.NoError(t, err)
			l.pos[[2]int{i, v}] = res.LastPosition
			if firstAlone && v == 1 && i == 0 {
				checkpointUpTo(1)
			}
		}
	}
	for v := 1; v <= 4; v++ {
		appendRound(v)
	}
	checkpointUpTo(12)
	appendRound(5) // after the checkpoint: covered by the chains only
	code, out, errOut := runAuditCLI(t, "--database-url", l.url, "--database-migrate-url", l.ownerURL, "projections", "rebuild", "streams")
	require.Equal(t, 0, code, "rebuild streams: %s %s", out, errOut)
	return l
}

// verify runs audit verify on the log with its data dir.
func (l *checkpointedLog) verify(t *testing.T, extra ...string) (int, string, string) {
	t.Helper()
	return runAuditCLI(t, append([]string{"--data-dir", l.dataDir, "--database-url", l.url, "audit", "verify"}, extra...)...)
}

// superuser runs fn in a transaction in which no trigger fires, as a
// superuser would: connected as the cluster's bootstrap superuser
// (postgres) with session_replication_role = replica when it accepts us
// (the private test cluster does), otherwise as the owner role
// (DATABASE_MIGRATE_URL) with the tables' triggers disabled, which the
// owner may do. The application role can do neither
// (migrations/privileges_test.go).
func (l *checkpointedLog) superuser(t *testing.T, fn func(ctx context.Context, tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(l.url)
	require.NoError(t, err)
	u.User = url.User("postgres")
	conn, err := pgx.Connect(ctx, u.String())
	tables := []string{"events", "audit_checkpoints", "audit_tree_leaves", "audit_tree_nodes"}
	if err == nil {
		var super bool
		if err := conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || !super {
			conn.Close(ctx)
			conn = nil
		}
	} else {
		conn = nil
	}
	owner := conn == nil
	if owner {
		t.Log("no superuser connection: tampering as the tables' owner with triggers disabled")
		conn, err = pgx.Connect(ctx, l.ownerURL)
		require.NoError(t, err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	if owner {
		for _, tbl := range tables {
			_, err := tx.Exec(ctx, `ALTER TABLE `+tbl+` DISABLE TRIGGER USER`)
			require.NoError(t, err)
		}
	} else {
		_, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
		require.NoError(t, err)
	}
	fn(ctx, tx)
	if owner {
		for _, tbl := range tables {
			_, err := tx.Exec(ctx, `ALTER TABLE `+tbl+` ENABLE TRIGGER USER`)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tx.Commit(ctx))
}

// deleteStream deletes a stream's events and its streams row, as a
// superuser would.
func (l *checkpointedLog) deleteStream(t *testing.T, s eventstore.Stream) {
	t.Helper()
	l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
		_, err := tx.Exec(ctx, `DELETE FROM events WHERE stream_id = $1`, s.ID)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `DELETE FROM streams WHERE stream_id = $1`, s.ID)
		require.NoError(t, err)
	})
}

// rechain recomputes prev_hash and hash of every event of a stream, in
// version order, from the stored columns: what an attacker who knows the
// TestAuditVerifyNamesADeletionAtACheckpointsEnd deletes a stream whose
// first event is all a first checkpoint covers: the log's next event lies
// past that checkpoint's end, and verify must name the deleted event, not
// call the next one inserted (the first checkpoint of a log written while
// the xid horizon held the checkpointer back looks like this).
func TestAuditVerifyNamesADeletionAtACheckpointsEnd(t *testing.T) {
	t.Parallel()
	l := buildCheckpointedLog(t, true)
	l.deleteStream(t, l.streams[0])
	code, out, errOut := l.verify(t)
	require.Equal(t, 1, code, "verify output: %s %s", out, errOut)
	require.Contains(t, out, "position "+itoa(l.pos[[2]int{0, 1}]), "verify output: %s", out)
	require.Contains(t, out, "checkpoint 1", "verify output: %s", out)
	require.Contains(t, out, "missing from the log: deleted", "verify output: %s", out)
}

// digest does to hide a change from the chains.
func rechain(t *testing.T, ctx context.Context, tx pgx.Tx, streamID uuid.UUID) {
	t.Helper()
	rows, err := tx.Query(ctx, `SELECT global_position, stream_type, stream_id, version, event_id, event_type, schema_version,
		owner_id, payload::text, metadata::text, recorded_at, digest_version FROM events WHERE stream_id = $1 ORDER BY version`, streamID)
	require.NoError(t, err)
	var recs []eventstore.Record
	for rows.Next() {
		var (
			r        eventstore.Record
			typ      string
			owner    *uuid.UUID
			pay, met string
		)
		require.NoError(t, rows.Scan(&r.GlobalPosition, &typ, &r.Stream.ID, &r.Version, &r.EventID, &r.EventType,
			&r.SchemaVersion, &owner, &pay, &met, &r.RecordedAt, &r.DigestVersion))
		r.Stream.Type = eventstore.StreamType(typ)
		r.SetOwner(owner)
		r.Payload, r.RawMetadata = json.RawMessage(pay), json.RawMessage(met)
		recs = append(recs, r)
	}
	require.NoError(t, rows.Err())
	prev := eventstore.ZeroHash
	for _, r := range recs {
		r.PrevHash = prev
		h, err := eventstore.ChainHash(r)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `UPDATE events SET prev_hash = $2, hash = $3 WHERE global_position = $1`, r.GlobalPosition, prev, h)
		require.NoError(t, err)
		prev = h
	}
}

func TestAuditVerifyTamperMatrix(t *testing.T) {
	t.Parallel()
	type tc struct {
		name string
		// tamper changes the log; it returns the substrings verify's
		// output must contain (the first BROKEN line's position first).
		tamper func(t *testing.T, l *checkpointedLog) []string
		args   []string
	}
	alter := func(column, set string) tc {
		return tc{name: "alter " + column + " and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[1]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET `+set+` WHERE stream_id = $1 AND version = 2`, s.ID)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
			})
			return []string{"position " + itoa(l.pos[[2]int{1, 2}]), "altered"}
		}}
	}
	cases := []tc{
		alter("payload", `payload = '{"amount":"1000000.00"}'`),
		alter("metadata", `metadata = '{"actor":"someone else"}'`),
		alter("recorded_at", `recorded_at = recorded_at - interval '1 day'`),
		alter("event_type", `event_type = 'AuditTestConnected'`),
		alter("schema_version", `schema_version = 2`),
		alter("owner_id", `owner_id = gen_random_uuid()`),
		alter("event_id", `event_id = gen_random_uuid()`),
		{name: "alter stream_type and stream_id of a whole stream and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[1]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				moved := uuid.New()
				_, err := tx.Exec(ctx, `UPDATE events SET stream_type = 'transaction', stream_id = $2 WHERE stream_id = $1`, s.ID, moved)
				require.NoError(t, err)
				_, err = tx.Exec(ctx, `UPDATE streams SET stream_type = 'transaction', stream_id = $2 WHERE stream_id = $1`, s.ID, moved)
				require.NoError(t, err)
				rechain(t, ctx, tx, moved)
			})
			return []string{"position " + itoa(l.pos[[2]int{1, 1}]), "altered"}
		}},
		{name: "owner_id NULL to the zero UUID, hashes not recomputed", tamper: func(t *testing.T, l *checkpointedLog) []string {
			// Digest version 2 hashes owner_id's NULL-ness: the blind spot
			// of version 1 is closed for every row the store writes now.
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET owner_id = $2 WHERE stream_id = $1 AND version = 2`, l.streams[2].ID, uuid.Nil)
				require.NoError(t, err)
			})
			return []string{"position " + itoa(l.pos[[2]int{2, 2}]), "stored hash does not match"}
		}},
		{name: "owner_id NULL to the zero UUID and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[2]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET owner_id = $2 WHERE stream_id = $1 AND version = 2`, s.ID, uuid.Nil)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
			})
			return []string{"position " + itoa(l.pos[[2]int{2, 2}]), "altered"}
		}},
		{name: "owner_id to NULL and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[1]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET owner_id = NULL WHERE stream_id = $1 AND version = 2`, s.ID)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
			})
			return []string{"position " + itoa(l.pos[[2]int{1, 2}]), "altered"}
		}},
		{name: "digest_version 2 to 1, hashes not recomputed", tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET digest_version = 1 WHERE stream_id = $1 AND version = 3`, l.streams[1].ID)
				require.NoError(t, err)
			})
			return []string{"position " + itoa(l.pos[[2]int{1, 3}]), "digest version 1 follows version 2"}
		}},
		{name: "digest_version 2 to 1 after a version 2 event and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[1]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET digest_version = 1 WHERE stream_id = $1 AND version >= 3`, s.ID)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
			})
			return []string{"position " + itoa(l.pos[[2]int{1, 3}]), "digest version 1 follows version 2", "altered"}
		}},
		{name: "a whole stream relabelled to digest version 1 and rechained", tamper: func(t *testing.T, l *checkpointedLog) []string {
			// Every chain holds (version 1 throughout, no downgrade); only
			// the checkpoint sees the rows' hashes change.
			s := l.streams[0]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET digest_version = 1 WHERE stream_id = $1`, s.ID)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
			})
			return []string{"log: position " + itoa(l.pos[[2]int{0, 1}]), "altered"}
		}},
		{name: "alter hash without rechaining", tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET hash = sha256(hash) WHERE global_position = $1`, l.pos[[2]int{2, 3}])
				require.NoError(t, err)
			})
			return []string{"position " + itoa(l.pos[[2]int{2, 3}]), "stored hash does not match"}
		}},
		{name: "alter prev_hash without rechaining", tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events SET prev_hash = sha256(prev_hash) WHERE global_position = $1`, l.pos[[2]int{0, 2}])
				require.NoError(t, err)
			})
			return []string{"position " + itoa(l.pos[[2]int{0, 2}]), "prev_hash does not match"}
		}},
		{name: "insert an event before the checkpoint and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[1]
			var inserted int64
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				// Make room at version 2, then insert there with the
				// transaction id of version 1, so it sorts inside the
				// checkpointed part of the log.
				_, err := tx.Exec(ctx, `UPDATE events SET version = version + 1000 WHERE stream_id = $1 AND version >= 2`, s.ID)
				require.NoError(t, err)
				_, err = tx.Exec(ctx, `UPDATE events SET version = version - 999 WHERE stream_id = $1 AND version > 1000`, s.ID)
				require.NoError(t, err)
				err = tx.QueryRow(ctx, `INSERT INTO events (transaction_id, stream_type, stream_id, version, event_id, event_type,
					schema_version, owner_id, payload, metadata, recorded_at, prev_hash, hash)
					SELECT transaction_id, stream_type, stream_id, 2, gen_random_uuid(), 'AuditTestBalanceRecorded', 1, owner_id,
					       '{"amount":"-500.00"}', metadata, recorded_at + interval '1 second', hash, hash
					FROM events WHERE stream_id = $1 AND version = 1 RETURNING global_position`, s.ID).Scan(&inserted)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
			})
			return []string{"position " + itoa(inserted), "inserted"}
		}},
		{name: "delete an event before the checkpoint and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[2]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `DELETE FROM events WHERE stream_id = $1 AND version = 2`, s.ID)
				require.NoError(t, err)
				_, err = tx.Exec(ctx, `UPDATE events SET version = version - 1 WHERE stream_id = $1 AND version > 2`, s.ID)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
				_, err = tx.Exec(ctx, `UPDATE streams SET version = version - 1 WHERE stream_id = $1`, s.ID)
				require.NoError(t, err)
			})
			return []string{"position " + itoa(l.pos[[2]int{2, 2}]), "missing"}
		}},
		{name: "reorder two events of a stream and rechain", tamper: func(t *testing.T, l *checkpointedLog) []string {
			s := l.streams[0]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE events e SET payload = o.payload, recorded_at = o.recorded_at
					FROM events o WHERE e.stream_id = $1 AND o.stream_id = $1
					AND ((e.version = 2 AND o.version = 3) OR (e.version = 3 AND o.version = 2))`, s.ID)
				require.NoError(t, err)
				rechain(t, ctx, tx, s.ID)
			})
			return []string{"position " + itoa(l.pos[[2]int{0, 2}]), "altered"}
		}},
		{name: "reorder events in commit order", tamper: func(t *testing.T, l *checkpointedLog) []string {
			a, b := l.pos[[2]int{0, 2}], l.pos[[2]int{2, 3}]
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				// No chain covers the commit order; the checkpoint does.
				_, err := tx.Exec(ctx, `UPDATE events e SET transaction_id = o.transaction_id
					FROM events o WHERE (e.global_position, o.global_position) IN (($1, $2), ($2, $1))`, a, b)
				require.NoError(t, err)
			})
			return []string{"position " + itoa(a), "reordered"}
		}},
		{name: "delete a stream and its read-model row", tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.deleteStream(t, l.streams[0])
			return []string{"position " + itoa(l.pos[[2]int{0, 1}]), "missing"}
		}},
		{name: "truncate the log and the read model", tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `TRUNCATE events, streams`)
				require.NoError(t, err)
			})
			return []string{"position " + itoa(l.pos[[2]int{0, 1}]), "missing"}
		}},
		{name: "truncate everything, checkpoints included", args: []string{"--checkpoints", ""}, tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `TRUNCATE events, streams, audit_checkpoints, audit_tree_leaves, audit_tree_nodes`)
				require.NoError(t, err)
			})
			return []string{"checkpoint 1", "not in the database", "the log holds only 0 events"}
		}},
		{name: "forge a checkpoint's root", tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE audit_checkpoints SET root = sha256(root) WHERE seq = 1`)
				require.NoError(t, err)
			})
			return []string{"signature: checkpoint 1", "signature does not verify"}
		}},
		{name: "forge a checkpoint with another key", tamper: func(t *testing.T, l *checkpointedLog) []string {
			forger, err := eventstore.NewSigner(make([]byte, 32))
			require.NoError(t, err)
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `UPDATE audit_checkpoints SET key_id = $1, public_key = $2 WHERE seq = 1`,
					forger.KeyID(), []byte(forger.PublicKey()))
				require.NoError(t, err)
			})
			return []string{"signature: checkpoint 1", "not trusted"}
		}},
		{name: "delete a checkpoint kept outside", args: []string{"--checkpoints", ""}, tamper: func(t *testing.T, l *checkpointedLog) []string {
			l.superuser(t, func(ctx context.Context, tx pgx.Tx) {
				_, err := tx.Exec(ctx, `DELETE FROM audit_checkpoints`)
				require.NoError(t, err)
			})
			return []string{"copy: checkpoint 1", "not in the database"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newCheckpointedLog(t)
			args := append([]string(nil), c.args...)
			for i, a := range args {
				if a == "" {
					args[i] = filepath.Join(l.dataDir, "checkpoints")
				}
			}
			code, stdout, stderr := l.verify(t, args...)
			require.Equal(t, 0, code, "before tampering:\n%s%s", stdout, stderr)
			require.Contains(t, stdout, "the log matches every one (12 events covered)")
			want := c.tamper(t, l)
			code, stdout, stderr = l.verify(t, args...)
			require.Equal(t, 1, code, "after tampering:\n%s%s", stdout, stderr)
			var broken []string
			for _, line := range strings.Split(stdout, "\n") {
				if strings.HasPrefix(line, "BROKEN: ") {
					broken = append(broken, line)
				}
			}
			require.NotEmpty(t, broken, stdout)
			all := strings.Join(broken, "\n")
			for _, w := range want {
				require.Contains(t, all, w, "verify output:\n%s", stdout)
			}
			require.Equal(t, 1, strings.Count(stderr, "audit verify: "), "stderr names the first break: %q", stderr)
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
