package web

// OnShutdown lets tests learn when graceful shutdown has begun, so they can
// release a blocked handler only then, without sleeping.
func (s *Server) OnShutdown(f func()) { s.onShutdown = f }
