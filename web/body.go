package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
)

// maxFieldErrors caps the field errors of one problem. A client fixes a
// request from the first few; a list as long as the body it answers (one
// entry per unknown member of a 1 MiB object) only amplifies an attack.
const maxFieldErrors = 20

// bodyScan is one streaming pass over a JSON request body, made before the
// schema validator sees it. It finds what the validator would find only
// after decoding everything (unknown members, an over-long array), what it
// cannot see at all because Go's decoder hides it (invalid UTF-8 and lone
// surrogates, replaced by U+FFFD; a second member of the same name, which
// silently wins; data after the value), and text the API refuses. It stops
// as soon as it has more errors than a problem shows.
type bodyScan struct {
	raw []byte
	dec *json.Decoder
	// contract lists violations of the API contract (400).
	contract []FieldError
	// content lists text that is well-formed JSON but refused (422).
	content []FieldError
	// stopped is set once the scan gave up before the end of the body.
	stopped bool
}

// errStopScan unwinds the scan once it has seen enough.
var errStopScan = errors.New("stop scanning the body")

// scanJSONBody scans raw against schema (nil when the document gives none).
func scanJSONBody(raw []byte, schema *openapi3.Schema) *bodyScan {
	b := &bodyScan{raw: raw, dec: json.NewDecoder(bytes.NewReader(raw))}
	b.dec.UseNumber()
	err := b.value(schema, "")
	if err == nil {
		// Exactly one value: `{...} {...}` or `{...}garbage` is not a body
		// the validator and the handler could agree on.
		if _, err = b.dec.Token(); err == io.EOF {
			err = nil
		} else {
			b.addContract("body", "has data after the JSON value")
			err = errStopScan
		}
	}
	if err != nil && !errors.Is(err, errStopScan) {
		// The decoder's message may quote a character of the input; the
		// offset is enough to find the fault.
		at := b.dec.InputOffset()
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			at = syntax.Offset
		}
		b.addContract("body", fmt.Sprintf("is not valid JSON (at byte %d)", at))
		err = errStopScan
	}
	b.stopped = err != nil
	return b
}

// full reports whether the scan has found more errors than a problem
// shows, which proves there are more and is reason enough to stop.
func (b *bodyScan) full() bool { return len(b.contract)+len(b.content) > maxFieldErrors }

// addContract records a contract violation.
func (b *bodyScan) addContract(field, msg string) {
	b.contract = append(b.contract, FieldError{Field: field, Message: msg})
}

// addContent records refused text.
func (b *bodyScan) addContent(field, msg string) {
	b.content = append(b.content, FieldError{Field: field, Message: msg})
}

// check stops the scan once it is full.
func (b *bodyScan) check() error {
	if b.full() {
		return errStopScan
	}
	return nil
}

// value scans the next value, described by s (nil: anything), found at path.
func (b *bodyScan) value(s *openapi3.Schema, path string) error {
	start := b.dec.InputOffset()
	if kind := b.peek(); s != nil && (kind == '{' && !s.Type.Permits(openapi3.TypeObject) || kind == '[' && !s.Type.Permits(openapi3.TypeArray)) {
		// An object or array where the contract wants a scalar is skipped
		// whole, by the decoder's fast path, rather than walked.
		field := path
		if field == "" {
			field = "body"
		}
		b.addContract(field, "must be of type "+strings.Join(s.Type.Slice(), " or "))
		if err := b.check(); err != nil {
			return err
		}
		var skip json.RawMessage
		return b.dec.Decode(&skip)
	}
	tok, err := b.dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return b.object(s, path)
		case '[':
			return b.array(s, path)
		}
		return fmt.Errorf("unexpected %v", t) // unreachable: the decoder refuses it
	case string:
		b.text(s, path, b.literal(start), t)
		return b.check()
	}
	return nil // numbers, booleans and null carry no text
}

// object scans the members of an object whose '{' was read.
func (b *bodyScan) object(s *openapi3.Schema, path string) error {
	closed := s != nil && s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has
	seen := map[string]bool{}
	for b.dec.More() {
		start := b.dec.InputOffset()
		tok, err := b.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string) // the decoder yields only strings here
		lit := b.literal(start)
		var prop *openapi3.Schema
		if s != nil {
			if ref := s.Properties[key]; ref != nil {
				prop = ref.Value
			}
		}
		if prop == nil && closed {
			// The name is the client's own input: echoed only when it is a
			// short plain identifier, so a problem cannot carry a megabyte
			// of it back, nor anything a log or a page would misread.
			field := path
			if plainName.MatchString(key) && validJSONText(lit) {
				field = joinPath(path, key)
			}
			if field == "" {
				field = "body"
			}
			b.addContract(field, "is not a member the API defines")
			if err := b.check(); err != nil {
				return err
			}
			var skip json.RawMessage
			if err := b.dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		field := joinPath(path, key)
		if !validJSONText(lit) {
			b.addContent(field, "has a name that is not valid UTF-8")
		}
		if seen[key] {
			b.addContract(field, "appears more than once")
		}
		seen[key] = true
		if err := b.check(); err != nil {
			return err
		}
		if err := b.value(prop, field); err != nil {
			return err
		}
	}
	_, err := b.dec.Token() // '}'
	return err
}

