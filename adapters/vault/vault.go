// Package vault implements commands.Vault with AES-256-GCM: a keyring of
// 32-byte keys, each with an id, whose newest key seals and whose every key
// opens, so that keys rotate without downtime (`dashtam keys rotate`
// re-seals old blobs while the server runs).
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
)

// blobVersion is the first byte of every blob: the layout below.
//
//	version (1) | key id length (1) | key id | nonce (12) | ciphertext and tag
//
// The additional data is "dashtam vault v1", the connection id and the
// key id, so a blob opens only for the connection it was sealed for and
// its key id cannot be swapped for another key's.
const blobVersion byte = 1

const nonceSize = 12

// Keyring holds the vault's keys, newest first.
type Keyring struct {
	ids   []string
	aeads map[string]cipher.AEAD
}

var _ commands.Vault = (*Keyring)(nil)

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Parse reads a keyring from its configured form: either one key, base64
// of exactly 32 bytes (its id is derived from the key), or a
// comma-separated list of id:base64 entries, newest first. Errors never
// repeat key material.
func Parse(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty keyring")
	}
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	if !strings.Contains(s, ":") {
		key, err := decodeKey(s)
		if err != nil {
			return nil, err
		}
		return k, k.add(DefaultKeyID(key), key)
	}
	for i, entry := range strings.Split(s, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok {
			return nil, fmt.Errorf("keyring entry %d: want id:base64", i+1)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("keyring entry %d: key id must be 1-64 letters, digits, '-' or '_'", i+1)
		}
		key, err := decodeKey(b64)
		if err != nil {
			return nil, fmt.Errorf("keyring entry %d (%s): %w", i+1, id, err)
		}
		if err := k.add(id, key); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// DefaultKeyID is the id of a key configured without one: a short
// fingerprint of the key, so that the id changes when the key does.
func DefaultKeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("dashtam vault key id\x00"), key...))
	return "k" + hex.EncodeToString(sum[:4])
}

func decodeKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(key) != 32 {
		return nil, errors.New("a key must be base64 of exactly 32 bytes")
	}
	return key, nil
}

func (k *Keyring) add(id string, key []byte) error {
	if _, dup := k.aeads[id]; dup {
		return fmt.Errorf("key id %s appears twice", id)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("key %s: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("key %s: %w", id, err)
	}
	k.ids = append(k.ids, id)
	k.aeads[id] = aead
	return nil
}

// NewestKeyID is the id of the key Seal uses.
func (k *Keyring) NewestKeyID() string { return k.ids[0] }

// KeyIDs lists the keyring's ids, newest first.
func (k *Keyring) KeyIDs() []string { return append([]string(nil), k.ids...) }

// Seal encrypts plaintext for connection under the newest key with a
// random 12-byte nonce.
func (k *Keyring) Seal(connection uuid.UUID, plaintext []byte) ([]byte, string, error) {
	id := k.ids[0]
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", fmt.Errorf("vault: nonce: %w", err)
	}
	header := append([]byte{blobVersion, byte(len(id))}, id...)
	out := append(header, nonce...)
	out = k.aeads[id].Seal(out, nonce, plaintext, additionalData(connection, id))
	return out, id, nil
}

// Open decrypts a blob of connection.
func (k *Keyring) Open(connection uuid.UUID, blob []byte) ([]byte, error) {
	if len(blob) < 2 || blob[0] != blobVersion {
		return nil, commands.ErrVaultTampered
	}
	n := int(blob[1])
	if len(blob) < 2+n+nonceSize {
		return nil, commands.ErrVaultTampered
	}
	id := string(blob[2 : 2+n])
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", commands.ErrVaultUnknownKey, id)
	}
	nonce := blob[2+n : 2+n+nonceSize]
	plain, err := aead.Open(nil, nonce, blob[2+n+nonceSize:], additionalData(connection, id))
	if err != nil {
		return nil, commands.ErrVaultTampered
	}
	return plain, nil
}

// KeyIDOf returns the id of the key a blob was sealed under.
func KeyIDOf(blob []byte) (string, error) {
	if len(blob) < 2 || blob[0] != blobVersion || len(blob) < 2+int(blob[1]) {
		return "", commands.ErrVaultTampered
	}
	return string(blob[2 : 2+int(blob[1])]), nil
}

func additionalData(connection uuid.UUID, keyID string) []byte {
	ad := append([]byte("dashtam vault v1\x00"), connection[:]...)
	return append(ad, keyID...)
}
