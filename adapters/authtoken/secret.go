package authtoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/dashtam/dashtam/commands"
)

// SecretBytes is the entropy of an opaque token: 256 bits, beyond guessing
// even by an attacker who can try online for the token's whole lifetime.
const SecretBytes = 32

// Opaque issues opaque secret tokens (refresh, email verification, password
// reset); its zero value is ready to use and it implements
// commands.SecretTokens.
type Opaque struct{}

var _ commands.SecretTokens = Opaque{}

// New returns a token of SecretBytes random bytes, base64url without padding
// (43 characters, safe in URLs and headers), and its SHA-256 digest, which is
// all that may be stored.
func (Opaque) New() (string, []byte, error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate secret token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	return token, Digest(token), nil
}

// Digest applies the package-level Digest.
func (Opaque) Digest(token string) []byte { return Digest(token) }

// Digest returns SHA-256 of the token as presented. A plain, unsalted hash is
// enough here, unlike for passwords: the token has 256 bits of entropy, so
// there is nothing to brute-force, and determinism is what lets the database
// find the row by an index on the digest.
func Digest(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
