package eventsink

import (
	"context"
	"errors"
	"fmt"
	"time"

	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats.go"

	"github.com/dashtam/dashtam/commands/fanout"
)

// The JetStream stream the NATS sink publishes to: one subject per event
// type under SubjectPrefix, so consumers filter by subject
// ("dashtam.events.sync.>"), in one stream, so its order is the relay's
// order across types.
const (
	StreamName    = "DASHTAM_EVENTS"
	SubjectPrefix = "dashtam.events."
	// DuplicateWindow is how long JetStream remembers message ids: a relay
	// that crashed after publishing and restarts within it publishes
	// nothing twice.
	DuplicateWindow = 10 * time.Minute
)

// NATS publishes to NATS JetStream in watermill-nats's wire format (its
// NATSMarshaler: payload as the body, watermill's uuid and metadata as
// headers), so any watermill-nats subscriber reads the stream, with the
// integration event id as the message id (Nats-Msg-Id): the relay
// publishes before committing its checkpoint (at least once), and the
// server drops a message it stored within DuplicateWindow, so the stream
// holds each event once.
//
// A batch is published asynchronously on one connection, in order, and
// Publish returns once JetStream acknowledged every message. watermill-nats
// v2's Publisher waits for each acknowledgement before sending the next
// message, a round trip per event (6,000 events/s measured here, against
// 20,000 needed; docs/benchmarks.md); messages sent in order on one
// connection are stored in that order, so a relay killed mid-batch leaves
// a prefix of it, which the deduplication window completes on restart.
type NATS struct {
	conn      *nats.Conn
	js        nats.JetStreamContext
	marshaler wnats.Marshaler
}

var _ fanout.Broker = (*NATS)(nil)

// NATSConfig configures the NATS sink.
type NATSConfig struct {
	// URL is the server, nats://host:port.
	URL string
	// Options are extra connection options (tests name the client).
	Options []nats.Option
}

// maxPending bounds the messages awaiting JetStream's acknowledgement:
// several relay batches, so a batch never stalls on its own messages.
const maxPending = 16384

// NewNATS connects and makes sure the stream exists with the subjects and
// deduplication window above.
func NewNATS(ctx context.Context, cfg NATSConfig) (*NATS, error) {
	opts := append([]nats.Option{nats.Name("dashtam relay"), nats.MaxReconnects(-1)}, cfg.Options...)
	conn, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats sink: connect: %w", err)
	}
	js, err := conn.JetStream(nats.PublishAsyncMaxPending(maxPending))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nats sink: %w", err)
	}
	stream := &nats.StreamConfig{
		Name: StreamName, Subjects: []string{SubjectPrefix + ">"}, Duplicates: DuplicateWindow,
		Storage: nats.FileStorage, Retention: nats.LimitsPolicy,
	}
	if _, err := js.StreamInfo(StreamName, nats.Context(ctx)); errors.Is(err, nats.ErrStreamNotFound) {
		_, err = js.AddStream(stream, nats.Context(ctx))
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("nats sink: create stream %s: %w", StreamName, err)
		}
	} else if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nats sink: stream %s: %w", StreamName, err)
	}
	return &NATS{conn: conn, js: js, marshaler: &wnats.NATSMarshaler{}}, nil
}

// Publish publishes msgs in order and waits for every acknowledgement;
// see fanout.Broker. On any failure the caller publishes the whole batch
// again, and JetStream drops what it already stored.
func (n *NATS) Publish(ctx context.Context, msgs []fanout.Message) error {
	acks := make([]nats.PubAckFuture, 0, len(msgs))
	for i, m := range Messages(msgs) {
		subject := SubjectPrefix + msgs[i].Type
		nm, err := n.marshaler.Marshal(subject, m)
		if err != nil {
			return fmt.Errorf("nats sink: encode %s: %w", m.UUID, err)
		}
		nm.Header.Set(nats.MsgIdHdr, m.UUID)
		ack, err := n.js.PublishMsgAsync(nm)
		if err != nil {
			return fmt.Errorf("nats sink: publish %s: %w", m.UUID, err)
		}
		acks = append(acks, ack)
	}
	for _, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return fmt.Errorf("nats sink: publish %s: %w", ack.Msg().Header.Get(nats.MsgIdHdr), err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close closes the connection.
func (n *NATS) Close() error {
	n.conn.Close()
	return nil
}
