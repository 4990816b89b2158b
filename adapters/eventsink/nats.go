package eventsink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
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

// NATS publishes to NATS JetStream through watermill-nats with the
// integration event id as the message id (Nats-Msg-Id), so the server
// drops a message it stored within DuplicateWindow: the relay publishes
// before committing its checkpoint (at least once), and the stream holds
// each event once. Publishing waits for JetStream's acknowledgement of each
// message, in order.
type NATS struct {
	conn *nats.Conn
	pub  *wnats.Publisher
}

var _ fanout.Broker = (*NATS)(nil)

// NATSConfig configures the NATS sink.
type NATSConfig struct {
	// URL is the server, nats://host:port.
	URL string
	// Options are extra connection options (tests name the client).
	Options []nats.Option
	// Logger receives watermill's log lines.
	Logger watermill.LoggerAdapter
}

// NewNATS connects and makes sure the stream exists with the subjects and
// deduplication window above.
func NewNATS(ctx context.Context, cfg NATSConfig) (*NATS, error) {
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	opts := append([]nats.Option{nats.Name("dashtam relay"), nats.MaxReconnects(-1)}, cfg.Options...)
	conn, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats sink: connect: %w", err)
	}
	js, err := conn.JetStream(nats.Context(ctx))
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
	pub, err := wnats.NewPublisherWithNatsConn(conn, wnats.PublisherPublishConfig{
		Marshaler:         &wnats.NATSMarshaler{},
		SubjectCalculator: wnats.DefaultSubjectCalculator,
		JetStream:         wnats.JetStreamConfig{TrackMsgId: true},
	}, cfg.Logger)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nats sink: %w", err)
	}
	return &NATS{conn: conn, pub: pub}, nil
}

// Publish publishes msgs in order, each acknowledged; see fanout.Broker.
func (n *NATS) Publish(ctx context.Context, msgs []fanout.Message) error {
	wm := Messages(msgs)
	for i, m := range wm {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := n.pub.Publish(SubjectPrefix+msgs[i].Type, m); err != nil {
			return fmt.Errorf("nats sink: publish %s: %w", m.UUID, err)
		}
	}
	return nil
}

// Close closes the connection.
func (n *NATS) Close() error {
	n.conn.Close()
	return nil
}
