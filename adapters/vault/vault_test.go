package vault_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/commands"
)

func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func mustParse(t *testing.T, s string) *vault.Keyring {
	t.Helper()
	k, err := vault.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustParse(t, key(1))
	conn := uuid.New()
	blob, id, err := k.Seal(conn, []byte("refresh-token-value"))
	if err != nil {
		t.Fatal(err)
	}
	if id != k.NewestKeyID() || id != vault.DefaultKeyID(bytes.Repeat([]byte{1}, 32)) {
		t.Fatalf("key id %q", id)
	}
	if bytes.Contains(blob, []byte("refresh-token-value")) {
		t.Fatal("plaintext visible in the blob")
	}
	got, err := k.Open(conn, blob)
	if err != nil || string(got) != "refresh-token-value" {
		t.Fatalf("open: %q, %v", got, err)
	}
	again, _, _ := k.Seal(conn, []byte("refresh-token-value"))
	if bytes.Equal(again, blob) {
		t.Fatal("two seals of the same plaintext are equal: nonce reused")
	}
}

// TestBlobIsBoundToItsConnection: a blob copied to another connection, or
// altered anywhere, does not open.
func TestBlobIsBoundToItsConnection(t *testing.T) {
	k := mustParse(t, key(2))
	conn := uuid.New()
	blob, _, err := k.Seal(conn, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(uuid.New(), blob); !errors.Is(err, commands.ErrVaultTampered) {
		t.Fatalf("another connection: %v", err)
	}
	for i := range blob {
		bad := bytes.Clone(blob)
		bad[i] ^= 0x01
		if _, err := k.Open(conn, bad); err == nil {
			t.Fatalf("blob with byte %d flipped opened", i)
		}
	}
	for _, cut := range []int{0, 1, 5, len(blob) - 1} {
		if _, err := k.Open(conn, blob[:cut]); err == nil {
			t.Fatalf("blob cut to %d bytes opened", cut)
		}
	}
}

// TestRotation: a keyring with a new key first seals under it and still
// opens blobs of the old one; a keyring without the old key refuses them
// as an unknown key.
func TestRotation(t *testing.T) {
	old := mustParse(t, "old:"+key(3))
	conn := uuid.New()
	blob, id, err := old.Seal(conn, []byte("secret"))
	if err != nil || id != "old" {
		t.Fatalf("seal: %q %v", id, err)
	}
	both := mustParse(t, "new:"+key(4)+", old:"+key(3))
	if both.NewestKeyID() != "new" {
		t.Fatal("newest key is not the first")
	}
	if got, err := both.Open(conn, blob); err != nil || string(got) != "secret" {
		t.Fatalf("old blob under the rotated keyring: %q %v", got, err)
	}
	if kid, _ := vault.KeyIDOf(blob); kid != "old" {
		t.Fatalf("KeyIDOf = %q", kid)
	}
	resealed, id, _ := both.Seal(conn, []byte("secret"))
	if id != "new" {
		t.Fatalf("sealed under %q", id)
	}
	newOnly := mustParse(t, "new:"+key(4))
	if _, err := newOnly.Open(conn, blob); !errors.Is(err, commands.ErrVaultUnknownKey) {
		t.Fatalf("retired key: %v", err)
	}
	if _, err := newOnly.Open(conn, resealed); err != nil {
		t.Fatal(err)
	}
}

// TestParseRefusesBadKeyrings with messages that never echo key material.
func TestParseRefusesBadKeyrings(t *testing.T) {
	for name, s := range map[string]string{
		"empty":         "",
		"short key":     base64.StdEncoding.EncodeToString([]byte("too short")),
		"not base64":    "!!!!",
		"bad id":        "a b:" + key(5),
		"duplicate id":  "a:" + key(5) + ",a:" + key(6),
		"missing colon": "a:" + key(5) + "," + key(6),
		"short in ring": "a:" + base64.StdEncoding.EncodeToString([]byte("x")),
	} {
		_, err := vault.Parse(s)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if len(s) > 8 && strings.Contains(err.Error(), s[len(s)-8:]) {
			t.Errorf("%s: error %q repeats key material", name, err)
		}
	}
}
