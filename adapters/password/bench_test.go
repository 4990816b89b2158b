package password

import (
	"testing"
)

// BenchmarkHash is the cost of storing a password at OWASP parameters
// (registration, reset, rehash on login).
func BenchmarkHash(b *testing.B) {
	h := mustHasher(b, OWASP)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the hash time per login; logins/s is what one core can
// sustain if hashing were the only work.
func BenchmarkVerify(b *testing.B) {
	h := mustHasher(b, OWASP)
	enc := mustHash(b, h, "correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify("correct horse battery staple", enc); err != nil || !ok {
			b.Fatal("verify failed", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// BenchmarkVerifyParallel is the same work on every core (GOMAXPROCS
// goroutines), the ceiling on logins per second for one server.
func BenchmarkVerifyParallel(b *testing.B) {
	h := mustHasher(b, OWASP)
	enc := mustHash(b, h, "correct horse battery staple")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := h.Verify("correct horse battery staple", enc); err != nil || !ok {
				b.Error("verify failed", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// BenchmarkVerifyDummy must be close to BenchmarkVerify, or unknown emails
// are distinguishable by timing.
func BenchmarkVerifyDummy(b *testing.B) {
	h := mustHasher(b, OWASP)
	b.ReportAllocs()
	for b.Loop() {
		h.VerifyDummy("correct horse battery staple")
	}
}

// BenchmarkCheck is the policy check of a new password (list already loaded).
func BenchmarkCheck(b *testing.B) {
	_ = commonPasswords()
	b.ReportAllocs()
	for b.Loop() {
		_ = Check("purple monkey dishwasher")
	}
}
