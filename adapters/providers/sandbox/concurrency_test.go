package sandbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/commands"
)

// Racing exchanges of one code: exactly one wins, and the replays revoke
// what the winner got, as a replayed code must.
func TestConcurrentExchangesOfOneCode(t *testing.T) {
	e := newEnv(t, envOptions{})
	code := e.fake.Approve(t, e.provider.AuthorizationURL("s", testChallenge)).Get("code")
	const racers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		won     []commands.Credentials
		refused int
	)
	start := make(chan struct{})
	for range racers {
		wg.Go(func() {
			<-start
			creds, err := e.provider.Exchange(context.Background(), code, testVerifier)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, creds)
			case errors.Is(err, commands.ErrProviderAuth):
				refused++
			default:
				t.Errorf("exchange: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(won) != 1 || refused != racers-1 {
		t.Fatalf("%d exchanges won, %d refused; want 1 and %d", len(won), refused, racers-1)
	}
	_, err := e.provider.Accounts(context.Background(), won[0])
	wantErr(t, err, commands.ErrProviderAuth)
}

// The flaky rhythm counts every call of a connection, however they
// interleave: of 40 concurrent calls, exactly 10 answer 503 and 10 answer
// 429, and the rest succeed.
func TestFlakyRhythmUnderConcurrency(t *testing.T) {
	e := newEnv(t, envOptions{})
	creds := e.connect(t, "", sandbox.PersonaFlaky)
	const calls = 40
	counts := map[string]int{}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for range calls {
		wg.Go(func() {
			_, err := e.provider.Accounts(context.Background(), creds)
			kind := "ok"
			switch {
			case errors.Is(err, commands.ErrProviderUnavailable):
				kind = "503"
			case errors.Is(err, commands.ErrProviderRateLimited):
				kind = "429"
			case err != nil:
				kind = err.Error()
			}
			mu.Lock()
			counts[kind]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts["ok"] != 20 || counts["503"] != 10 || counts["429"] != 10 {
		t.Fatalf("outcomes %v, want 20 ok, 10 503, 10 429", counts)
	}
}
