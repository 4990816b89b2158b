package eventsink_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/eventsink"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/projections"
)

// startNATS runs a NATS server with JetStream inside the test, its storage
// in a temporary directory, and returns its URL.
func startNATS(tb testing.TB) string {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: tb.TempDir(), Port: -1, Host: "127.0.0.1"})
	require.NoError(tb, err)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server did not start")
	}
	tb.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}

// killingBroker publishes through the real broker and, in the batch
// numbered killAt, publishes only the first half of the batch and kills
// the relay: a crash in the middle of a batch, after JetStream stored part
// of it and before the relay's checkpoint moved.
type killingBroker struct {
	inner  fanout.Broker
	killAt int
	calls  int
	cancel context.CancelFunc
}

func (k *killingBroker) Publish(ctx context.Context, msgs []fanout.Message) error {
	k.calls++
	if k.calls == k.killAt {
		if err := k.inner.Publish(ctx, msgs[:len(msgs)/2]); err != nil {
			return err
		}
		k.cancel()
		return context.Canceled
	}
	return k.inner.Publish(ctx, msgs)
}

// streamIDs reads every message of the stream in order: their ids.
func streamIDs(t *testing.T, url string) []string {
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	info, err := js.StreamInfo(eventsink.StreamName)
	require.NoError(t, err)
	sub, err := js.SubscribeSync(eventsink.SubjectPrefix+">", nats.OrderedConsumer())
	require.NoError(t, err)
	defer sub.Unsubscribe()
	var out []string
	for uint64(len(out)) < info.State.Msgs {
		m, err := sub.NextMsg(10 * time.Second)
		require.NoError(t, err)
		out = append(out, m.Header.Get(nats.MsgIdHdr))
	}
	return out
}

// TestNATSRelayDeliversEveryEventOnceInOrderAcrossAKill: the relay
// publishes to JetStream before committing its checkpoint, each message
// with the integration event's id as its Nats-Msg-Id. Killed after
// JetStream stored half of a batch, it publishes the whole batch again when
// restarted; the server drops the duplicates, and the stream holds every
// event once, in the relay's (commit) order, so in per-stream order.
func TestNATSRelayDeliversEveryEventOnceInOrderAcrossAKill(t *testing.T) {
	s := mustStore(t)
	want := seed(t, s, 3, 4, 12)
	url := startNATS(t)
	ctx := context.Background()

	sink, err := eventsink.NewNATS(ctx, eventsink.NATSConfig{URL: url})
	require.NoError(t, err)
	defer sink.Close()
	killCtx, kill := context.WithCancel(ctx)
	relay, err := fanout.NewBrokerRelay(mustDeriver(t, s), &killingBroker{inner: sink, killAt: 2, cancel: kill}, s.Pool())
	require.NoError(t, err)
	r, err := projections.NewReactorRunner(s, relay, projections.WithBatchSize(40))
	require.NoError(t, err)
	require.NoError(t, r.Run(killCtx))
	stored := streamIDs(t, url)
	require.Greater(t, len(stored), 40, "the first batch and half of the second were stored")
	require.Less(t, len(stored), 80)

	relay, err = fanout.NewBrokerRelay(mustDeriver(t, s), sink, s.Pool())
	require.NoError(t, err)
	r, err = projections.NewReactorRunner(s, relay, projections.WithBatchSize(40))
	require.NoError(t, err)
	runUntilCaughtUp(t, s, r, fanout.RelayName)
	assert.Equal(t, ids(want), streamIDs(t, url), "every event once, in order")
}
