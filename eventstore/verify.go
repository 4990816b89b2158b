package eventstore

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/uuid"
)

// ChainBreak describes the first place where a stream's hash chain does not hold.
type ChainBreak struct {
	Stream  Stream
	Version int64
	EventID string
	// Position is the event's global position.
	Position int64
	Reason   string
}

// Error renders the break for an operator.
func (b *ChainBreak) Error() string {
	return fmt.Sprintf("hash chain broken at %s version %d (position %d, event %s): %s", b.Stream, b.Version, b.Position, b.EventID, b.Reason)
}

// VerifyProgress is called after each verified event with the count so far.
type VerifyProgress func(verified int64)

// VerifyReport counts what VerifyChains checked.
type VerifyReport struct {
	// Events is how many events were verified (before the break, if any).
	Events int64
	// Streams is how many streams those events belong to.
	Streams int64
	// Malformed lists the first maxMalformedReported events whose stored
	// metadata does not decode; MalformedCount counts them all. Their chains
	// are still verified, over the metadata as stored.
	Malformed      []MalformedEvent
	MalformedCount int64
}

// MalformedEvent is an event whose row the log accepted but whose metadata
// no reader can decode: written past the append path and the table's check.
type MalformedEvent struct {
	Stream  Stream
	Version int64
	EventID string
	Err     error
}

// maxMalformedReported bounds VerifyReport.Malformed, so that a log full of
// bad rows cannot make verify's memory grow with it.
const maxMalformedReported = 100

// VerifyChains recomputes every stream's hash chain from the stored rows and
// returns the first break found (nil when every chain holds), reading the
// log in (stream, version) order in keyset pages of pageSize rows, each its
// own short statement, so that no snapshot is held for the whole run and
// memory stays bounded by one page. Events appended after the run started
// (past the log's head then) are not verified. Events whose metadata does not
// decode are reported in VerifyReport.Malformed and verification goes on. A
// chain cannot show that a stream's newest events, or a whole stream, were
// removed: compare stream heads with a record kept elsewhere for that.
func (s *Store) VerifyChains(ctx context.Context, progress VerifyProgress) (VerifyReport, *ChainBreak, error) {
	return s.verifyChains(ctx, progress, pageSize)
}

func (s *Store) verifyChains(ctx context.Context, progress VerifyProgress, limit int) (VerifyReport, *ChainBreak, error) {
	var rep VerifyReport
	head, err := s.head(ctx)
	if err != nil {
		return rep, nil, fmt.Errorf("verify chains: %w", err)
	}
	const pageSQL = `SELECT ` + recordColumns + ` FROM events
		WHERE (stream_id, version) > ($1, $2) AND global_position <= $3
		ORDER BY stream_id, version LIMIT $4`
	var (
		prev     Record
		havePrev bool
	)
	for {
		// The nil UUID at version 0 sorts before every stored event.
		after, afterVersion := uuid.Nil, int64(0)
		if havePrev {
			after, afterVersion = prev.Stream.ID, prev.Version
		}
		page, err := collectRecords(ctx, s.pool, pageSQL, after, afterVersion, head, limit)
		if err != nil {
			return rep, nil, fmt.Errorf("verify chains: %w", err)
		}
		for _, r := range page {
			// Reported before the chain is checked, so that a row that is
			// both malformed and breaks its chain is named as both.
			if r.MetadataErr != nil {
				rep.MalformedCount++
				if len(rep.Malformed) < maxMalformedReported {
					rep.Malformed = append(rep.Malformed, MalformedEvent{Stream: r.Stream, Version: r.Version,
						EventID: r.EventID.String(), Err: r.MetadataErr})
				}
			}
			if b := checkLink(prev, havePrev, r); b != nil {
				return rep, b, nil
			}
			if !havePrev || prev.Stream.ID != r.Stream.ID {
				rep.Streams++
			}
			prev, havePrev = r, true
			rep.Events++
			if progress != nil {
				progress(rep.Events)
			}
		}
		if len(page) < limit {
			return rep, nil, nil
		}
	}
}

