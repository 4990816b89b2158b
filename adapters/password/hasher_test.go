package password

import (
	"errors"
	"strings"
	"testing"

	"github.com/dashtam/dashtam/commands"
)

// cheap keeps tests that need a second parameter set fast; it is only ever
// the "old" side of a rehash.
var cheap = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func mustHasher(tb testing.TB, p Params) *Hasher {
	tb.Helper()
	h, err := New(p)
	if err != nil {
		tb.Fatalf("New(%+v): %v", p, err)
	}
	return h
}

func mustHash(tb testing.TB, h *Hasher, pw string) string {
	tb.Helper()
	enc, err := h.Hash(pw)
	if err != nil {
		tb.Fatalf("Hash: %v", err)
	}
	return enc
}

func TestHashVerifyRoundTrip(t *testing.T) {
	h := mustHasher(t, OWASP)
	const pw = "correct horse battery staple"
	enc := mustHash(t, h, pw)

	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("encoded hash %q does not carry the OWASP parameters", enc)
	}
	if strings.Contains(enc, pw) {
		t.Fatal("encoded hash contains the password")
	}
	if again := mustHash(t, h, pw); again == enc {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}

	ok, rehash, err := h.Verify(pw, enc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	ok, rehash, err = h.Verify(pw+"!", enc)
	if err != nil || ok || rehash {
		t.Fatalf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
}

func TestVerifyReportsRehashOnlyAfterMatch(t *testing.T) {
	old := mustHasher(t, cheap)
	current := mustHasher(t, OWASP)
	const pw = "an old but still valid passphrase"
	enc := mustHash(t, old, pw)

	ok, rehash, err := current.Verify(pw, enc)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify(old params, right) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	ok, rehash, err = current.Verify("not the passphrase at all", enc)
	if err != nil || ok || rehash {
		t.Fatalf("Verify(old params, wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
}

func TestVerifyNormalizesUnicode(t *testing.T) {
	h := mustHasher(t, cheap)
	composed := "caf\u00e9 au lait, s'il vous pla\u00eet"
	decomposed := "cafe\u0301 au lait, s'il vous plai\u0302t"
	enc := mustHash(t, h, composed)
	if ok, _, err := h.Verify(decomposed, enc); err != nil || !ok {
		t.Fatalf("Verify(decomposed form) = %v, %v; want a match", ok, err)
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	h := mustHasher(t, cheap)
	good := mustHash(t, h, "some long enough password")
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..., salt, key

	cases := map[string]string{
		"empty":           "",
		"plain text":      "some long enough password",
		"bcrypt":          "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i variant": strings.Replace(good, "$argon2id$", "$argon2i$", 1),
		"other version":   strings.Replace(good, "$v=19$", "$v=16$", 1),
		"bad base64 salt": strings.Join([]string{"", parts[1], parts[2], parts[3], "!!!", parts[5]}, "$"),
		// An empty key would compare equal to an empty derived key and
		// accept any password, so it must be refused, not verified.
		"empty key":   strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], ""}, "$"),
		"short salt":  strings.Join([]string{"", parts[1], parts[2], parts[3], "c2FsdA", parts[5]}, "$"),
		"huge memory": strings.Join([]string{"", parts[1], parts[2], "m=4194304,t=1,p=1", parts[4], parts[5]}, "$"),
		"zero time":   strings.Join([]string{"", parts[1], parts[2], "m=64,t=0,p=1", parts[4], parts[5]}, "$"),
		"zero lanes":  strings.Join([]string{"", parts[1], parts[2], "m=64,t=1,p=0", parts[4], parts[5]}, "$"),
	}
	for name, enc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, rehash, err := h.Verify("some long enough password", enc)
			if ok || rehash {
				t.Fatalf("Verify = %v, %v; want false, false", ok, rehash)
			}
			if !errors.Is(err, ErrMalformedHash) || !errors.Is(err, commands.ErrPasswordHashMalformed) {
				t.Fatalf("err = %v; want ErrMalformedHash", err)
			}
		})
	}
}

func TestNewRefusesUnusableParams(t *testing.T) {
	for name, p := range map[string]Params{
		"zero":                     {},
		"zero iterations":          {MemoryKiB: 64, Iterations: 0, Parallelism: 1},
		"zero parallelism":         {MemoryKiB: 64, Iterations: 1, Parallelism: 0},
		"too little memory":        {MemoryKiB: 15, Iterations: 1, Parallelism: 2},
		"more than Verify accepts": {MemoryKiB: maxMemoryKiB + 1, Iterations: 1, Parallelism: 1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(p); err == nil {
				t.Fatalf("New(%+v) succeeded", p)
			}
		})
	}
}

func TestDummyHashUsesCurrentParams(t *testing.T) {
	// VerifyDummy is only as good as the dummy's cost: it must be a hash
	// made with the same parameters as real ones.
	h := mustHasher(t, OWASP)
	if !strings.HasPrefix(h.dummy, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("dummy hash %q is not made with the current parameters", h.dummy)
	}
	if ok, rehash, err := h.Verify(dummyPassword, h.dummy); err != nil || !ok || rehash {
		t.Fatalf("dummy hash does not verify: %v, %v, %v", ok, rehash, err)
	}
	h.VerifyDummy("whatever an attacker sends")
}
