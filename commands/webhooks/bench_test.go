package webhooks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/webhook"
	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/commands/webhooks"
	"github.com/dashtam/dashtam/eventstore"
)

// BenchmarkWebhookDeliveries: one commit of 2,000 balances of one account,
// each deriving an account.updated event, for a user with an endpoint on
// a local receiver. Measured from the commit until every delivery is
// recorded as succeeded: the fan-out's inserts, river's fetching, the
// signed sends (50 at a time, the webhooks queue's workers) and the short
// transaction recording each attempt. Baseline, same run: the sender alone
// sending as many signed deliveries, 50 at a time, with no database.
func BenchmarkWebhookDeliveries(b *testing.B) {
	const n, concurrency = 2000, 50
	hn := newHarness(b, options{})
	recv := newReceiver(b, func(int) int { return 204 })

	sender := webhook.NewSender(webhook.SenderConfig{AllowPrivate: true, Timeout: 5 * time.Second})
	body := []byte(`{"type":"account.updated"}`)
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for range work {
				res := sender.Send(context.Background(), webhooks.Send{URL: recv.srv.URL, ID: uuid.NewString(),
					Timestamp: time.Now(), Body: body, Secrets: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}})
				if !res.Succeeded() {
					b.Error(res)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	baseline := float64(n) / time.Since(start).Seconds()

	var total, queued time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		user, conn := uuid.New(), uuid.New()
		_, _, err := hn.h.Create(context.Background(), principal(user), webhooks.CreateRequest{URL: recv.srv.URL,
			EventTypes: []string{fanout.TypeAccountUpdated}})
		require.NoError(b, err)
		acct := eventstore.AccountStreamID(conn, "1")
		at := hn.clock.Now().Add(time.Second)
		evs := []eventstore.Event{account.AccountOpened{AccountID: acct, ConnectionID: conn, UserID: user, SyncID: uuid.New(),
			Details: account.Details{ProviderAccountID: "1", Name: "n", Type: "checking", Currency: "USD"}, At: at}}
		for i := 1; i < n; i++ {
			evs = append(evs, account.AccountBalanceRecorded{AccountID: acct, SyncID: uuid.New(),
				Balance: account.Balance{Current: decimal.NewFromInt(int64(i)), Currency: "USD"}, At: at})
		}
		ctx := eventstore.WithMetadata(context.Background(), eventstore.Metadata{OwnerID: user, Actor: "bench"})
		b.StartTimer()
		start := time.Now()
		_, err = hn.store.Append(ctx, eventstore.Stream{Type: eventstore.StreamAccount, ID: acct}, 0, evs...)
		require.NoError(b, err)
		require.Eventually(b, func() bool {
			d := hn.deliveries(user)
			return d["pending"]+d["succeeded"] == n
		}, 5*time.Minute, 5*time.Millisecond)
		queued += time.Since(start)
		require.Eventually(b, func() bool { return hn.deliveries(user)["succeeded"] == n }, 5*time.Minute, 5*time.Millisecond)
		total += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "deliveries/s")
	b.ReportMetric(baseline, "baseline_sender_deliveries/s")
	b.ReportMetric(float64(queued.Milliseconds())/float64(b.N), "all_queued_ms")
}
