package password

import (
	"fmt"

	"github.com/alexedwards/argon2id"
	"golang.org/x/text/unicode/norm"

	"github.com/dashtam/dashtam/commands"
)

// ErrMalformedHash means a stored hash cannot be read; it is the same value as
// commands.ErrPasswordHashMalformed.
var ErrMalformedHash = commands.ErrPasswordHashMalformed

// Params are the argon2id cost parameters; they are written into every hash,
// so raising them later only makes old hashes report needsRehash.
type Params struct {
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Iterations is the time cost (passes over memory).
	Iterations uint32
	// Parallelism is the number of lanes; 1 keeps a login on one core so a
	// burst of logins cannot starve the rest of the server.
	Parallelism uint8
}

// OWASP are the parameters of the OWASP Password Storage Cheat Sheet's first
// argon2id configuration: m = 19 MiB (19456 KiB), t = 2, p = 1. The cheat
// sheet lists equivalent trade-offs (m=46 MiB t=1, m=12 MiB t=3, m=9 MiB t=4,
// m=7 MiB t=5); this one bounds memory per concurrent login at 19 MiB, which
// a 2-core, many-GiB server absorbs easily.
var OWASP = Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

const (
	// 16-byte salts and 32-byte keys are what RFC 9106 recommends; they are
	// part of the comparison for needsRehash too.
	saltLength = 16
	keyLength  = 32

	// Stored hashes are read back from our own database, but a corrupt or
	// tampered row must not make one login allocate gigabytes or compare an
	// empty key (which would match any password), so decoding is bounded.
	maxMemoryKiB  = 1 << 20 // 1 GiB
	maxIterations = 64
	minSaltLength = 8
	minKeyLength  = 16

	// dummyPassword is hashed once per Hasher so VerifyDummy does the same
	// work as a real Verify; its value is irrelevant and it never matches a
	// real account because no account row holds its hash.
	dummyPassword = "dashtam-dummy-password-for-unknown-emails"
)

// Hasher hashes and verifies passwords with argon2id; it is safe for
// concurrent use and implements commands.PasswordHasher.
type Hasher struct {
	params argon2id.Params
	dummy  string
}

var _ commands.PasswordHasher = (*Hasher)(nil)

// New returns a Hasher for p, refusing parameters argon2id cannot run with
// (zero cost, or less than 8 KiB of memory per lane) or that exceed the
// bounds Verify accepts, since such a Hasher could not verify its own hashes.
func New(p Params) (*Hasher, error) {
	switch {
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return nil, fmt.Errorf("new password hasher: iterations %d outside 1..%d", p.Iterations, maxIterations)
	case p.Parallelism < 1:
		return nil, fmt.Errorf("new password hasher: parallelism must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Parallelism) || p.MemoryKiB > maxMemoryKiB:
		return nil, fmt.Errorf("new password hasher: memory %d KiB outside %d..%d", p.MemoryKiB, 8*uint32(p.Parallelism), maxMemoryKiB)
	}
	h := &Hasher{params: argon2id.Params{
		Memory:      p.MemoryKiB,
		Iterations:  p.Iterations,
		Parallelism: p.Parallelism,
		SaltLength:  saltLength,
		KeyLength:   keyLength,
	}}
	// The dummy is made with the current parameters, not stored as a
	// constant, so it keeps costing what a real Verify costs when they change.
	dummy, err := h.Hash(dummyPassword)
	if err != nil {
		return nil, fmt.Errorf("new password hasher: %w", err)
	}
	h.dummy = dummy
	return h, nil
}

// Hash returns the PHC-encoded argon2id hash of pw with a fresh random salt,
// e.g. "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>".
func (h *Hasher) Hash(pw string) (string, error) {
	params := h.params
	encoded, err := argon2id.CreateHash(normalize(pw), &params)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return encoded, nil
}

// Verify reports whether pw matches encoded and, only when it does, whether
// encoded was made with parameters other than h's so the caller should store
// a fresh Hash. It returns an error wrapping ErrMalformedHash, and ok ==
// false, only when encoded cannot be read.
func (h *Hasher) Verify(pw, encoded string) (ok bool, needsRehash bool, err error) {
	stored, _, _, err := argon2id.DecodeHash(encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w: %v", ErrMalformedHash, err)
	}
	if err := checkBounds(stored); err != nil {
		return false, false, fmt.Errorf("verify password: %w: %v", ErrMalformedHash, err)
	}
	ok, _, err = argon2id.CheckHash(normalize(pw), encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w: %v", ErrMalformedHash, err)
	}
	// Rehashing is only offered after a match: a caller that rehashed on a
	// wrong password would overwrite the real one.
	return ok, ok && *stored != h.params, nil
}

// VerifyDummy runs a full Verify against a hash made at construction and
// throws the result away, so an unknown email costs the same as a wrong
// password.
func (h *Hasher) VerifyDummy(pw string) {
	_, _, _ = h.Verify(pw, h.dummy)
}

func checkBounds(p *argon2id.Params) error {
	switch {
	case p.Memory > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB above %d", p.Memory, maxMemoryKiB)
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("iterations %d outside 1..%d", p.Iterations, maxIterations)
	case p.Parallelism < 1:
		return fmt.Errorf("parallelism 0")
	case p.Memory < 8*uint32(p.Parallelism):
		return fmt.Errorf("memory %d KiB below 8 KiB per lane", p.Memory)
	case p.SaltLength < minSaltLength:
		return fmt.Errorf("salt of %d bytes", p.SaltLength)
	case p.KeyLength < minKeyLength:
		return fmt.Errorf("key of %d bytes", p.KeyLength)
	}
	return nil
}

// normalize applies NFKC so that visually identical passwords entered as
// different code-point sequences hash alike.
func normalize(pw string) string {
	return norm.NFKC.String(pw)
}
