package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/web"
)

// BenchmarkAuthenticatedRequest measures a whole authenticated GET through
// the server in process: routing, the auth middleware with the real JWT
// verifier, validation, the handler and the JSON answer. The session check
// is the fake's map lookup, so compare with commands/identity's benchmark
// of Authenticate for the database's share (budget: 50 µs, docs/identity.md).
func BenchmarkAuthenticatedRequest(b *testing.B) {
	clock := &fakeClock{now: testEpoch}
	id := newFakeIdentity(b, clock)
	s := MustServer(b, web.Options{Identity: id, Now: clock.Now})
	token, _ := id.MustToken(b, user.RoleUser)
	h := s.Handler()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
