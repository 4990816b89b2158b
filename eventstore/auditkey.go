package eventstore

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Signer signs audit checkpoints with an Ed25519 key (RFC 8032), so that a
// rewritten log cannot be presented with checkpoints that vouch for it
// without the key. See docs/audit.md.
type Signer struct {
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey
	keyID string
}

// ErrSigningKey means a configured signing key is not base64 of a 32-byte seed.
var ErrSigningKey = errors.New("audit signing key must be base64 of a 32-byte Ed25519 seed")

// ParseSigningKey reads DASHTAM_AUDIT_SIGNING_KEY's form: standard base64
// of the 32-byte RFC 8032 seed. The error never repeats the value.
func ParseSigningKey(b64 string) (*Signer, error) {
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, ErrSigningKey
	}
	return NewSigner(seed)
}

// NewSigner returns the signer of an RFC 8032 seed.
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, ErrSigningKey
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{priv: priv, pub: pub, keyID: KeyID(pub)}, nil
}

// PublicKey returns the key that verifies the signer's checkpoints.
func (s *Signer) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), s.pub...) }

// KeyID returns the id checkpoints name the signer's key by.
func (s *Signer) KeyID() string { return s.keyID }

// sign signs msg.
func (s *Signer) sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// KeyID names a public key in checkpoints: the first 8 bytes of its
// SHA-256, in hex, so operators can compare keys at a glance.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// EncodePublicKey renders a public key as `dashtam audit public-key` prints
// it and --public-key accepts: standard base64 of its 32 bytes.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// ParsePublicKey reads EncodePublicKey's form.
func ParsePublicKey(b64 string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key must be base64 of %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// TrustedKeys are the public keys a verifier accepts checkpoints from. An
// empty set accepts each checkpoint's own key (checking only that the
// signature matches it), which proves integrity but not origin; pin keys
// for that.
type TrustedKeys []ed25519.PublicKey

// check verifies sig over msg by pub, which must be trusted.
func (t TrustedKeys) check(pub ed25519.PublicKey, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return errors.New("malformed key or signature")
	}
	if len(t) > 0 {
		trusted := false
		for _, k := range t {
			if k.Equal(pub) {
				trusted = true
				break
			}
		}
		if !trusted {
			return fmt.Errorf("signed by key %s, which is not trusted", KeyID(pub))
		}
	}
	if !ed25519.Verify(pub, msg, sig) {
		return errors.New("signature does not verify")
	}
	return nil
}
