package eventstore

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// canonicalMetadata returns canonicalJSON(doc) and whether the document is
// a flat object of strings, which is the shape every appended metadata
// document has. For that shape it re-encodes without decoding into maps:
// a string with no escape, control character, U+2028/U+2029 or invalid
// UTF-8 encodes to its own bytes, so the canonical form is the members
// sorted by key. Anything else falls back to canonicalJSON. It exists for
// audit verify's throughput; FuzzCanonicalMetadata holds it to canonicalJSON.
func canonicalMetadata(doc []byte) (out []byte, flatStrings bool, err error) {
	if m, ok := flatStringObject(doc); ok {
		slices.SortFunc(m, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
		for i := 1; i < len(m); i++ {
			if bytes.Equal(m[i][0], m[i-1][0]) {
				// Duplicate keys: let the general path decide which wins.
				out, err = canonicalJSON(doc)
				return out, false, err
			}
		}
		n := 2
		for _, kv := range m {
			n += len(kv[0]) + len(kv[1]) + 6
		}
		out = make([]byte, 0, n)
		out = append(out, '{')
		for i, kv := range m {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, '"')
			out = append(out, kv[0]...)
			out = append(out, '"', ':', '"')
			out = append(out, kv[1]...)
			out = append(out, '"')
		}
		return append(out, '}'), true, nil
	}
	out, err = canonicalJSON(doc)
	return out, false, err
}

// flatStringObject parses doc as {"k":"v",...} whose keys and values are
// plain strings (see canonicalMetadata); it returns the raw members, or
// false for any other shape.
func flatStringObject(doc []byte) ([][2][]byte, bool) {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return nil, false
	}
	i = skipSpace(doc, i+1)
	out := make([][2][]byte, 0, 8)
	if i < len(doc) && doc[i] == '}' {
		return out, skipSpace(doc, i+1) == len(doc)
	}
	for {
		k, j, ok := plainString(doc, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(doc, j)
		if i >= len(doc) || doc[i] != ':' {
			return nil, false
		}
		v, j, ok := plainString(doc, skipSpace(doc, i+1))
		if !ok {
			return nil, false
		}
		out = append(out, [2][]byte{k, v})
		i = skipSpace(doc, j)
		if i >= len(doc) {
			return nil, false
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case '}':
			return out, skipSpace(doc, i+1) == len(doc)
		default:
			return nil, false
		}
	}
}

// plainString reads a JSON string at doc[i] that needs no escaping either
// way, returning its contents and the index after the closing quote.
func plainString(doc []byte, i int) ([]byte, int, bool) {
	if i >= len(doc) || doc[i] != '"' {
		return nil, 0, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(doc); j++ {
		switch c := doc[j]; {
		case c == '"':
			s := doc[start:j]
			if !ascii && (!utf8.Valid(s) || bytes.Contains(s, []byte("\u2028")) || bytes.Contains(s, []byte("\u2029"))) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, 0, false
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r') {
		i++
	}
	return i
}
