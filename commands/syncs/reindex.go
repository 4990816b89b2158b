package syncs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
)

// IndexStats counts the rows a rebuild of the index wrote.
type IndexStats struct {
	Accounts     int
	Transactions int
}

// reindexPage is how many events one read of a rebuild takes.
const reindexPage = 10_000

// RebuildIndex rebuilds the sync's index (sync_accounts and
// sync_transactions) from the log: every account and transaction stream
// is folded and its row written again, and rows of no stream are dropped.
// The units of work of a sync write the index with their events, so it
// never drifts from the log; this is for an operator who doubts it (a
// restore, a manual edit), and it is what the tests compare the index
// with. It runs in one transaction holding both tables exclusively, so
// syncs wait for it (their units of work queue on the tables' locks) and
// projectors pause behind its transaction id: run it in a quiet moment.
func RebuildIndex(ctx context.Context, store *eventstore.Store) (IndexStats, error) {
	var stats IndexStats
	err := pgx.BeginFunc(ctx, store.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE sync_accounts, sync_transactions IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("lock the sync index: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sync_transactions`); err != nil {
			return fmt.Errorf("clear the transaction index: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sync_accounts`); err != nil {
			return fmt.Errorf("clear the account index: %w", err)
		}
		var err error
		stats, err = foldIndex(ctx, tx, store)
		return err
	})
	if err != nil {
		return IndexStats{}, fmt.Errorf("rebuild the sync index: %w", err)
	}
	return stats, nil
}

// streamFold is one stream being folded by a rebuild.
type streamFold struct {
	stream eventstore.Stream
	acct   *account.Account
	tx     *transaction.Transaction
}

// foldIndex reads the account and transaction streams in (stream, version)
// order, a page at a time, folds each and writes its row.
func foldIndex(ctx context.Context, tx pgx.Tx, store *eventstore.Store) (IndexStats, error) {
	var (
		stats    IndexStats
		cur      *streamFold
		rows     []indexRow
		afterID  uuid.UUID
		afterVer int64
	)
	flush := func(final bool) error {
		if cur != nil && final {
			if err := emitIndexRow(ctx, tx, cur, &rows, &stats); err != nil {
				return err
			}
			cur = nil
		}
		if len(rows) >= DefaultBatchSize || (final && len(rows) > 0) {
			if err := indexTransactions(ctx, tx, rows); err != nil {
				return err
			}
			rows = rows[:0]
		}
		return nil
	}
	for {
		page, err := tx.Query(ctx, `SELECT stream_type, stream_id, version, event_type, schema_version, payload FROM events
			WHERE stream_type = ANY($1) AND (stream_id, version) > ($2, $3)
			ORDER BY stream_id, version LIMIT $4`,
			[]string{string(eventstore.StreamAccount), string(eventstore.StreamTransaction)}, afterID, afterVer, reindexPage)
		if err != nil {
			return stats, fmt.Errorf("read the log: %w", err)
		}
		var recs []eventstore.Record
		for page.Next() {
			var (
				r       eventstore.Record
				typ     string
				payload []byte
			)
			if err := page.Scan(&typ, &r.Stream.ID, &r.Version, &r.EventType, &r.SchemaVersion, &payload); err != nil {
				page.Close()
				return stats, fmt.Errorf("read the log: %w", err)
			}
			r.Stream.Type, r.Payload = eventstore.StreamType(typ), json.RawMessage(payload)
			recs = append(recs, r)
		}
		page.Close()
		if err := page.Err(); err != nil {
			return stats, fmt.Errorf("read the log: %w", err)
		}
		for _, r := range recs {
			if cur == nil || cur.stream != r.Stream {
				if cur != nil {
					if err := emitIndexRow(ctx, tx, cur, &rows, &stats); err != nil {
						return stats, err
					}
					if err := flush(false); err != nil {
						return stats, err
					}
				}
				cur = &streamFold{stream: r.Stream}
				if r.Stream.Type == eventstore.StreamAccount {
					cur.acct = account.New(r.Stream.ID)
				} else {
					cur.tx = transaction.New(r.Stream.ID)
				}
			}
			e, err := store.Decode(r)
			if err != nil {
				return stats, err
			}
			switch {
			case cur.acct != nil:
				ae, ok := e.(account.Event)
				if !ok {
					return stats, fmt.Errorf("event %s of %s is not an account event", r.EventType, r.Stream)
				}
				cur.acct.Apply(ae)
			default:
				te, ok := e.(transaction.Event)
				if !ok {
					return stats, fmt.Errorf("event %s of %s is not a transaction event", r.EventType, r.Stream)
				}
				cur.tx.Apply(te)
			}
		}
		if len(recs) < reindexPage {
			break
		}
		last := recs[len(recs)-1]
		afterID, afterVer = last.Stream.ID, last.Version
	}
	return stats, flush(true)
}

// emitIndexRow writes an account's row at once, or queues a transaction's.
func emitIndexRow(ctx context.Context, tx pgx.Tx, f *streamFold, rows *[]indexRow, stats *IndexStats) error {
	if a := f.acct; a != nil {
		if !a.Opened() {
			return nil
		}
		stats.Accounts++
		return markAccount(ctx, tx, a.ID(), a.ConnectionID(), a.Details().ProviderAccountID, a.Active())
	}
	t := f.tx
	if !t.Recorded() {
		return nil
	}
	d := t.Data()
	fp := d.Fingerprint()
	*rows = append(*rows, indexRow{id: t.ID(), accountID: t.AccountID(), connectionID: t.ConnectionID(),
		providerID: d.ProviderTransactionID, status: t.Status(), date: d.Date, fingerprint: fp[:]})
	stats.Transactions++
	return nil
}
