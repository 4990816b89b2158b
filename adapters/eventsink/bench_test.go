package eventsink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/eventsink"
	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// benchBatch is the relay's batch in the benchmarks: the size serve uses.
const benchBatch = fanout.RelayBatchSize

// seedBalances appends, for users users, accounts accounts of perAccount
// events each (an AccountOpened and balances), each account in one append,
// and returns the integration events the log derives, in commit order:
// one account.updated per event.
func seedBalances(b *testing.B, s *eventstore.Store, users, accounts, perAccount int) []fanout.Event {
	b.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for u := 0; u < users; u++ {
		owner, conn := uuid.New(), uuid.New()
		ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: owner, Actor: "bench"})
		for a := 0; a < accounts; a++ {
			id := eventstore.AccountStreamID(conn, fmt.Sprint(a))
			evs := []eventstore.Event{account.AccountOpened{AccountID: id, ConnectionID: conn, UserID: owner, SyncID: uuid.New(),
				Details: account.Details{ProviderAccountID: fmt.Sprint(a), Name: "n", Type: "checking", Currency: "USD"}, At: at}}
			for i := 1; i < perAccount; i++ {
				evs = append(evs, account.AccountBalanceRecorded{AccountID: id, SyncID: uuid.New(),
					Balance: account.Balance{Current: decimal.NewFromInt(int64(i)), Currency: "USD"}, At: at.Add(time.Duration(i) * time.Second)})
			}
			_, err := s.Append(ctx, eventstore.Stream{Type: eventstore.StreamAccount, ID: id}, 0, evs...)
			require.NoError(b, err)
		}
	}
	return derived(b, s)
}

// sinkMessages encodes events as the relay hands them to a sink.
func sinkMessages(b *testing.B, events []fanout.Event) []fanout.Message {
	out := make([]fanout.Message, len(events))
	for i, e := range events {
		body, err := e.Marshal()
		require.NoError(b, err)
		out[i] = fanout.Message{ID: e.ID, Type: e.Type, UserID: e.UserID, Payload: body}
	}
	return out
}

// relayOnce runs a fresh relay from the start of the log until it has
// passed every event, and returns how long that took.
func relayOnce(b *testing.B, s *eventstore.Store, relay *fanout.Relay) time.Duration {
	b.Helper()
	ctx := context.Background()
	_, err := s.Pool().Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, fanout.RelayName)
	require.NoError(b, err)
	r, err := projections.NewReactorRunner(s, relay, projections.WithBatchSize(benchBatch))
	require.NoError(b, err)
	start := time.Now()
	runUntilCaughtUp(b, s, r, fanout.RelayName)
	return time.Since(start)
}

// BenchmarkRelayPostgres: the relay reads the log, derives the integration
// events and publishes them into the watermill-sql topic in the
// transaction that moves its checkpoint. Baseline, same run: the sink
// alone publishing the already derived messages in transactions of the
// same size, with no log to read and nothing to derive.
func BenchmarkRelayPostgres(b *testing.B) {
	s := mustStore(b)
	events := seedBalances(b, s, 20, 10, 100)
	msgs := sinkMessages(b, events)
	ctx := context.Background()
	sink := eventsink.NewPostgres(nil)
	clear := func() {
		_, err := s.Pool().Exec(ctx, `DELETE FROM watermill_integration_events`)
		require.NoError(b, err)
	}

	clear()
	start := time.Now()
	for i := 0; i < len(msgs); i += benchBatch {
		require.NoError(b, pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
			return sink.PublishTx(ctx, tx, msgs[i:min(i+benchBatch, len(msgs))])
		}))
	}
	baseline := float64(len(msgs)) / time.Since(start).Seconds()

	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		clear()
		relay, err := fanout.NewTxRelay(mustDeriver(b, s), sink)
		require.NoError(b, err)
		b.StartTimer()
		total += relayOnce(b, s, relay)
	}
	b.StopTimer()
	var n int
	require.NoError(b, s.Pool().QueryRow(ctx, `SELECT count(*) FROM watermill_integration_events`).Scan(&n))
	require.Equal(b, len(events), n)
	b.ReportMetric(float64(len(events)*b.N)/total.Seconds(), "events/s")
	b.ReportMetric(baseline, "baseline_sink_events/s")
}

// BenchmarkRelayNATS: the relay publishes to a NATS JetStream server run
// in process (file storage in a temporary directory), each message
// acknowledged before the checkpoint moves. Baseline, same run: the sink
// alone publishing the already derived messages.
func BenchmarkRelayNATS(b *testing.B) {
	s := mustStore(b)
	events := seedBalances(b, s, 20, 10, 100)
	msgs := sinkMessages(b, events)
	ctx := context.Background()
	url := startNATS(b)
	nc, err := nats.Connect(url)
	require.NoError(b, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(b, err)
	// A fresh stream each time: the server would drop messages whose ids
	// it has seen as duplicates.
	fresh := func() *eventsink.NATS {
		if err := js.DeleteStream(eventsink.StreamName); err != nil && err != nats.ErrStreamNotFound {
			require.NoError(b, err)
		}
		sink, err := eventsink.NewNATS(ctx, eventsink.NATSConfig{URL: url})
		require.NoError(b, err)
		return sink
	}

	sink := fresh()
	start := time.Now()
	for i := 0; i < len(msgs); i += benchBatch {
		require.NoError(b, sink.Publish(ctx, msgs[i:min(i+benchBatch, len(msgs))]))
	}
	baseline := float64(len(msgs)) / time.Since(start).Seconds()
	_ = sink.Close()

	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		sink := fresh()
		relay, err := fanout.NewBrokerRelay(mustDeriver(b, s), sink, s.Pool())
		require.NoError(b, err)
		b.StartTimer()
		total += relayOnce(b, s, relay)
		b.StopTimer()
		info, err := js.StreamInfo(eventsink.StreamName)
		require.NoError(b, err)
		require.Equal(b, uint64(len(events)), info.State.Msgs)
		_ = sink.Close()
	}
	b.ReportMetric(float64(len(events)*b.N)/total.Seconds(), "events/s")
	b.ReportMetric(baseline, "baseline_sink_events/s")
}
