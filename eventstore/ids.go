package eventstore

import "github.com/google/uuid"

// AccountStreamID is the stream id of the account a provider knows as
// providerAccountID within a connection: UUIDv5(connection_id,
// provider_account_id). Deterministic ids make re-syncing the same data
// idempotent by construction: the second sync finds the stream already there.
func AccountStreamID(connectionID uuid.UUID, providerAccountID string) uuid.UUID {
	return uuid.NewSHA1(connectionID, []byte(providerAccountID))
}

// TransactionStreamID is the stream id of a provider's transaction within an
// account: UUIDv5(account_id, provider_transaction_id).
func TransactionStreamID(accountID uuid.UUID, providerTransactionID string) uuid.UUID {
	return uuid.NewSHA1(accountID, []byte(providerTransactionID))
}
