package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dashtam/dashtam/eventstore"
)

// VerifyIgnorer is implemented by a projector whose tables hold columns
// that legitimately differ between the live tables and a rebuild of them
// (a time of application, a sequence): Verify leaves them out. Columns
// derived from the log alone must never be listed.
type VerifyIgnorer interface {
	// VerifyIgnore maps a logical table name to the columns to leave out.
	VerifyIgnore() map[string][]string
}

// maxVerifySamples bounds the differing rows a verification reports per
// table and side; the counts are always complete.
const maxVerifySamples = 10

// maxVerifyAttempts bounds how often Verify catches the shadow up to a
// live checkpoint that moved before the comparison could start.
const maxVerifyAttempts = 50

// ErrVerifyMoving reports a live projection that kept moving between
// Verify's catch-up and its comparison on every attempt.
var ErrVerifyMoving = errors.New("projections: the live projection kept moving; verify again")

// VerifyResult is what a verification found: the position at which live
// and rebuilt tables were compared, and each table's differences.
type VerifyResult struct {
	Name     string
	Position eventstore.Position
	Tables   []TableDiff
}

// Clean reports whether every table matched its rebuild row for row.
func (r VerifyResult) Clean() bool {
	for _, t := range r.Tables {
		if t.OnlyLive > 0 || t.OnlyRebuilt > 0 {
			return false
		}
	}
	return true
}

// TableDiff is one table's comparison: its row count, how many rows only
// the live table holds and how many only the rebuild (a changed row counts
// on both sides), and a few of each as JSON.
type TableDiff struct {
	Table          string
	LiveRows       int64
	OnlyLive       int64
	OnlyRebuilt    int64
	LiveSamples    []string
	RebuiltSamples []string
	IgnoredColumns []string
}

// Verify rebuilds the projector called name from the whole log into shadow
// tables, exactly up to the live checkpoint, and compares every row of
// every live table with its rebuild (EXCEPT ALL both ways, on the rows as
// JSON less the columns VerifyIgnorer lists), without swapping anything:
// the live tables keep serving and their consumer keeps running. The
// shadow tables are dropped at the end. progress, if not nil, is called as
// in Rebuild.
//
// The comparison runs as one statement, so it sees live and shadow tables
// in one snapshot, and it counts only if both checkpoints are equal in that
// snapshot; when the live consumer moved meanwhile, the shadow catches up
// to its new checkpoint and the comparison runs again. No transaction
// stays open: catching up commits batch by batch like a consumer, and the
// comparison is a read-only statement, which holds no transaction id and
// so holds back no projector however long it runs.
func (m *Manager) Verify(ctx context.Context, name string, progress func(done, total int64)) (VerifyResult, error) {
	p, err := m.Projector(name)
	if err != nil {
		return VerifyResult{}, err
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	pool := m.store.Pool()
	// The shadow tables are a rebuild's: one at a time, whoever runs it.
	unlock, err := m.lockRebuild(ctx, name)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify %s: %w", name, err)
	}
	defer unlock()
	shadow := shadowTables(p)
	if err := m.prepareShadow(ctx, p, shadow); err != nil {
		return VerifyResult{}, fmt.Errorf("verify %s: %w", name, err)
	}
	defer m.dropShadow(context.WithoutCancel(ctx), p, shadow)
	if err := ensureCheckpoint(ctx, pool, name); err != nil {
		return VerifyResult{}, fmt.Errorf("verify %s: %w", name, err)
	}

	var total, done int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
		return VerifyResult{}, fmt.Errorf("verify %s: count events: %w", name, err)
	}
	report := func(n int) {
		done += int64(n)
		total = max(total, done)
		progress(done, total)
	}
	progress(0, total)
	c := newConsumer(pool, p, shadowName(name), shadow, m.cfg, nil)
	compare := verifySQL(p, LiveTables(p), shadow)
	for range maxVerifyAttempts {
		live, err := readCheckpoint(ctx, pool, name)
		if err != nil {
			return VerifyResult{}, fmt.Errorf("verify %s: %w", name, err)
		}
		c.until = &live
		c.forget()
		if err := m.runToEnd(ctx, c, report); err != nil {
			return VerifyResult{}, fmt.Errorf("verify %s: %w", name, err)
		}
		res, same, err := runVerify(ctx, pool, compare, name)
		if err != nil {
			return VerifyResult{}, fmt.Errorf("verify %s: compare: %w", name, err)
		}
		if same {
			res.Position = live
			progress(done, done)
			return res, nil
		}
	}
	return VerifyResult{}, fmt.Errorf("verify %s: %w", name, ErrVerifyMoving)
}

