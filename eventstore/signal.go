package eventstore

import "sync"

// Signal is a level-triggered wake-up: Raise never blocks and coalesces, and
// every waiter that took C before a Raise is released by it.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewSignal returns a Signal that has not been raised.
func NewSignal() *Signal { return &Signal{ch: make(chan struct{})} }

// C returns a channel that is closed at the next Raise.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Raise releases everyone waiting on the current channel.
func (s *Signal) Raise() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}
