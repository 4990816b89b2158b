package eventstore

import (
	"context"
	"fmt"
)

// canRewriteSQL asks whether the connected role could change history: as a
// superuser, or with the privileges of the table's owner (ALTER TABLE …
// DISABLE TRIGGER, DROP TABLE), or through a grant beyond SELECT and INSERT,
// or by choosing the columns that fix commit order.
const canRewriteSQL = `SELECT r.rolsuper
	OR pg_has_role(current_user, c.relowner, 'USAGE')
	OR has_table_privilege(current_user, c.oid, 'UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES')
	OR has_column_privilege(current_user, c.oid, 'global_position', 'INSERT, UPDATE')
	OR has_column_privilege(current_user, c.oid, 'transaction_id', 'INSERT, UPDATE')
	FROM pg_roles r, pg_class c
	WHERE r.rolname = current_user AND c.oid = 'events'::regclass`

// CanRewriteLog reports whether the store's role could rewrite the log or
// forge its commit order: true for the table's owner or a superuser, which
// the append-only triggers do not stop, and for a role granted more than
// SELECT and column-level INSERT. The application should run as a role for
// which it is false (docs/event-store.md); serve warns otherwise.
func (s *Store) CanRewriteLog(ctx context.Context) (bool, error) {
	var can bool
	if err := s.pool.QueryRow(ctx, canRewriteSQL).Scan(&can); err != nil {
		return false, fmt.Errorf("check the privileges on events: %w", err)
	}
	return can, nil
}