// lockRebuild takes the session lock that keeps rebuilds (and
// verifications, which use the same shadow tables) of name one at a time,
// and returns its release.
func (m *Manager) lockRebuild(ctx context.Context, name string) (func(), error) {
	conn, err := m.store.Pool().Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockRebuild, nameKey(name)).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("take rebuild lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, ErrRebuildRunning
	}
	return func() {
		// The connection goes back to the pool: the session lock must not go with it.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, lockRebuild, nameKey(name)); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}, nil
}

// verifyQuery is the one comparison statement and the tables it covers.
type verifyQuery struct {
	sql     string
	ignored map[string][]string
	tables  []string
}

// verifySQL builds the statement comparing every table of p: a row per
// table with its row count, then up to maxVerifySamples differing rows per
// table and side with the side's full count, all gated on both checkpoints
// being equal in the statement's snapshot (a one-time filter, so nothing is
// compared when they are not).
func verifySQL(p Projector, live, shadow TableNames) verifyQuery {
	q := verifyQuery{ignored: map[string][]string{}, tables: p.Tables()}
	if vi, ok := p.(VerifyIgnorer); ok {
		q.ignored = vi.VerifyIgnore()
	}
	var parts []string
	for i, t := range p.Tables() {
		minus := ""
		for _, c := range q.ignored[t] {
			minus += " - " + quoteLiteral(c)
		}
		l := fmt.Sprintf(`SELECT to_jsonb(x)%s AS r FROM %s x`, minus, live.Of(t))
		s := fmt.Sprintf(`SELECT to_jsonb(x)%s AS r FROM %s x`, minus, shadow.Of(t))
		parts = append(parts,
			fmt.Sprintf(`SELECT %d AS tbl, 0 AS side, (SELECT count(*) FROM %s) AS n, NULL::jsonb AS r`, i, live.Of(t)),
			fmt.Sprintf(`SELECT %d, 1, NULL, r FROM ((%s) EXCEPT ALL (%s)) d`, i, l, s),
			fmt.Sprintf(`SELECT %d, 2, NULL, r FROM ((%s) EXCEPT ALL (%s)) d`, i, s, l))
	}
	q.sql = `WITH cp AS (
	SELECT (SELECT (transaction_id, global_position) FROM projection_checkpoints WHERE name = $1)
	     = (SELECT (transaction_id, global_position) FROM projection_checkpoints WHERE name = $2) AS same
), d AS (
	` + strings.Join(parts, "\n\tUNION ALL\n\t") + `
), ranked AS (
	SELECT tbl, side, n, r, count(*) OVER (PARTITION BY tbl, side) AS total,
	       row_number() OVER (PARTITION BY tbl, side ORDER BY r::text) AS rn
	  FROM d WHERE (SELECT coalesce(same, false) FROM cp)
)
SELECT (SELECT coalesce(same, false) FROM cp), tbl, side, coalesce(n, total), r::text
  FROM ranked WHERE rn <= ` + fmt.Sprint(maxVerifySamples) + `
 ORDER BY tbl, side, rn`
	return q
}

// runVerify runs the comparison; same is false when the checkpoints
// differed in its snapshot and the result means nothing.
func runVerify(ctx context.Context, q eventstore.Querier, v verifyQuery, name string) (VerifyResult, bool, error) {
	res := VerifyResult{Name: name, Tables: make([]TableDiff, len(v.tables))}
	for i, t := range v.tables {
		res.Tables[i] = TableDiff{Table: t, IgnoredColumns: v.ignored[t]}
	}
	rows, err := q.Query(ctx, v.sql, name, shadowName(name))
	if err != nil {
		return VerifyResult{}, false, err
	}
	defer rows.Close()
	// Equal checkpoints always yield each table's count row; no row at
	// all means the filter held everything back.
	same := false
	for rows.Next() {
		var (
			ok        bool
			tbl, side int
			n         int64
			r         *string
		)
		if err := rows.Scan(&ok, &tbl, &side, &n, &r); err != nil {
			return VerifyResult{}, false, err
		}
		same = ok
		if tbl < 0 || tbl >= len(res.Tables) {
			return VerifyResult{}, false, fmt.Errorf("comparison named table %d of %d", tbl, len(res.Tables))
		}
		d := &res.Tables[tbl]
		switch side {
		case 0:
			d.LiveRows = n
		case 1:
			d.OnlyLive = n
			d.LiveSamples = append(d.LiveSamples, deref(r))
		case 2:
			d.OnlyRebuilt = n
			d.RebuiltSamples = append(d.RebuiltSamples, deref(r))
		}
	}
	if err := rows.Err(); err != nil {
		return VerifyResult{}, false, err
	}
	if !same {
		return VerifyResult{}, false, nil
	}
	return res, true, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
