package commands

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// PersonalDataKeys destroys a person's data key: the erasure of their
// personal data from the event log, whose personal fields are sealed with
// it (adapters/personaldata; docs/audit.md).
type PersonalDataKeys interface {
	// Erase destroys owner's key in tx, the transaction that records the
	// erasure, so both commit or neither.
	Erase(ctx context.Context, tx pgx.Tx, owner uuid.UUID, at time.Time) error
	// Forget drops owner's key from memory; call it once tx has committed.
	Forget(owner uuid.UUID)
}
