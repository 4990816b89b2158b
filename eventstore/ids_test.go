package eventstore_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"

	"github.com/dashtam/dashtam/eventstore"
)

func TestDeterministicStreamIDs(t *testing.T) {
	conn := uuid.MustParse("0b6f3c1e-7f7a-4c55-9d0e-2d4f8c1a9e10")
	other := uuid.MustParse("5d2f6a8b-1c3e-4f70-8a9b-0c1d2e3f4a5b")

	acct := eventstore.AccountStreamID(conn, "12345678")
	assert.Equal(t, acct, eventstore.AccountStreamID(conn, "12345678"), "same input, same id")
	assert.Equal(t, uuid.Version(5), acct.Version())
	assert.NotEqual(t, acct, eventstore.AccountStreamID(other, "12345678"), "scoped by connection")
	assert.NotEqual(t, acct, eventstore.AccountStreamID(conn, "12345679"))
	// The published definition, pinned: UUIDv5 with the connection id as namespace.
	assert.Equal(t, uuid.NewSHA1(conn, []byte("12345678")), acct)

	tx := eventstore.TransactionStreamID(acct, "98765")
	assert.Equal(t, tx, eventstore.TransactionStreamID(acct, "98765"))
	assert.NotEqual(t, tx, eventstore.TransactionStreamID(acct, "98766"))
	assert.NotEqual(t, tx, eventstore.AccountStreamID(conn, "98765"))
}
