package identity_test

import (
	"context"
	"testing"
)

// BenchmarkAuthenticate measures the per-request cost of authentication:
// verifying the access JWT plus the one-statement session check against the
// real database (issue 3's budget: 50 µs). Parallel, as requests arrive.
func BenchmarkAuthenticate(b *testing.B) {
	e := MustEnv(b)
	e.MustRegister("bench@example.com")
	tok := e.MustLogin("bench@example.com")
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.h.Authenticate(ctx, tok.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.h.Authenticate(ctx, tok.AccessToken); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("jwt-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.deps.Access.Verify(tok.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
	})
}
