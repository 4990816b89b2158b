package schwab_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
)

// TestConcurrentUse runs whole syncs of both accounts from several
// goroutines through one adapter (run with -race): each must see what a
// lone sync sees.
func TestConcurrentUse(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	ctx := context.Background()
	sync1 := func() (string, error) {
		accts, err := fx.a.Accounts(ctx, creds)
		if err != nil {
			return "", err
		}
		out := ""
		for _, a := range accts {
			hs, err := fx.a.Holdings(ctx, creds, a.ID)
			if err != nil {
				return "", err
			}
			txs, err := fx.a.Transactions(ctx, creds, a.ID, start.AddDate(-1, 0, 0), start)
			if err != nil {
				return "", err
			}
			out += fmt.Sprintf("%s %s %d holdings %d transactions;", a.ID, a.Balance, len(hs), len(txs))
			for _, tx := range txs {
				out += tx.ID + tx.Type + tx.Amount.String() + ","
			}
		}
		return out, nil
	}
	want, err := sync1()
	if err != nil {
		t.Fatal(err)
	}
	const workers = 6
	var wg sync.WaitGroup
	results := make(chan string, workers)
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			got, err := sync1()
			if err != nil {
				errs <- err
				return
			}
			results <- got
		})
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for got := range results {
		if got != want {
			t.Error("a concurrent sync saw other data than a lone one")
		}
	}
}
