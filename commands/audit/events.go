package audit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Routes as recorded in UserAuditTrailViewed.
const (
	routeEvents      = "GET /api/v1/audit-events"
	routeEvent       = "GET /api/v1/audit-events/:id"
	routeCheckpoints = "GET /api/v1/audit-checkpoints"
	routeCheckpoint  = "GET /api/v1/audit-checkpoints/:id"
	routeState       = "GET /api/v1/audit/streams/:type/:id"
)

// maxFilterLength bounds a free-text filter (actor, event type).
const maxFilterLength = 200

// parsedEventQuery is an EventQuery checked and turned into a store filter.
type parsedEventQuery struct {
	filter eventstore.Filter
	after  int64
	limit  int
	digest string            // names the filters, for cursors
	as     map[string]string // the filters as given, for the record
}

// parseTime accepts RFC 3339 or a bare date (midnight UTC), as the command
// line does.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

const timeHint = "want an RFC 3339 time such as 2026-01-02T15:04:05Z or a date such as 2026-01-02"

// parseEventQuery checks q: every filter well formed, from before to, a
// cursor minted for the same filters.
func parseEventQuery(q EventQuery) (parsedEventQuery, error) {
	out := parsedEventQuery{limit: q.Limit, as: map[string]string{}}
	if out.limit == 0 {
		out.limit = DefaultLimit
	}
	if out.limit < 1 || out.limit > MaxLimit {
		return out, invalid("limit", "must be from 1 to %d", MaxLimit)
	}
	text := func(field string, v *string) (string, bool, error) {
		if v == nil {
			return "", false, nil
		}
		s := strings.TrimSpace(*v)
		if s == "" || len(s) > maxFilterLength || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return "", false, invalid(field, "must be 1 to %d printable characters", maxFilterLength)
		}
		out.as[field] = s
		return s, true, nil
	}
	if s, ok, err := text("user_id", q.UserID); err != nil {
		return out, err
	} else if ok {
		id, err := uuid.Parse(s)
		if err != nil {
			return out, invalid("user_id", "is not a UUID")
		}
		out.filter.OwnerID = &id
	}
	if s, ok, err := text("stream", q.Stream); err != nil {
		return out, err
	} else if ok {
		st, err := eventstore.ParseStream(s)
		if err != nil {
			return out, invalid("stream", "want TYPE:ID with TYPE one of connection, account, transaction, user")
		}
		out.filter.Stream = &st
	}
	if s, ok, err := text("event_type", q.EventType); err != nil {
		return out, err
	} else if ok {
		for _, name := range strings.Split(s, ",") {
			name = strings.TrimSpace(name)
			if name == "" || strings.ContainsFunc(name, unicode.IsSpace) {
				return out, invalid("event_type", "want event type names separated by commas")
			}
			out.filter.EventTypes = append(out.filter.EventTypes, name)
		}
	}
	if s, ok, err := text("actor", q.Actor); err != nil {
		return out, err
	} else if ok {
		out.filter.Actor = &s
	}
	for _, tf := range []struct {
		field string
		v     *string
		dst   **time.Time
	}{{"from", q.From, &out.filter.From}, {"to", q.To, &out.filter.To}} {
		s, ok, err := text(tf.field, tf.v)
		if err != nil {
			return out, err
		}
		if ok {
			t, err := parseTime(s)
			if err != nil {
				return out, invalid(tf.field, timeHint)
			}
			*tf.dst = &t
		}
	}
	if f := out.filter; f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return out, invalid("from", "must be before to (from is inclusive, to exclusive)")
	}
	out.digest = filterDigest(out.as)
	if q.Cursor != nil {
		out.as["cursor"] = *q.Cursor
		after, err := decodeCursor(*q.Cursor, out.digest)
		if err != nil {
			return out, err
		}
		out.after = after
	}
	return out, nil
}

