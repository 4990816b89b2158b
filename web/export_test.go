package web

import (
	"context"

	"github.com/dashtam/dashtam/commands"
)

// OnShutdown lets tests learn when graceful shutdown has begun, so they can
// release a blocked handler only then, without sleeping.
func (s *Server) OnShutdown(f func()) { s.onShutdown = f }

// WithCaller returns ctx carrying p as the verified caller, as authenticate
// sets it, for stand-ins of routes the OpenAPI document does not have yet.
func WithCaller(ctx context.Context, p commands.Principal) context.Context {
	return context.WithValue(ctx, identityKey{}, p)
}
