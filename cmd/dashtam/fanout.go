package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dashtam/dashtam/adapters/eventsink"
	"github.com/dashtam/dashtam/adapters/jobs"
	"github.com/dashtam/dashtam/adapters/webhook"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/commands/webhooks"
	"github.com/dashtam/dashtam/projections"
)

// The values of DASHTAM_EVENT_SINK besides a nats:// URL.
const (
	sinkPostgres = "postgres"
	sinkNone     = "none"
)

// fanoutParts are the consumers of the log that carry integration events
// out of the system (docs/events.md): the relay to the configured sink, the
// webhook fan-out, the live stream's tailer, and what the API serves.
type fanoutParts struct {
	feed     *fanout.Feed
	hub      *fanout.Hub
	webhooks *webhooks.Handler
	// relay is nil with DASHTAM_EVENT_SINK=none.
	relay  *projections.Runner
	fanout *projections.Runner
	// closeSink releases the broker connection, if any.
	closeSink func()
}

// openFanout builds the fan-out over the server's store, registering the
// delivery job with workers.
func (s *server) openFanout(ctx context.Context, cfg serveConfig, workers *jobs.Workers) (fanoutParts, error) {
	parts := fanoutParts{closeSink: func() {}}
	// Derived from the JWT secret, so cursors survive restarts and every
	// instance accepts the others'; rotating that secret ends them.
	cursors, err := fanout.NewCursors(deriveKey(cfg.JWTSecret, "dashtam feed cursor v1"))
	if err != nil {
		return parts, err
	}
	deriver, err := fanout.NewDeriver(s.store, cursors)
	if err != nil {
		return parts, err
	}
	if parts.feed, err = fanout.NewFeed(s.store, cursors); err != nil {
		return parts, err
	}
	if parts.hub, err = fanout.NewHub(s.store, deriver, fanout.HubConfig{NotifyChannel: projections.NotifyChannel, Logger: s.logger}); err != nil {
		return parts, err
	}
	policy := webhook.Policy{AllowPrivate: cfg.WebhookAllowPrivate}
	if parts.webhooks, err = webhooks.NewHandler(webhooks.Deps{
		Pool: s.pool, Vault: cfg.Keyring, Jobs: s.jobs, URLs: policy, Now: time.Now, Logger: s.logger,
		Sender: webhook.NewSender(webhook.SenderConfig{AllowPrivate: cfg.WebhookAllowPrivate}),
	}); err != nil {
		return parts, err
	}
	jobs.Handle(workers, parts.webhooks.Deliver)
	fan, err := webhooks.NewFanout(deriver, parts.webhooks)
	if err != nil {
		return parts, err
	}
	if parts.fanout, err = projections.NewReactorRunner(s.store, fan, projections.WithLogger(s.logger)); err != nil {
		return parts, err
	}

	var relay *fanout.Relay
	switch {
	case cfg.EventSink == sinkNone:
		return parts, nil
	case cfg.EventSink == sinkPostgres:
		if relay, err = fanout.NewTxRelay(deriver, eventsink.NewPostgres(nil)); err != nil {
			return parts, err
		}
	case strings.HasPrefix(cfg.EventSink, "nats://"):
		sink, err := eventsink.NewNATS(ctx, eventsink.NATSConfig{URL: cfg.EventSink})
		if err != nil {
			return parts, fmt.Errorf("DASHTAM_EVENT_SINK: %w", err)
		}
		parts.closeSink = func() { _ = sink.Close() }
		if relay, err = fanout.NewBrokerRelay(deriver, sink, s.pool); err != nil {
			return parts, err
		}
	}
	if parts.relay, err = projections.NewReactorRunner(s.store, relay, projections.WithLogger(s.logger),
		projections.WithBatchSize(fanout.RelayBatchSize)); err != nil {
		return parts, err
	}
	return parts, nil
}

// runners returns what Run starts for the fan-out in a serving process.
func (p fanoutParts) runners() []func(context.Context) error {
	out := []func(context.Context) error{p.hub.Run, p.fanout.Run}
	if p.relay != nil {
		out = append(out, p.relay.Run)
	}
	return out
}
