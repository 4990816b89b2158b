package eventstore

import (
	"bytes"
	"testing"
)

func FuzzCanonicalMetadata(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"actor":"user:1","ip":"192.0.2.1"}`, `{"b":"1","a":"2"}`, `{"a":"x\"y"}`,
		`{"a":"\u2028"}`, "{\"a\":\"\u2028\"}", `{"a":"<&>"}`, `{"a":1}`, `{"a":"é"}`, "{\"a\":\"\xff\"}",
		`{"a":"1","a":"2"}`, `{"a":{"b":"c"}}`, `[]`, `{"a":"b"} x`, `{"a":"b",}`, `{"a" : "b" , "c":"d"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		want, werr := canonicalJSON(doc)
		got, flat, gerr := canonicalMetadata(doc)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: errors differ: %v / %v", doc, werr, gerr)
		}
		if werr == nil && !bytes.Equal(want, got) {
			t.Fatalf("%q: canonical forms differ:\n%s\n%s (flat %v)", doc, want, got, flat)
		}
	})
}

func BenchmarkCanonicalMetadata(b *testing.B) {
	doc := []byte(`{"ip": "192.0.2.1", "actor": "user:0190a6f4-8b1e-7c3d-9a2b-1c2d3e4f5a6b", "command": "login", "trace_id": "0123456789abcdef0123456789abcdef", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}`)
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			_, _, _ = canonicalMetadata(doc)
		}
	})
	b.Run("general", func(b *testing.B) {
		for range b.N {
			_, _ = canonicalJSON(doc)
		}
	})
}
