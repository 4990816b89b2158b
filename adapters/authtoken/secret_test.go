package authtoken

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestOpaqueNew(t *testing.T) {
	var o Opaque
	seen := make(map[string]bool)
	for range 64 {
		tok, digest, err := o.New()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
		if err != nil {
			t.Fatalf("token %q is not unpadded base64url: %v", tok, err)
		}
		if len(raw) != SecretBytes || len(raw)*8 < 256 {
			t.Fatalf("token carries %d bytes; want %d", len(raw), SecretBytes)
		}
		if want := sha256.Sum256([]byte(tok)); !bytes.Equal(digest, want[:]) {
			t.Fatal("digest is not SHA-256 of the token")
		}
		if !bytes.Equal(o.Digest(tok), digest) {
			t.Fatal("Digest does not reproduce the digest New returned")
		}
		if seen[tok] {
			t.Fatal("token repeated")
		}
		seen[tok] = true
	}
}
