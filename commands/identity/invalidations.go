package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// invalidationChannel is the LISTEN/NOTIFY channel of migration 00006's
// triggers; a payload is a user id, "*" for everyone, or a heartbeat.
const invalidationChannel = "dashtam_identity"

// DefaultHeartbeat is how often the invalidation listener proves that it
// still hears notifications, and so bounds how long a silently broken
// connection (no reset, no error) can keep the cache in use.
const DefaultHeartbeat = 5 * time.Second

// heartbeatPrefix marks a listener's own liveness probe on the channel.
const heartbeatPrefix = "heartbeat:"

// RunSessionCache enables the session cache and keeps it true to the
// database until ctx ends, then returns nil. It listens for the
// invalidations every identity write sends and, while it cannot (before it
// first connects, after the connection is lost or a heartbeat goes
// unheard), keeps the cache disabled and empty so that every check reads
// the database. A Handler whose RunSessionCache is not running never uses
// the cache.
func (h *Handler) RunSessionCache(ctx context.Context) error {
	const minRetry, maxRetry = 100 * time.Millisecond, 10 * time.Second
	retry := minRetry
	for {
		heard, err := h.listenInvalidations(ctx)
		h.cache.flush(false)
		if ctx.Err() != nil {
			return nil
		}
		if heard {
			retry = minRetry
		}
		h.log.Warn("session cache disabled: invalidations not heard; every request reads the database until they are",
			"error", err, "retry_in", retry.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		retry = min(2*retry, maxRetry)
	}
}

// listenInvalidations runs one listening connection: it enables the cache
// once LISTEN is in place and returns when the connection fails or a
// heartbeat goes unheard. heard reports whether the cache was enabled.
func (h *Handler) listenInvalidations(ctx context.Context) (heard bool, err error) {
	cfg := h.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "dashtam identity invalidations"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+invalidationChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	// Whatever changed before LISTEN took effect was never heard: start empty.
	h.cache.flush(true)
	h.cache.listens.Add(1)

	ctx, cancel := context.WithCancelCause(ctx)
	nonce := uuid.NewString()
	var heardBeat atomic.Uint64
	var wg sync.WaitGroup
	wg.Go(func() { h.heartbeat(ctx, cancel, nonce, &heardBeat) })
	defer func() { cancel(nil); wg.Wait() }()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			}
			cancel(err)
			return true, err
		}
		h.invalidated(n.Payload, nonce, &heardBeat)
	}
}

// invalidated applies one notification. A payload it cannot read flushes
// everything: when in doubt, forget.
func (h *Handler) invalidated(payload, nonce string, heardBeat *atomic.Uint64) {
	if beat, ok := strings.CutPrefix(payload, heartbeatPrefix); ok {
		if n, ok := strings.CutPrefix(beat, nonce+":"); ok {
			if seq, err := strconv.ParseUint(n, 10, 64); err == nil {
				heardBeat.Store(seq)
			}
		}
		return // another server's heartbeat
	}
	if payload == "*" {
		h.cache.flushKeep()
		return
	}
	id, err := uuid.Parse(payload)
	if err != nil {
		h.cache.flushKeep()
		return
	}
	h.cache.invalidate(id)
}

// heartbeat sends a numbered NOTIFY of its own every interval and cancels
// the listening connection when the previous one has not come back by the
// next: a connection that hears nothing may be dead without knowing it.
func (h *Handler) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, nonce string, heardBeat *atomic.Uint64) {
	t := time.NewTicker(h.heartbeatInterval)
	defer t.Stop()
	var sent uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if heardBeat.Load() < sent {
			cancel(fmt.Errorf("heartbeat %d not heard back within %s", sent, h.heartbeatInterval))
			return
		}
		sent++
		payload := heartbeatPrefix + nonce + ":" + strconv.FormatUint(sent, 10)
		if _, err := h.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, invalidationChannel, payload); err != nil {
			cancel(fmt.Errorf("send heartbeat: %w", err))
			return
		}
	}
}

// SessionCacheStats reports the session cache's state and counters.
func (h *Handler) SessionCacheStats() SessionCacheStats { return h.cache.stats() }
