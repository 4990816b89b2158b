package authtoken

import (
	"testing"
	"time"
)

// BenchmarkVerify is the JWT half of the per-request authentication budget
// (≤ 50 µs together with the session check).
func BenchmarkVerify(b *testing.B) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	j := mustJWT(b, JWTConfig{Now: func() time.Time { return now }})
	tok := mustIssue(b, j, sampleClaims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyParallel is the same on every core: one shared JWT serving
// concurrent requests, as in the server.
func BenchmarkVerifyParallel(b *testing.B) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	j := mustJWT(b, JWTConfig{Now: func() time.Time { return now }})
	tok := mustIssue(b, j, sampleClaims())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := j.Verify(tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIssue is the signing cost per login and refresh.
func BenchmarkIssue(b *testing.B) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	j := mustJWT(b, JWTConfig{Now: func() time.Time { return now }})
	c := sampleClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := j.Issue(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpaqueNew is the cost of minting a refresh token and its digest.
func BenchmarkOpaqueNew(b *testing.B) {
	var o Opaque
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := o.New(); err != nil {
			b.Fatal(err)
		}
	}
}
