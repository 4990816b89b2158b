package sandbox

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
)

// The sandbox's data comes from counter-based hashing, not from a stateful
// random source: the value for (seed, account, day, slot) is the same on
// every call and every machine, which makes the data deterministic and lets
// any day be generated without generating the days before it.

// mix is SplitMix64's finaliser, a fast bijective scrambler.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash combines values into one well-mixed word.
func hash(vals ...uint64) uint64 {
	h := uint64(0x6a09e667f3bcc908)
	for _, v := range vals {
		h = mix(h ^ v)
	}
	return h
}

// stream is a deterministic sequence of words from one starting hash.
type stream struct{ s uint64 }

func (r *stream) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// intn returns a value in [0, n); the modulo bias is irrelevant here.
func (r *stream) intn(n int64) int64 { return int64(r.next() % uint64(n)) }

// between returns a value in [lo, hi].
func (r *stream) between(lo, hi int64) int64 { return lo + r.intn(hi-lo+1) }

// SeedForUser returns the data seed of a sandbox user name: the same name
// (ignoring case and surrounding space) always yields the same data, on
// every installation, whatever the signing key.
func SeedForUser(user string) uint64 {
	sum := sha256.Sum256([]byte("dashtam sandbox user\x00" + strings.ToLower(strings.TrimSpace(user))))
	return binary.BigEndian.Uint64(sum[:8])
}

// Salt words separating the uses of hash, so that two uses never share a value.
const (
	saltProfile uint64 = iota + 1
	saltAccount
	saltDay
	saltLot
	saltPrice
	saltID
)