// checkLink verifies one record against its predecessor in the same stream.
// A stream may start with version 1 digests (written before migration 00008)
// and move on to version 2, never back: a version 1 row after a version 2 row
// would reopen the blind spot version 2 closed, so it is a break.
func checkLink(prev Record, havePrev bool, r Record) *ChainBreak {
	brk := func(reason string, args ...any) *ChainBreak {
		return &ChainBreak{Stream: r.Stream, Version: r.Version, EventID: r.EventID.String(), Position: r.GlobalPosition,
			Reason: fmt.Sprintf(reason, args...)}
	}
	sameStream := havePrev && prev.Stream.ID == r.Stream.ID
	expectedPrev := ZeroHash
	switch {
	case sameStream && r.Version != prev.Version+1:
		return brk("version follows %d: a version is missing", prev.Version)
	case sameStream:
		expectedPrev = prev.Hash
	case r.Version != 1:
		return brk("stream starts at version %d, not 1", r.Version)
	}
	switch {
	case !knownDigestVersion(r.DigestVersion):
		return brk("unknown digest version %d", r.DigestVersion)
	case sameStream && r.DigestVersion < prev.DigestVersion:
		return brk("digest version %d follows version %d: a stream's digest version never goes back", r.DigestVersion, prev.DigestVersion)
	}
	if !bytes.Equal(r.PrevHash, expectedPrev) {
		return brk("prev_hash does not match the previous event's hash")
	}
	d, err := recordDigest(&r)
	if err != nil {
		return brk("cannot canonicalise stored metadata: %v", err)
	}
	if !bytes.Equal(chainHash(r.PrevHash, d), r.Hash) {
		return brk("stored hash does not match the event's contents")
	}
	return nil
}

// recordDigest recomputes the digest of a stored record from its columns,
// in the layout of the record's own digest version (digestInput).
func recordDigest(r *Record) ([]byte, error) {
	metadata, err := canonicalJSON(r.RawMetadata)
	if err != nil {
		return nil, err
	}
	return digestOf(r, metadata), nil
}

// digestOf is the digest of r with its metadata already in canonical form:
// the one place a stored row becomes a digestInput, so that every reader
// (VerifyChains, VerifyLog's scan, bundles) hashes each row with its own
// digest version and owner_id's NULL-ness exactly as the writer did.
func digestOf(r *Record, canonicalMetadata []byte) []byte {
	return digestInput{
		digestVersion: r.DigestVersion, streamType: r.Stream.Type, streamID: r.Stream.ID, version: r.Version,
		eventID: r.EventID, eventType: r.EventType, schemaVersion: r.SchemaVersion,
		ownerID: r.OwnerID, ownerSet: r.ownerSet, recordedAt: r.RecordedAt,
		payload: r.Payload, metadata: canonicalMetadata,
	}.digest()
}

// knownDigestVersion says whether v is a digest layout this binary knows
// (digestV1 up to digestCurrent); a row of any other cannot be verified.
func knownDigestVersion(v int) bool { return v >= digestV1 && v <= digestCurrent }

// ChainHash recomputes the hash a record must have from its stored columns
// (its digest version and owner_id's NULL-ness included) and its PrevHash:
// what verification, offline bundles and the tamper tests (which rewrite a
// chain consistently) need.
func ChainHash(r Record) ([]byte, error) {
	if !knownDigestVersion(r.DigestVersion) {
		return nil, fmt.Errorf("hash of %s v%d: unknown digest version %d", r.Stream, r.Version, r.DigestVersion)
	}
	d, err := recordDigest(&r)
	if err != nil {
		return nil, fmt.Errorf("hash of %s v%d: %w", r.Stream, r.Version, err)
	}
	return chainHash(r.PrevHash, d), nil
}