// filterDigest names a set of filters, so that a cursor cannot be replayed
// against other filters (it would skip or repeat events silently).
func filterDigest(filters map[string]string) string {
	keys := slices.Sorted(maps.Keys(filters)) // map order is random
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(filters[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// cursorJSON is a cursor's content before base64url: the filters' digest
// and the position (or sequence number) to continue after.
type cursorJSON struct {
	Filters string `json:"f"`
	After   int64  `json:"a"`
}

func encodeCursor(digest string, after int64) string {
	b, _ := json.Marshal(cursorJSON{Filters: digest, After: after}) // a struct of a string and a number always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, digest string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursorJSON
	if err != nil || len(b) > 256 || json.Unmarshal(b, &c) != nil || c.After < 0 {
		return 0, invalid("cursor", "is not a cursor this API issued")
	}
	if c.Filters != digest {
		return 0, invalid("cursor", "belongs to a query with other filters; repeat the filters it was issued for")
	}
	return c.After, nil
}

// Events lists the events matching q; see Service.
func (h *Handler) Events(ctx context.Context, p commands.Principal, q EventQuery, rc commands.RequestContext) (EventPage, error) {
	pq, err := parseEventQuery(q)
	if err != nil {
		return EventPage{}, err
	}
	filters := pq.as
	if q.Limit != 0 {
		filters = copyWith(filters, "limit", itoa(int64(q.Limit)))
	}
	if err := h.recordView(ctx, p, rc, routeEvents, filters, ""); err != nil {
		return EventPage{}, err
	}
	recs, err := h.store.QueryPage(ctx, pq.filter, pq.after, pq.limit+1)
	if err != nil {
		return EventPage{}, err
	}
	var page EventPage
	if len(recs) > pq.limit {
		recs = recs[:pq.limit]
		page.NextCursor = encodeCursor(pq.digest, recs[len(recs)-1].GlobalPosition)
	}
	page.Events = make([]Event, len(recs))
	for i, r := range recs {
		if page.Events[i], err = h.eventOf(ctx, r); err != nil {
			return EventPage{}, err
		}
	}
	return page, nil
}

// Event returns one event with its proof; see Service.
func (h *Handler) Event(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) (EventDetail, error) {
	if err := h.recordView(ctx, p, rc, routeEvent, nil, "event:"+id.String()); err != nil {
		return EventDetail{}, err
	}
	r, err := h.store.RecordByEventID(ctx, id)
	if errors.Is(err, eventstore.ErrEventNotFound) {
		return EventDetail{}, ErrNotFound
	}
	if err != nil {
		return EventDetail{}, err
	}
	e, err := h.eventOf(ctx, r)
	if err != nil {
		return EventDetail{}, err
	}
	d := EventDetail{Event: e, PrevHash: r.PrevHash, Hash: r.Hash}
	proof, err := h.store.InclusionProof(ctx, r)
	switch {
	case errors.Is(err, eventstore.ErrNotCheckpointed):
	case err != nil:
		return EventDetail{}, err
	default:
		d.Proof = &proof
		d.ProofVerified = proof.Verify(r) == nil
	}
	return d, nil
}

// eventOf shows a record as auditors see it: its personal data opened, or
// erased once its owner was (the stored, hashed bytes are the ciphertext).
func (h *Handler) eventOf(ctx context.Context, r eventstore.Record) (Event, error) {
	payload, metadata, err := h.store.Reveal(ctx, r)
	if err != nil {
		return Event{}, err
	}
	e := Event{
		ID: r.EventID, Position: r.GlobalPosition, TransactionID: r.TransactionID, Stream: r.Stream, Version: r.Version,
		Type: r.EventType, SchemaVersion: r.SchemaVersion, RecordedAt: r.RecordedAt.UTC(), Actor: r.Metadata.Actor,
		Metadata: metadata, Payload: payload,
	}
	if r.OwnerSet() {
		owner := r.OwnerID
		e.OwnerID = &owner
	}
	return e, nil
}

func copyWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
