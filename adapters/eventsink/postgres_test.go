package eventsink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/eventsink"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/projections"
)

// killingSink publishes through the real sink and, at the publish numbered
// killAt, cancels the relay's context after publishing: the relay dies in
// the middle of a batch, before its transaction commits.
type killingSink struct {
	inner  fanout.TxSink
	killAt int
	cancel context.CancelFunc
	mu     sync.Mutex
	calls  int
}

func (k *killingSink) PublishTx(ctx context.Context, tx pgx.Tx, msgs []fanout.Message) error {
	if err := k.inner.PublishTx(ctx, tx, msgs); err != nil {
		return err
	}
	k.mu.Lock()
	k.calls++
	kill := k.calls == k.killAt
	k.mu.Unlock()
	if kill {
		k.cancel()
		return context.Canceled
	}
	return nil
}

// topicIDs reads the topic table's message ids in the order consumers read
// them: (transaction_id, offset).
func topicIDs(t *testing.T, ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) []string {
	rows, err := q.Query(ctx, `SELECT uuid FROM watermill_integration_events ORDER BY transaction_id, "offset"`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// TestPostgresRelayPublishesEveryEventOnceAcrossAKill: the relay publishes
// into the topic table in the transaction that moves its checkpoint. Killed
// in the middle of a batch (after the INSERT, before the commit), it
// leaves nothing of that batch; restarted, it publishes the rest, and the
// topic holds every integration event exactly once, in commit order. A
// watermill-sql subscriber in a consumer group of its own, reading through
// a watermill router, then reads the whole topic.
func TestPostgresRelayPublishesEveryEventOnceAcrossAKill(t *testing.T) {
	s := mustStore(t)
	want := seed(t, s, 3, 4, 12)
	require.Greater(t, len(want), 100)
	ctx := context.Background()

	killCtx, kill := context.WithCancel(ctx)
	sink := &killingSink{inner: eventsink.NewPostgres(nil), killAt: 2, cancel: kill}
	relay, err := fanout.NewTxRelay(mustDeriver(t, s), sink)
	require.NoError(t, err)
	r, err := projections.NewReactorRunner(s, relay, projections.WithBatchSize(40))
	require.NoError(t, err)
	require.NoError(t, r.Run(killCtx))
	published := topicIDs(t, ctx, s.Pool())
	require.NotEmpty(t, published, "the first batch committed")
	assert.Less(t, len(published), len(want), "the killed batch left nothing")
	assert.Equal(t, ids(want)[:len(published)], published)

	relay, err = fanout.NewTxRelay(mustDeriver(t, s), eventsink.NewPostgres(nil))
	require.NoError(t, err)
	r, err = projections.NewReactorRunner(s, relay, projections.WithBatchSize(40))
	require.NoError(t, err)
	runUntilCaughtUp(t, s, r, fanout.RelayName)
	assert.Equal(t, ids(want), topicIDs(t, ctx, s.Pool()), "every event once, in commit order")

	// Any watermill application reads the topic with its own consumer group.
	db := stdlib.OpenDBFromPool(s.Pool())
	defer db.Close()
	logger := watermill.NopLogger{}
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:  "billing",
		SchemaAdapter:  wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: 100},
		OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
		PollInterval:   20 * time.Millisecond,
	}, logger)
	require.NoError(t, err)
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	require.NoError(t, err)
	router.AddMiddleware(middleware.Recoverer, middleware.Retry{MaxRetries: 3, InitialInterval: time.Millisecond, Logger: logger}.Middleware)
	var (
		mu   sync.Mutex
		got  []string
		bad  []string
		user = map[string]bool{}
	)
	for _, e := range want {
		user[e.UserID.String()] = true
	}
	router.AddConsumerHandler("collect", eventsink.Topic, sub, func(m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.UUID)
		if m.Metadata.Get(eventsink.MetadataType) == "" || !user[m.Metadata.Get(eventsink.MetadataUserID)] {
			bad = append(bad, m.UUID)
		}
		return nil
	})
	rctx, stop := context.WithCancel(ctx)
	routed := make(chan error, 1)
	go func() { routed <- router.Run(rctx) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	}, 30*time.Second, 10*time.Millisecond)
	stop()
	if err := <-routed; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, ids(want), got)
	assert.Empty(t, bad, "every message names its type and user")
}

// TestPostgresSinkKeepsABatchInOrderByteForByte: one PublishTx of a batch
// larger than any relay batch writes one row per message, offsets in the
// batch's order, each payload byte for byte and its metadata as watermill
// writes it, all in the caller's transaction.
func TestPostgresSinkKeepsABatchInOrderByteForByte(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	msgs := make([]fanout.Message, 2500)
	for i := range msgs {
		id := uuid.New()
		msgs[i] = fanout.Message{ID: id, Type: fanout.Types[i%len(fanout.Types)], UserID: uuid.New(),
			Payload: []byte(fmt.Sprintf(`{"id":"%s","n":%d,"s":"<&>\u00e9 \"q\""}`, id, i))}
	}
	sink := eventsink.NewPostgres(nil)
	var xid string
	require.NoError(t, pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		if err := sink.PublishTx(ctx, tx, msgs); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid)
	}))
	rows, err := s.Pool().Query(ctx, `SELECT uuid, payload::text, metadata::text, transaction_id::text
		FROM watermill_integration_events ORDER BY transaction_id, "offset"`)
	require.NoError(t, err)
	type row struct{ ID, Payload, Metadata, Xid string }
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	require.NoError(t, err)
	require.Len(t, got, len(msgs))
	for i, m := range msgs {
		assert.Equal(t, m.ID.String(), got[i].ID)
		assert.Equal(t, string(m.Payload), got[i].Payload)
		var md map[string]string
		require.NoError(t, json.Unmarshal([]byte(got[i].Metadata), &md))
		assert.Equal(t, map[string]string{eventsink.MetadataType: m.Type, eventsink.MetadataUserID: m.UserID.String()}, md)
		assert.Equal(t, xid, got[i].Xid, "published in the caller's transaction")
	}
}