// array scans the items of an array whose '[' was read, stopping at the
// first item beyond the schema's maxItems: the rest cannot matter.
func (b *bodyScan) array(s *openapi3.Schema, path string) error {
	var item *openapi3.Schema
	if s != nil && s.Items != nil {
		item = s.Items.Value
	}
	for i := 0; b.dec.More(); i++ {
		if s != nil && s.MaxItems != nil && uint64(i) >= *s.MaxItems {
			b.addContract(path, fmt.Sprintf("must have at most %d items", *s.MaxItems))
			return errStopScan
		}
		if err := b.value(item, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	_, err := b.dec.Token() // ']'
	return err
}

// text checks a string value: its literal must be valid UTF-8 without
// lone surrogates, and, unless the schema says it is a password (which is
// hashed, never shown or stored), it must hold no control character.
func (b *bodyScan) text(s *openapi3.Schema, path string, lit []byte, decoded string) {
	field := path
	if field == "" {
		field = "body"
	}
	if !validJSONText(lit) {
		b.addContent(field, "is not valid UTF-8")
		return
	}
	if s != nil && s.Format == "password" {
		return
	}
	if i := refusedTextIndex(decoded); i >= 0 {
		b.addContent(field, "must not contain control characters")
	}
}

// peek returns the first byte of the next value, past the separators
// before it, or 0 at the end of the body.
func (b *bodyScan) peek() byte {
	for _, c := range b.raw[b.dec.InputOffset():] {
		switch c {
		case ' ', '\t', '\r', '\n', ',', ':':
			continue
		}
		return c
	}
	return 0
}

// literal returns the string literal of the token that ended at the
// decoder's offset and whose separators began at start.
func (b *bodyScan) literal(start int64) []byte {
	lit := b.raw[start:b.dec.InputOffset()]
	if i := bytes.IndexByte(lit, '"'); i >= 0 {
		return lit[i:]
	}
	return lit
}

// plainName is a member name safe to echo in a field path.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// joinPath extends a dotted body path by one member.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// validJSONText reports whether a JSON string literal is valid UTF-8 and
// its \u escapes pair every surrogate: Go's decoder turns both faults into
// U+FFFD without a word, so "pässword" sent in Latin-1 would silently
// become another password.
func validJSONText(lit []byte) bool {
	if !utf8.Valid(lit) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' {
			continue
		}
		i++
		if i >= len(lit) || lit[i] != 'u' {
			continue // a one-letter escape; the decoder checks which
		}
		r, ok := hex4(lit, i+1)
		if !ok {
			continue // malformed; the decoder refuses it
		}
		i += 4
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00:
			// A high surrogate must be followed by an escaped low one.
			lo, ok := hex4(lit, i+3)
			if i+2 >= len(lit) || lit[i+1] != '\\' || lit[i+2] != 'u' || !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		case utf16.IsSurrogate(r):
			return false // a low surrogate on its own
		}
	}
	return true
}

// hex4 decodes the four hex digits at lit[i:i+4].
func hex4(lit []byte, i int) (rune, bool) {
	if i+4 > len(lit) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(lit[i:i+4]), 16, 16)
	return rune(v), err == nil
}

// refusedTextIndex returns the index of the first rune that text fields
// refuse, or -1. They end up in events and logs, where a NUL cannot be
// stored (PostgreSQL's jsonb refuses \u0000), a newline or escape forges
// lines, and bidirectional overrides make an audit line read differently
// from what it says: C0 and C1 controls, DEL, the line and paragraph
// separators, and the bidirectional embedding, override and isolate
// controls.
func refusedTextIndex(s string) int {
	for i, r := range s {
		if unicode.Is(unicode.Cc, r) || r == '\u2028' || r == '\u2029' ||
			(r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069') {
			return i
		}
	}
	return -1
}

// jsonBodySchema returns the JSON schema of route's request body when r
// sends one; ok is false when there is nothing for the scan to do (no
// body, another media type: the validator answers those).
func jsonBodySchema(r *http.Request, op *openapi3.Operation) (s *openapi3.Schema, ok bool) {
	if op.RequestBody == nil || op.RequestBody.Value == nil || r.Body == nil || r.Body == http.NoBody {
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, false
	}
	media := op.RequestBody.Value.Content.Get("application/json")
	if media == nil {
		return nil, false
	}
	if media.Schema != nil {
		s = media.Schema.Value
	}
	return s, true
}
