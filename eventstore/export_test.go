package eventstore

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// DigestFields are the hashed fields of one event, for tests that write rows
// through raw SQL: as the store did before digest version 2, or as only a
// forger would (an all-zero owner_id).
type DigestFields struct {
	DigestVersion int
	Stream        Stream
	Version       int64
	EventID       uuid.UUID
	EventType     string
	SchemaVersion int
	OwnerID       uuid.UUID
	OwnerSet      bool
	RecordedAt    time.Time
	Payload       []byte
	// Metadata must be in canonical JSON, as the store hashes it.
	Metadata []byte
}

// ChainHashOf is the hash of an event with fields f after an event hashed prev.
func ChainHashOf(prev []byte, f DigestFields) []byte {
	return chainHash(prev, digestInput{
		digestVersion: f.DigestVersion, streamType: f.Stream.Type, streamID: f.Stream.ID, version: f.Version,
		eventID: f.EventID, eventType: f.EventType, schemaVersion: f.SchemaVersion,
		ownerID: f.OwnerID, ownerSet: f.OwnerSet, recordedAt: f.RecordedAt,
		payload: f.Payload, metadata: f.Metadata,
	}.digest())
}

// QueryPaged is Query with a page size of the test's choosing, so that page
// boundaries are exercised on a small log.
func QueryPaged(ctx context.Context, s *Store, f Filter, fn func(Record) error, limit int) error {
	return s.query(ctx, f, fn, limit)
}

// VerifyChainsPaged is VerifyChains with a page size of the test's choosing.
func VerifyChainsPaged(ctx context.Context, s *Store, limit int) (VerifyReport, *ChainBreak, error) {
	return s.verifyChains(ctx, nil, limit)
}

// ReadCommitOrder reads every row in commit order with the statement and
// pages verify uses, without decoding or checking anything: the baseline of
// its benchmark. It returns how many rows it read.
func ReadCommitOrder(ctx context.Context, s *Store) (int, error) {
	head, err := s.head(ctx)
	if err != nil {
		return 0, err
	}
	var after Position
	total := 0
	for {
		rows, err := s.pool.Query(ctx, verifyScanSQL, binaryResults, after.TransactionID, after.GlobalPosition, head, pageSize)
		if err != nil {
			return 0, err
		}
		n := 0
		for rows.Next() {
			v := rows.RawValues()
			after = Position{TransactionID: beUint64(v[1]), GlobalPosition: int64(beUint64(v[0]))}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		total += n
		if n < pageSize {
			return total, nil
		}
	}
}
