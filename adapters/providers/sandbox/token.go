package sandbox

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// tokenKind separates the kinds of signed value, so that one kind can never
// be presented as another: the kind is both the visible prefix and part of
// the MAC's input.
type tokenKind string

const (
	kindCode    tokenKind = "sbxc"
	kindAccess  tokenKind = "sbxa"
	kindRefresh tokenKind = "sbxr"
	kindForm    tokenKind = "sbxf"
)

// claims are the contents of every signed value. Tokens are self-contained
// so that they stay valid across a restart of the server: only revocations
// and spent codes live in memory.
type claims struct {
	// Grant identifies one authorisation; every token issued from it
	// carries it, and revoking any of them revokes the grant.
	Grant string `json:"g,omitempty"`
	// Seed selects the data (the sandbox user's), Persona the behaviour.
	Seed    uint64  `json:"s,omitempty"`
	Persona Persona `json:"p,omitempty"`
	// Client is the client id the value was issued to.
	Client string `json:"c"`
	// IssuedAt, ExpiresAt and HardExpiry are Unix seconds; HardExpiry is
	// when the grant's refresh tokens stop working.
	IssuedAt   int64 `json:"iat"`
	ExpiresAt  int64 `json:"exp"`
	HardExpiry int64 `json:"hx,omitempty"`
	// Nonce makes every issued value distinct, and identifies a code for
	// the spent-code list.
	Nonce string `json:"n"`
	// Redirect, Challenge and Scope are bound to a code (and a form).
	Redirect  string `json:"r,omitempty"`
	Challenge string `json:"pc,omitempty"`
	Scope     string `json:"sc,omitempty"`
	// State is carried by the authorize form only.
	State string `json:"st,omitempty"`
}

// signer issues and verifies the sandbox's signed values with HMAC-SHA256
// under a key derived from the configured one.
type signer struct {
	key []byte
}

func newSigner(key []byte) signer {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("dashtam sandbox token signing v1"))
	return signer{key: m.Sum(nil)}
}

var errBadToken = errors.New("malformed, forged or foreign token")

var b64 = base64.RawURLEncoding

// sign returns kind_payload.mac.
func (s signer) sign(kind tokenKind, c claims) string {
	body, err := json.Marshal(c)
	if err != nil {
		panic("sandbox: marshal claims: " + err.Error()) // claims hold only strings and integers
	}
	payload := b64.EncodeToString(body)
	return string(kind) + "_" + payload + "." + b64.EncodeToString(s.mac(kind, payload))
}

// verify checks value's kind and MAC and returns its claims; it does not
// check expiry or revocation, which depend on the caller's clock and state.
func (s signer) verify(kind tokenKind, value string) (claims, error) {
	rest, ok := strings.CutPrefix(value, string(kind)+"_")
	if !ok || len(value) > 8192 {
		return claims{}, errBadToken
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return claims{}, errBadToken
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(kind, payload)) {
		return claims{}, errBadToken
	}
	body, err := b64.DecodeString(payload)
	if err != nil {
		return claims{}, errBadToken
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil {
		return claims{}, errBadToken
	}
	return c, nil
}

func (s signer) mac(kind tokenKind, payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// randomID returns n random bytes in base64url.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b)
}

// pkceS256 is RFC 7636's S256 transform of a verifier.
func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64.EncodeToString(sum[:])
}

// validVerifier reports whether v has RFC 7636's verifier syntax.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, r := range v {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
			return false
		}
	}
	return true
}

// validChallenge reports whether c is an S256 challenge: 32 bytes in base64url.
func validChallenge(c string) bool {
	b, err := b64.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}
