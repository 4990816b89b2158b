package authtoken

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
)

const (
	testIssuer = "https://dashtam.example"
	testSecret = "0123456789abcdef0123456789abcdef" // 32 bytes
)

// clock is an injected time source the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)}
}

func mustJWT(tb testing.TB, cfg JWTConfig) *JWT {
	tb.Helper()
	if cfg.Secret == nil {
		cfg.Secret = []byte(testSecret)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	j, err := NewJWT(cfg)
	if err != nil {
		tb.Fatalf("NewJWT: %v", err)
	}
	return j
}

func sampleClaims() commands.AccessClaims {
	return commands.AccessClaims{
		Subject:      uuid.MustParse("6f1c1c5e-7d43-4a8e-9a57-0c0f1d7d2b11"),
		SessionID:    uuid.MustParse("b0a4b6f5-2a9e-4c58-8d6f-3f9a1b2c3d4e"),
		Roles:        []string{"user"},
		TokenVersion: 7,
	}
}

func mustIssue(tb testing.TB, j *JWT, c commands.AccessClaims) string {
	tb.Helper()
	tok, _, err := j.Issue(c)
	if err != nil {
		tb.Fatalf("Issue: %v", err)
	}
	return tok
}

// validWire returns the claims a correct token carries at time now, for tests
// that sign tokens themselves with a different algorithm or key.
func validWire(now time.Time) accessClaims {
	c := sampleClaims()
	return accessClaims{
		SessionID: c.SessionID.String(),
		Roles:     c.Roles,
		Version:   c.TokenVersion,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   c.Subject.String(),
			Audience:  jwt.ClaimStrings{DefaultAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(DefaultTTL)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        "test-jti",
		},
	}
}

func sign(tb testing.TB, m jwt.SigningMethod, claims jwt.Claims, key any) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign with %s: %v", m.Alg(), err)
	}
	return tok
}

func seg(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestRoundTrip(t *testing.T) {
	clk := newClock()
	j := mustJWT(t, JWTConfig{Now: clk.Now})
	in := sampleClaims()

	tok, exp, err := j.Issue(in)
	if err != nil {
		t.Fatal(err)
	}
	wantIat := clk.t.Truncate(time.Second)
	if !exp.Equal(wantIat.Add(15 * time.Minute)) {
		t.Fatalf("expiresAt = %v; want %v", exp, wantIat.Add(15*time.Minute))
	}

	clk.advance(14 * time.Minute)
	got, err := j.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Subject != in.Subject || got.SessionID != in.SessionID || got.TokenVersion != in.TokenVersion ||
		strings.Join(got.Roles, ",") != "user" || got.ID == "" ||
		!got.IssuedAt.Equal(wantIat) || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("Verify = %+v; want the issued claims", got)
	}

	// jti is unique per token unless the caller chose it.
	if other, _ := j.Verify(mustIssue(t, j, in)); other.ID == got.ID {
		t.Fatal("two tokens share a jti")
	}
	in.ID = "chosen-id"
	if chosen, _ := j.Verify(mustIssue(t, j, in)); chosen.ID != "chosen-id" {
		t.Fatalf("jti = %q; want the caller's", chosen.ID)
	}
}

