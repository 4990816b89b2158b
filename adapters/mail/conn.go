package mail

import (
	"context"
	"net"
	"sync"
	"time"
)

// ctxConn is a net.Conn that stops working when its context ends: every
// deadline is clamped to the context's, and cancellation moves the deadline
// into the past so that a blocked read or write returns immediately.
type ctxConn struct {
	net.Conn
	ctx  context.Context
	stop func() bool

	// mu orders the cancellation's deadline against concurrent SetDeadline
	// calls, so a late SetDeadline cannot undo it.
	mu sync.Mutex
}

func watchContext(ctx context.Context, c net.Conn) *ctxConn {
	cc := &ctxConn{Conn: c, ctx: ctx}
	cc.stop = context.AfterFunc(ctx, func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		_ = cc.Conn.SetDeadline(aLongTimeAgo)
	})
	return cc
}

func (c *ctxConn) clamp(t time.Time) time.Time {
	if c.ctx.Err() != nil {
		return aLongTimeAgo
	}
	if d, ok := c.ctx.Deadline(); ok && (t.IsZero() || d.Before(t)) {
		return d
	}
	return t
}

// SetDeadline sets the read and write deadlines, never later than the context's.
func (c *ctxConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetDeadline(c.clamp(t))
}

// SetReadDeadline sets the read deadline, never later than the context's.
func (c *ctxConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetReadDeadline(c.clamp(t))
}

// SetWriteDeadline sets the write deadline, never later than the context's.
func (c *ctxConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// Close releases the context watch along with the connection.
func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
