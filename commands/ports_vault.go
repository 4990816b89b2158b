package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/google/uuid"
)

// Vault encrypts provider credentials for storage outside the event log,
// each blob bound to its connection so that a blob copied to another
// connection does not open. adapters/vault implements it with AES-256-GCM
// under a keyring whose newest key seals and whose every key opens.
type Vault interface {
	// Seal encrypts plaintext for connection under the newest key and
	// returns the blob and that key's id.
	Seal(connection uuid.UUID, plaintext []byte) (blob []byte, keyID string, err error)
	// Open decrypts a blob of connection. It returns ErrVaultUnknownKey
	// when the blob's key is not in the keyring, and ErrVaultTampered when
	// the blob was altered, truncated or sealed for another connection.
	Open(connection uuid.UUID, blob []byte) ([]byte, error)
	// NewestKeyID is the id of the key Seal uses; blobs under any other
	// key are re-sealed by `dashtam keys rotate`.
	NewestKeyID() string
}

var (
	// ErrVaultUnknownKey means a blob names a key the keyring does not hold.
	ErrVaultUnknownKey = errors.New("vault: blob sealed under an unknown key")
	// ErrVaultTampered means a blob fails authentication: altered, cut, or another connection's.
	ErrVaultTampered = errors.New("vault: blob does not authenticate")
)

// Fingerprint identifies credentials in events and logs without revealing
// them: the first 16 hex digits of SHA-256 over the refresh and access
// tokens. Provider tokens carry far more entropy than the 64 bits shown,
// so the fingerprint cannot be turned back into a token, yet two
// different credentials practically never share one.
func Fingerprint(c Credentials) string {
	h := sha256.New()
	h.Write([]byte("dashtam credentials v1\x00"))
	h.Write([]byte(c.RefreshToken))
	h.Write([]byte{0})
	h.Write([]byte(c.AccessToken))
	return hex.EncodeToString(h.Sum(nil)[:8])
}