func TestWireFormat(t *testing.T) {
	j := mustJWT(t, JWTConfig{Now: newClock().Now})
	parts := strings.Split(mustIssue(t, j, sampleClaims()), ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var header map[string]any
	var payload map[string]any
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "HS256" {
		t.Fatalf("alg = %v", header["alg"])
	}
	for _, k := range []string{"sub", "sid", "roles", "ver", "jti", "iat", "exp", "iss", "aud"} {
		if _, ok := payload[k]; !ok {
			t.Errorf("claim %q missing from %v", k, payload)
		}
	}
	if payload["iss"] != testIssuer {
		t.Errorf("iss = %v", payload["iss"])
	}
	if aud, _ := payload["aud"].([]any); len(aud) != 1 || aud[0] != DefaultAudience {
		t.Errorf("aud = %v", payload["aud"])
	}
	if exp, iat := payload["exp"].(float64), payload["iat"].(float64); exp-iat != 900 {
		t.Errorf("exp - iat = %v s; want 900", exp-iat)
	}
}

func TestNoRolesIsAnEmptyList(t *testing.T) {
	j := mustJWT(t, JWTConfig{Now: newClock().Now})
	c := sampleClaims()
	c.Roles = nil
	got, err := j.Verify(mustIssue(t, j, c))
	if err != nil {
		t.Fatal(err)
	}
	if got.Roles == nil || len(got.Roles) != 0 {
		t.Fatalf("roles = %#v; want empty, non-nil", got.Roles)
	}
}

func TestExpiry(t *testing.T) {
	clk := newClock()
	j := mustJWT(t, JWTConfig{Now: clk.Now})
	tok := mustIssue(t, j, sampleClaims())
	iat := clk.t.Truncate(time.Second)

	// Last instant within lifetime plus leeway: still good.
	clk.t = iat.Add(DefaultTTL + DefaultLeeway - time.Nanosecond)
	if _, err := j.Verify(tok); err != nil {
		t.Fatalf("Verify just inside leeway: %v", err)
	}
	clk.t = iat.Add(DefaultTTL + DefaultLeeway)
	_, err := j.Verify(tok)
	if !errors.Is(err, ErrExpired) || !errors.Is(err, commands.ErrTokenExpired) {
		t.Fatalf("Verify after expiry = %v; want ErrExpired", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Fatal("an expired genuine token must not also be ErrInvalid")
	}
}

func TestIssuedInTheFutureIsInvalid(t *testing.T) {
	clk := newClock()
	j := mustJWT(t, JWTConfig{Now: clk.Now})
	tok := mustIssue(t, j, sampleClaims())
	clk.advance(-DefaultLeeway - time.Second) // the verifier's clock is behind
	if _, err := j.Verify(tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify = %v; want ErrInvalid", err)
	}
}

func TestRejects(t *testing.T) {
	clk := newClock()
	now := clk.t
	j := mustJWT(t, JWTConfig{Now: clk.Now})
	good := mustIssue(t, j, sampleClaims())
	goodParts := strings.Split(good, ".")

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := []byte("another-secret-of-32-bytes-or-so!")
	expired := validWire(now.Add(-time.Hour))

	otherAud := mustJWT(t, JWTConfig{Now: clk.Now, Audience: "someone-else"})
	otherIss := mustJWT(t, JWTConfig{Now: clk.Now, Issuer: "https://evil.example"})

	withClaim := func(mutate func(*accessClaims)) string {
		c := validWire(now)
		mutate(&c)
		return sign(t, jwt.SigningMethodHS256, c, []byte(testSecret))
	}

	// tamper re-encodes the payload of the good token with roles raised to
	// admin, keeping its signature.
	var payload map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(goodParts[1])
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	payload["roles"] = []string{"admin"}
	tampered := goodParts[0] + "." + seg(t, payload) + "." + goodParts[2]

	// alg confusion: header claims RS256 but the "signature" is an HMAC with
	// the shared secret, as if the secret were a public key.
	rsHeader := seg(t, map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + goodParts[1]
	hmacSig, _ := jwt.SigningMethodHS256.Sign(rsHeader, []byte(testSecret))
	confused := rsHeader + "." + base64.RawURLEncoding.EncodeToString(hmacSig)

	sigBytes, _ := base64.RawURLEncoding.DecodeString(goodParts[2])
	sigBytes[0] ^= 1
	flippedSig := goodParts[0] + "." + goodParts[1] + "." + base64.RawURLEncoding.EncodeToString(sigBytes)

	cases := map[string]string{
		"empty":              "",
		"garbage":            "not a token",
		"two segments":       goodParts[0] + "." + goodParts[1],
		"four segments":      good + ".x",
		"alg none":           sign(t, jwt.SigningMethodNone, validWire(now), jwt.UnsafeAllowNoneSignatureType),
		"alg none, good sig": seg(t, map[string]string{"alg": "none", "typ": "JWT"}) + "." + goodParts[1] + "." + goodParts[2],
		"alg NONE no sig":    seg(t, map[string]string{"alg": "NONE", "typ": "JWT"}) + "." + goodParts[1] + ".",
		"no alg":             seg(t, map[string]string{"typ": "JWT"}) + "." + goodParts[1] + "." + goodParts[2],
		"other key":          sign(t, jwt.SigningMethodHS256, validWire(now), otherKey),
		"HS512 same key":     sign(t, jwt.SigningMethodHS512, validWire(now), []byte(testSecret)),
		"HS384 same key":     sign(t, jwt.SigningMethodHS384, validWire(now), []byte(testSecret)),
		"RS256":              sign(t, jwt.SigningMethodRS256, validWire(now), rsaKey),
		"RS256 header, HMAC": confused,
		"wrong audience":     mustIssue(t, otherAud, sampleClaims()),
		"wrong issuer":       mustIssue(t, otherIss, sampleClaims()),
		"tampered payload":   tampered,
		"flipped signature":  flippedSig,
		"stripped signature": goodParts[0] + "." + goodParts[1] + ".",
		"expired, other key": sign(t, jwt.SigningMethodHS256, expired, otherKey),
		"expired, wrong aud": withClaim(func(c *accessClaims) {
			c.ExpiresAt = expired.ExpiresAt
			c.IssuedAt = expired.IssuedAt
			c.Audience = jwt.ClaimStrings{"someone-else"}
		}),
		"no exp":         withClaim(func(c *accessClaims) { c.ExpiresAt = nil }),
		"no aud":         withClaim(func(c *accessClaims) { c.Audience = nil }),
		"no iss":         withClaim(func(c *accessClaims) { c.Issuer = "" }),
		"sub not a uuid": withClaim(func(c *accessClaims) { c.Subject = "admin" }),
		"sid not a uuid": withClaim(func(c *accessClaims) { c.SessionID = "" }),
		"no jti":         withClaim(func(c *accessClaims) { c.ID = "" }),
		"audience list, ours absent": withClaim(func(c *accessClaims) {
			c.Audience = jwt.ClaimStrings{"a", "b"}
		}),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := j.Verify(tok)
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, commands.ErrTokenInvalid) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalid", got, err)
			}
			if errors.Is(err, ErrExpired) {
				t.Fatal("a forged or foreign token must not be reported as merely expired")
			}
			if got.Subject != uuid.Nil {
				t.Fatalf("claims leaked from a rejected token: %+v", got)
			}
		})
	}

	// The control: the same construction with the right key passes, so the
	// cases above fail for the reason they name.
	if _, err := j.Verify(sign(t, jwt.SigningMethodHS256, validWire(now), []byte(testSecret))); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}
}

