package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Sign returns the Standard Webhooks symmetric signature of one delivery:
// "v1," and the base64 of HMAC-SHA256 under key over
// "{id}.{unix timestamp}.{body}".
func Sign(key []byte, id string, at time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(at.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignatureHeader is the webhook-signature value: one signature per key,
// space separated, so a receiver verifies with whichever secret it holds
// while a rotation overlaps.
func SignatureHeader(keys [][]byte, id string, at time.Time, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, at, body)
	}
	return strings.Join(sigs, " ")
}

// DecodeSecret returns the key of a "whsec_<base64>" secret (the prefix is
// optional, as receivers' libraries accept both).
func DecodeSecret(secret string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
}

// Verify reports whether header carries a v1 signature of the delivery
// under key, comparing in constant time: what a receiver does, and what the
// tests check deliveries with.
func Verify(key []byte, id string, at time.Time, body []byte, header string) bool {
	want := Sign(key, id, at, body)
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
