package eventstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/migrations/testdb"
)

type mdTicked struct {
	N int `json:"n"`
}

func (mdTicked) EventType() string { return "MetadataTicked" }

// TestMalformedMetadataIsFlaggedNotFatal stores, past the append path and
// with the table's check dropped, an event whose metadata says {"actor": 5}
// in the middle of a stream, with a correct hash chain through it. Every
// read path returns it flagged, and verify reports it by stream and version
// while still verifying every chain to the end.
func TestMalformedMetadataIsFlaggedNotFatal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	reg := NewRegistry()
	Register[mdTicked](reg, 1)
	store, err := New(pool, reg)
	if err != nil {
		t.Fatal(err)
	}
	s := Stream{Type: StreamAccount, ID: uuid.New()}
	mctx := WithMetadata(ctx, Metadata{Actor: "tester"})
	if _, err := store.Append(mctx, s, 0, mdTicked{1}, mdTicked{2}, mdTicked{3}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(mctx, Stream{Type: StreamUser, ID: uuid.New()}, 0, mdTicked{9}); err != nil {
		t.Fatal(err)
	}

	// Version 4, linked into the chain as the store would have linked it.
	head, err := store.ReadStream(ctx, s, 2)
	if err != nil || len(head) != 1 {
		t.Fatalf("head: %v, %v", head, err)
	}
	meta := []byte(`{"actor":5}`)
	canon, err := canonicalJSON(meta)
	if err != nil {
		t.Fatal(err)
	}
	bad := digestInput{digestVersion: 2, streamType: s.Type, streamID: s.ID, version: 4, eventID: uuid.New(), eventType: "MetadataTicked",
		schemaVersion: 1, recordedAt: time.Now().UTC().Truncate(time.Microsecond), payload: []byte(`{"n":4}`), metadata: canon}
	// Only the owner may drop the check, as an intruder with its powers would.
	err = pgx.BeginFunc(ctx, testdb.Owner(t, pool), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER TABLE events DROP CONSTRAINT events_metadata_shape`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO events (stream_type, stream_id, version, event_id, event_type,
			schema_version, payload, metadata, recorded_at, prev_hash, hash, digest_version)
			VALUES ($1, $2, 4, $3, $4, 1, $5, $6, $7, $8, $9, 2)`,
			string(s.Type), s.ID, bad.eventID, bad.eventType, string(bad.payload), string(meta), bad.recordedAt,
			head[0].Hash, chainHash(head[0].Hash, bad.digest()))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(mctx, s, 4, mdTicked{5}); err != nil {
		t.Fatal(err)
	}

	checkFlagged := func(what string, recs []Record) {
		t.Helper()
		flagged := 0
		for _, r := range recs {
			if r.MetadataErr == nil {
				if r.Metadata.Actor != "tester" {
					t.Errorf("%s: event v%d lost its actor", what, r.Version)
				}
				continue
			}
			flagged++
			if r.EventID != bad.eventID || r.Metadata.Actor != "" || string(r.RawMetadata) != `{"actor": 5}` ||
				!strings.Contains(r.MetadataErr.Error(), s.String()+" v4") {
				t.Errorf("%s: flagged %+v (%v)", what, r, r.MetadataErr)
			}
		}
		if flagged != 1 {
			t.Errorf("%s: %d records flagged, want 1", what, flagged)
		}
	}
	recs, err := store.ReadStream(ctx, s, 0)
	if err != nil || len(recs) != 5 {
		t.Fatalf("ReadStream: %d records, %v", len(recs), err)
	}
	checkFlagged("ReadStream", recs)
	// ReadAll shares scanRecord; projections/park_test.go shows projectors
	// reading such a row (ReadAll waits for the cluster's horizon, which
	// other tests hold back at will).
	for _, page := range []int{1, 2, pageSize} {
		recs = nil
		if err := store.query(ctx, Filter{}, func(r Record) error { recs = append(recs, r); return nil }, page); err != nil {
			t.Fatal(err)
		}
		checkFlagged("Query", recs)

		rep, brk, err := store.verifyChains(ctx, nil, page)
		if err != nil || brk != nil {
			t.Fatalf("verify (page %d): %v, %v", page, brk, err)
		}
		if rep.Events != 6 || rep.Streams != 2 || rep.MalformedCount != 1 || len(rep.Malformed) != 1 {
			t.Fatalf("verify (page %d): %+v", page, rep)
		}
		if m := rep.Malformed[0]; m.Stream != s || m.Version != 4 || m.EventID != bad.eventID.String() || m.Err == nil {
			t.Errorf("verify (page %d) reported %+v", page, m)
		}
	}
	// The commit-order verifier reports it alike and finds no break.
	lrep, err := store.VerifyLog(ctx, LogVerifyOptions{})
	if err != nil || lrep.ChainBreak != nil || len(lrep.Findings) != 0 {
		t.Fatalf("VerifyLog: %+v, %v", lrep, err)
	}
	if c := lrep.Chains; c.Events != 6 || c.Streams != 2 || c.MalformedCount != 1 || len(c.Malformed) != 1 {
		t.Fatalf("VerifyLog: %+v", c)
	} else if m := c.Malformed[0]; m.Stream != s || m.Version != 4 || m.EventID != bad.eventID.String() || m.Err == nil {
		t.Errorf("VerifyLog reported %+v", m)
	}
}

func TestAppendRefusesInvalidMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := NewRegistry()
	Register[mdTicked](reg, 1)
	store, err := New(testdb.New(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	for name, md := range map[string]Metadata{
		"long actor":      {Actor: strings.Repeat("a", MaxMetadataFieldBytes+1)},
		"long user agent": {UserAgent: strings.Repeat("é", MaxMetadataFieldBytes/2+1)},
		"NUL in ip":       {IP: "127.0.0.1\x00"},
	} {
		_, err := store.Append(WithMetadata(ctx, md), Stream{Type: StreamUser, ID: uuid.New()}, 0, mdTicked{})
		if !errors.Is(err, ErrInvalidMetadata) {
			t.Errorf("%s: %v, want ErrInvalidMetadata", name, err)
		}
	}
	md := Metadata{Actor: strings.Repeat("a", MaxMetadataFieldBytes), UserAgent: "curl/8"}
	if _, err := store.Append(WithMetadata(ctx, md), Stream{Type: StreamUser, ID: uuid.New()}, 0, mdTicked{}); err != nil {
		t.Errorf("metadata at the limit: %v", err)
	}
}
