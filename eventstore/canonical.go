package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// ZeroHash is the prev_hash of every stream's first event.
var ZeroHash = make([]byte, sha256.Size)

// Digest versions: the value of events.digest_version (migration 00008) and
// the layout digest uses for the row. The store writes digestCurrent; the
// verifier accepts every version up to it.
const (
	// digestV1 is the original layout: owner_id NULL and the all-zero UUID
	// hash alike, and the version itself is not hashed.
	digestV1 = 1
	// digestV2 hashes its own version and owner_id's NULL-ness as well.
	digestV2 = 2
	// digestCurrent is the version Append writes (the literal 2 in
	// appendOneSQL and appendBatchSQL).
	digestCurrent = digestV2
)

// digestInput is every stored field of an event that the hash chain protects:
// every column of events except global_position and transaction_id, which the
// database assigns at insert (docs/event-store.md, "The digest"), and
// prev_hash and hash, which the chain itself links. The payload is stored as
// json, so its exact bytes are hashed; metadata is jsonb (queried by the audit
// tools), so it is hashed in canonical form.
type digestInput struct {
	digestVersion int
	streamType    StreamType
	streamID      uuid.UUID
	version       int64
	eventID       uuid.UUID
	eventType     string
	schemaVersion int
	// ownerID is the stored owner_id; ownerSet says it was not NULL, which
	// ownerID alone cannot (NULL reads as uuid.Nil).
	ownerID    uuid.UUID
	ownerSet   bool
	recordedAt time.Time
	payload    []byte
	metadata   []byte
}

// digest is SHA-256 over the canonical form of an event: length-prefixed
// fields, the payload's exact stored bytes and the metadata in canonical JSON.
// The writer computes it before the insert and the verifier recomputes it from
// the stored row; the chain is then hash = sha256(prev_hash || digest).
// Canonical JSON makes the metadata's digest independent of how PostgreSQL's
// jsonb reformats the stored document.
//
// Version 1 rows keep their layout so that old logs still verify. Every other
// version hashes its own number after a domain string of its own, so a row
// relabelled to another version no longer matches its hash; a NULL owner is
// an empty field and a stored owner its 16 bytes, which the length prefix
// tells apart even for the all-zero UUID.
func (d digestInput) digest() []byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	if d.digestVersion == digestV1 {
		field([]byte("dashtam-event-v1"))
	} else {
		field([]byte("dashtam-event-v2"))
		field([]byte(strconv.Itoa(d.digestVersion)))
	}
	field([]byte(d.streamType))
	field(d.streamID[:])
	field([]byte(strconv.FormatInt(d.version, 10)))
	field(d.eventID[:])
	field([]byte(d.eventType))
	field([]byte(strconv.Itoa(d.schemaVersion)))
	switch {
	case d.digestVersion == digestV1:
		field(d.ownerID[:]) // NULL and uuid.Nil alike: the blind spot v2 closes
	case d.ownerSet:
		field(d.ownerID[:])
	default:
		field(nil)
	}
	field([]byte(d.recordedAt.UTC().Format("2006-01-02T15:04:05.000000Z")))
	field(d.payload)
	field(d.metadata)
	return h.Sum(nil)
}

// maxExponent bounds the decimal exponent of numbers in stored JSON; event
// payloads carry money as strings, so no real event comes near it.
const maxExponent = 1000

// chainHash links an event into its stream: sha256(prev || digest).
func chainHash(prev, digest []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(digest)
	return h.Sum(nil)
}

// canonicalJSON re-encodes a JSON document with object keys sorted, no
// insignificant white space, no HTML escaping and numbers in shortest decimal
// form, so that equal documents have equal bytes whichever system formatted them.
func canonicalJSON(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after JSON document")
	}
	var buf bytes.Buffer
	if err := writeCanonical(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeCanonical(buf *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case json.Number:
		d, err := decimal.NewFromString(v.String())
		if err != nil {
			return fmt.Errorf("number %q: %w", v, err)
		}
		// Bound the expansion: 1e999999 would otherwise print a million digits.
		if e := d.Exponent(); e > maxExponent || e < -maxExponent {
			return fmt.Errorf("number %q: exponent out of range", v)
		}
		buf.WriteString(d.String())
	case string:
		writeString(buf, v)
	case []any:
		buf.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			if err := writeCanonical(buf, v[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unexpected JSON value %T", v)
	}
	return nil
}

func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}
