package web

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"sort"
)

// cursorMACBytes is how much of the HMAC-SHA-256 a cursor carries: 128
// bits, far beyond guessing, short enough for a query string.
const cursorMACBytes = 16

// cursorDomain separates cursor MACs from any other use of the key.
const cursorDomain = "dashtam list cursor v1"

// cursorCodec turns a list's keyset position into an opaque cursor bound to
// the query that issued it: the endpoint, the caller and the filters (not
// the page size, which a client may change between pages). A cursor is
// base64url(MAC ‖ JSON key), the MAC an HMAC over the binding and the key,
// so a client can neither forge a position nor replay a cursor against
// another filter, where the keyset would silently skip or repeat rows.
type cursorCodec struct{ key []byte }

// newCursorCodec keys a codec; with no key it draws a random one, valid
// for this process only (cursors then do not survive a restart nor move
// between instances: production wiring passes a configured key).
func newCursorCodec(key []byte) (cursorCodec, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return cursorCodec{}, err
		}
	}
	return cursorCodec{key: bytes.Clone(key)}, nil
}

// cursorScope is what a cursor is bound to: an endpoint and its filters by
// name (the caller is added by the codec).
type cursorScope struct {
	endpoint string
	filters  url.Values
}

// scope returns a scope of endpoint with no filter yet.
func scope(endpoint string) *cursorScope {
	return &cursorScope{endpoint: endpoint, filters: url.Values{}}
}

// with adds a filter to the binding; an empty value is no filter.
func (s *cursorScope) with(name, value string) *cursorScope {
	if value != "" {
		s.filters.Set(name, value)
	}
	return s
}

// binding renders the scope canonically: filters sorted by name.
func (s *cursorScope) binding(caller string) []byte {
	names := make([]string, 0, len(s.filters))
	for n := range s.filters {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(cursorDomain + "\x00" + s.endpoint + "\x00" + caller)
	for _, n := range names {
		b.WriteString("\x00" + url.QueryEscape(n) + "=" + url.QueryEscape(s.filters.Get(n)))
	}
	return b.Bytes()
}

func (c cursorCodec) mac(binding, payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(binding)
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)[:cursorMACBytes]
}

// seal returns the cursor of key (a JSON-encodable keyset position) for
// the caller's query s.
func (c cursorCodec) seal(s *cursorScope, caller string, key any) (string, error) {
	payload, err := json.Marshal(key)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(append(c.mac(s.binding(caller), payload), payload...)), nil
}

// Errors of open, for the field error a client sees.
var (
	errCursorMalformed = errors.New("is malformed: pass next_cursor as it was given")
	errCursorForeign   = errors.New("was issued for another endpoint, filter or user")
)

// open decodes cursor into key after checking it was sealed for the
// caller's query s.
func (c cursorCodec) open(s *cursorScope, caller, cursor string, key any) error {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) <= cursorMACBytes {
		return errCursorMalformed
	}
	mac, payload := raw[:cursorMACBytes], raw[cursorMACBytes:]
	if !hmac.Equal(mac, c.mac(s.binding(caller), payload)) {
		return errCursorForeign
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(key); err != nil {
		// Sealed by us with another shape: a cursor of an older release.
		return errCursorMalformed
	}
	return nil
}