func TestNewJWTRefuses(t *testing.T) {
	for name, cfg := range map[string]JWTConfig{
		"no secret":       {Issuer: testIssuer},
		"31-byte secret":  {Issuer: testIssuer, Secret: []byte(testSecret[:31])},
		"no issuer":       {Secret: []byte(testSecret)},
		"negative ttl":    {Issuer: testIssuer, Secret: []byte(testSecret), TTL: -time.Minute},
		"negative leeway": {Issuer: testIssuer, Secret: []byte(testSecret), Leeway: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewJWT(cfg); err == nil {
				t.Fatal("NewJWT succeeded")
			} else if strings.Contains(err.Error(), testSecret[:16]) {
				t.Fatalf("error %q reveals the secret", err)
			}
		})
	}
}

func TestSecretIsCopied(t *testing.T) {
	clk := newClock()
	secret := []byte(testSecret)
	j := mustJWT(t, JWTConfig{Secret: secret, Now: clk.Now})
	tok := mustIssue(t, j, sampleClaims())
	for i := range secret {
		secret[i] = 0
	}
	if _, err := j.Verify(tok); err != nil {
		t.Fatalf("Verify after the caller's buffer changed: %v", err)
	}
}

// TestVerifiedTokenKeepsItsClockChecks verifies a token once (so that it
// is cached), then moves the clock: a later Verify still answers as the
// full check would, for a token issued "in the future" of a clock moved
// back and for one past its expiry.
func TestVerifiedTokenKeepsItsClockChecks(t *testing.T) {
	clk := newClock()
	j := mustJWT(t, JWTConfig{Now: clk.Now})
	tok := mustIssue(t, j, sampleClaims())
	first, err := j.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	first.Roles[0] = "changed by a caller"
	again, err := j.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if again.Roles[0] == "changed by a caller" {
		t.Fatal("a caller's change of the roles reached the cached claims")
	}
	start := clk.t
	clk.advance(-DefaultLeeway - time.Second)
	if _, err := j.Verify(tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify with the clock behind iat = %v; want ErrInvalid", err)
	}
	clk.t = start.Add(DefaultTTL + DefaultLeeway)
	if _, err := j.Verify(tok); !errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify after expiry = %v; want ErrExpired", err)
	}
}

// TestVerifyConcurrently verifies more distinct tokens than the cache
// holds from many goroutines at once (run with -race): each answer is its
// own token's, and a tampered copy of a cached token is still refused.
func TestVerifyConcurrently(t *testing.T) {
	clk := newClock()
	j := mustJWT(t, JWTConfig{Now: clk.Now})
	const n = verifiedMax + 100
	toks := make([]string, n)
	subs := make([]uuid.UUID, n)
	for i := range toks {
		c := sampleClaims()
		c.Subject = uuid.New()
		subs[i], toks[i] = c.Subject, mustIssue(t, j, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := range 2 * n {
				i := (k*7 + g*131) % n
				c, err := j.Verify(toks[i])
				if err == nil && c.Subject != subs[i] {
					err = fmt.Errorf("token %d answered subject %s, want %s", i, c.Subject, subs[i])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tampered := toks[0][:len(toks[0])-2] + "AA"
	if tampered == toks[0] {
		tampered = toks[0][:len(toks[0])-2] + "BB"
	}
	if _, err := j.Verify(tampered); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify of a tampered cached token = %v; want ErrInvalid", err)
	}
}
