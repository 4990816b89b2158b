package personaldata

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/commands"
)

// DefaultRewrapBatch keeps each re-wrapping statement short, as
// `dashtam keys rotate` does for credentials.
const DefaultRewrapBatch = 100

// RewrapCounts says what Rewrap did.
type RewrapCounts struct {
	// Rewrapped is how many data keys were wrapped again under the newest key.
	Rewrapped int
	// Failed is how many wrapped keys did not open with the keyring (a key
	// missing from it, a damaged row); they are left as they are.
	Failed int
	// Remaining is how many live data keys are still wrapped under another
	// key than the newest when Rewrap ends.
	Remaining int
}

// ToRewrap counts the live data keys not wrapped under v's newest key.
func ToRewrap(ctx context.Context, pool *pgxpool.Pool, v commands.Vault) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM personal_data_keys
		WHERE erased_at IS NULL AND key_id <> $1`, v.NewestKeyID()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count data keys to re-wrap: %w", err)
	}
	return n, nil
}

// Rewrap wraps again under v's newest key every live data key wrapped
// under another (`dashtam keys rotate`), so that the old master key can be
// dropped without making anyone's personal data unreadable. It runs beside
// live servers in short batches, and rewrites a row only while it still
// holds the wrapped key that was read: an erasure that lands meanwhile
// (wrapped set to NULL) is never undone. Erased keys are never touched.
// It returns an error only when the database fails.
func Rewrap(ctx context.Context, pool *pgxpool.Pool, v commands.Vault, batch int, progress func(RewrapCounts)) (RewrapCounts, error) {
	if batch <= 0 {
		batch = DefaultRewrapBatch
	}
	newest := v.NewestKeyID()
	var counts RewrapCounts
	after := uuid.Nil
	for {
		rows, err := pool.Query(ctx, `SELECT user_id, wrapped FROM personal_data_keys
			WHERE erased_at IS NULL AND key_id <> $1 AND user_id > $2
			ORDER BY user_id LIMIT $3`, newest, after, batch)
		if err != nil {
			return counts, fmt.Errorf("read data keys to re-wrap: %w", err)
		}
		type stale struct {
			user    uuid.UUID
			wrapped []byte
		}
		found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stale, error) {
			var s stale
			return s, r.Scan(&s.user, &s.wrapped)
		})
		if err != nil {
			return counts, fmt.Errorf("read data keys to re-wrap: %w", err)
		}
		if len(found) == 0 {
			break
		}
		after = found[len(found)-1].user
		b := &pgx.Batch{}
		for _, s := range found {
			raw, err := v.Open(s.user, s.wrapped)
			if err != nil {
				counts.Failed++
				continue
			}
			wrapped, keyID, err := v.Seal(s.user, raw)
			if err != nil || keyID != newest {
				counts.Failed++
				continue
			}
			b.Queue(`UPDATE personal_data_keys SET key_id = $2, wrapped = $3
				WHERE user_id = $1 AND erased_at IS NULL AND wrapped = $4`, s.user, keyID, wrapped, s.wrapped)
		}
		if b.Len() > 0 {
			res := pool.SendBatch(ctx, b)
			for range b.Len() {
				tag, err := res.Exec()
				if err != nil {
					_ = res.Close()
					return counts, fmt.Errorf("re-wrap data keys: %w", err)
				}
				counts.Rewrapped += int(tag.RowsAffected())
			}
			if err := res.Close(); err != nil {
				return counts, fmt.Errorf("re-wrap data keys: %w", err)
			}
		}
		if progress != nil {
			progress(counts)
		}
	}
	n, err := ToRewrap(ctx, pool, v)
	if err != nil {
		return counts, err
	}
	counts.Remaining = n
	return counts, nil
}
