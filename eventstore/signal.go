package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

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

// WhileListening runs run with a context that lives as long as conn, a
// connection on which the caller has LISTENed, and a channel that receives
// (coalesced) each notification on it. A connection lost ends run's context
// with a cause naming lost; that cause is returned in place of run's error,
// because whatever conn held (a lock, a subscription) is gone with it.
func WhileListening(ctx context.Context, conn *pgx.Conn, lost string, run func(ctx context.Context, notified <-chan struct{}) error) error {
	listenCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	notified := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := conn.WaitForNotification(listenCtx); err != nil {
				cancel(fmt.Errorf("%s: %w", lost, err))
				return
			}
			select {
			case notified <- struct{}{}:
			default:
			}
		}
	}()
	err := run(listenCtx, notified)
	cancel(err)
	<-done
	if cause := context.Cause(listenCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}
