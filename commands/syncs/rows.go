package syncs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/eventstore"
)

// The row access of the sync (migration 00026): the index of accounts and
// transactions, written in the units of work that append the events they
// reflect. Use-case files hold no SQL.

// knownAccount is one row of sync_accounts.
type knownAccount struct {
	id                uuid.UUID
	providerAccountID string
	active            bool
}

// readAccounts returns the accounts of connection id the index knows.
func readAccounts(ctx context.Context, q eventstore.Querier, connectionID uuid.UUID) ([]knownAccount, error) {
	rows, err := q.Query(ctx, `SELECT account_id, provider_account_id, active FROM sync_accounts
		WHERE connection_id = $1 ORDER BY provider_account_id`, connectionID)
	if err != nil {
		return nil, fmt.Errorf("read accounts of connection %s: %w", connectionID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (knownAccount, error) {
		var a knownAccount
		return a, r.Scan(&a.id, &a.providerAccountID, &a.active)
	})
	if err != nil {
		return nil, fmt.Errorf("read accounts of connection %s: %w", connectionID, err)
	}
	return out, nil
}

// markAccount records account id of connectionID as open, or closed.
func markAccount(ctx context.Context, tx pgx.Tx, id, connectionID uuid.UUID, providerAccountID string, active bool) error {
	if _, err := tx.Exec(ctx, `INSERT INTO sync_accounts (account_id, connection_id, provider_account_id, active)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_id) DO UPDATE SET active = excluded.active WHERE sync_accounts.active <> excluded.active`,
		id, connectionID, providerAccountID, active); err != nil {
		return fmt.Errorf("index account %s: %w", id, err)
	}
	return nil
}

// closeAccounts records every account of connectionID among ids as closed.
func closeAccounts(ctx context.Context, tx pgx.Tx, connectionID uuid.UUID, ids []uuid.UUID) error {
	if _, err := tx.Exec(ctx, `UPDATE sync_accounts SET active = false WHERE connection_id = $1 AND account_id = ANY($2)`,
		connectionID, ids); err != nil {
		return fmt.Errorf("index closed accounts of connection %s: %w", connectionID, err)
	}
	return nil
}

// indexed is one row of sync_transactions as a batch needs it.
type indexed struct {
	status      transaction.Status
	fingerprint []byte
}

// readIndexed returns the index rows of the transactions ids.
func readIndexed(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]indexed, error) {
	rows, err := tx.Query(ctx, `SELECT transaction_id, status, fingerprint FROM sync_transactions WHERE transaction_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read transaction index: %w", err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]indexed, len(ids))
	for rows.Next() {
		var (
			id     uuid.UUID
			status string
			fp     []byte
		)
		if err := rows.Scan(&id, &status, &fp); err != nil {
			return nil, fmt.Errorf("read transaction index: %w", err)
		}
		out[id] = indexed{status: transaction.Status(status), fingerprint: fp}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read transaction index: %w", err)
	}
	return out, nil
}

// indexRow is one transaction as sync_transactions holds it.
type indexRow struct {
	id, accountID, connectionID uuid.UUID
	providerID                  string
	status                      transaction.Status
	date                        string
	fingerprint                 []byte
	// fresh says the index held no row of the transaction when the unit
	// of work read it: the row is inserted without the upsert's
	// speculative insertion, which cost 40–115% more in PostgreSQL for
	// the rows of a large first sync (docs/sync.md, "The index").
	fresh bool
}

// indexTransactions inserts or replaces the index rows of rs: the fresh ones
// with a plain INSERT, the others with an upsert. A fresh row that another
// unit of work inserted meanwhile is a conflict, and the unit of work runs
// again (as a rule its append of the same stream's first event conflicts
// first).
func indexTransactions(ctx context.Context, tx pgx.Tx, rs []indexRow) error {
	var fresh, known []indexRow
	for _, r := range rs {
		if r.fresh {
			fresh = append(fresh, r)
		} else {
			known = append(known, r)
		}
	}
	err := writeIndexRows(ctx, tx, fresh, insertIndexSQL)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("index %d new transactions: %w", len(fresh), eventstore.ErrConflict)
	}
	if err != nil {
		return err
	}
	return writeIndexRows(ctx, tx, known, insertIndexSQL+`
		ON CONFLICT (transaction_id) DO UPDATE SET status = excluded.status, date = excluded.date, fingerprint = excluded.fingerprint`)
}

// insertIndexSQL inserts index rows given as arrays of their columns.
const insertIndexSQL = `INSERT INTO sync_transactions (transaction_id, account_id, connection_id,
		provider_transaction_id, status, date, fingerprint)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[]::date[], $7::bytea[])`

// writeIndexRows runs insert, which takes the rows' columns as arrays, for rs.
func writeIndexRows(ctx context.Context, tx pgx.Tx, rs []indexRow, insert string) error {
	if len(rs) == 0 {
		return nil
	}
	n := len(rs)
	var (
		ids, accounts, conns = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		providerIDs, states  = make([]string, n), make([]string, n)
		dates                = make([]string, n)
		fps                  = make([][]byte, n)
	)
	for i, r := range rs {
		ids[i], accounts[i], conns[i], providerIDs[i] = r.id, r.accountID, r.connectionID, r.providerID
		states[i], dates[i], fps[i] = string(r.status), r.date, r.fingerprint
	}
	if _, err := tx.Exec(ctx, insert, ids, accounts, conns, providerIDs, states, dates, fps); err != nil {
		return fmt.Errorf("index %d transactions: %w", n, err)
	}
	return nil
}

// markRemoved records the transactions ids as removed.
func markRemoved(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE sync_transactions SET status = 'removed' WHERE transaction_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("index %d removed transactions: %w", len(ids), err)
	}
	return nil
}

// dropIndexed deletes index rows that name no stream (the log is the truth).
func dropIndexed(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM sync_transactions WHERE transaction_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("drop %d stray index rows: %w", len(ids), err)
	}
	return nil
}

// pendingBetween returns the pending transactions of account accountID
// of connectionID dated from from to to, both inclusive.
func pendingBetween(ctx context.Context, tx pgx.Tx, connectionID, accountID uuid.UUID, from, to string) ([]uuid.UUID, error) {
	rows, err := tx.Query(ctx, `SELECT transaction_id FROM sync_transactions
		WHERE connection_id = $1 AND account_id = $2 AND status = 'pending' AND date BETWEEN $3::text::date AND $4::text::date`,
		connectionID, accountID, from, to)
	if err != nil {
		return nil, fmt.Errorf("read pending transactions of account %s: %w", accountID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("read pending transactions of account %s: %w", accountID, err)
	}
	return ids, nil
}

// oldestPending returns the date of the oldest pending transaction of
// connection id (YYYY-MM-DD), empty when none.
func oldestPending(ctx context.Context, q eventstore.Querier, connectionID uuid.UUID) (string, error) {
	rows, err := q.Query(ctx, `SELECT coalesce(to_char(min(date), 'YYYY-MM-DD'), '') FROM sync_transactions
		WHERE connection_id = $1 AND status = 'pending'`, connectionID)
	if err != nil {
		return "", fmt.Errorf("read oldest pending transaction of connection %s: %w", connectionID, err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("read oldest pending transaction of connection %s: %w", connectionID, err)
	}
	return s, nil
}

// connectionHead returns the version of connection id's stream.
func connectionHead(ctx context.Context, tx pgx.Tx, id uuid.UUID) (int64, error) {
	var v int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1 AND stream_type = $2`,
		id, string(eventstore.StreamConnection)).Scan(&v); err != nil {
		return 0, fmt.Errorf("read head of connection %s: %w", id, err)
	}
	return v, nil
}

// dateOf formats a provider's calendar date as the aggregates store it.
func dateOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }
