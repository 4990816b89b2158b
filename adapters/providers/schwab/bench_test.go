package schwab_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/commands"
)

// pageSize is just under a full page, so that one search answers it.
const pageSize = schwabtest.MaxTransactionsPerCall - 1

// BenchmarkTransactionsPage maps one page of transactions through the
// adapter (account lookup, search over HTTP, decode, mapping, masking of
// Raw). The baseline in the same run fetches the same page and only
// decodes it into maps: the difference is the adapter's own work.
func BenchmarkTransactionsPage(b *testing.B) {
	clock := schwabtest.NewClock(start)
	f := schwabtest.New(b, schwabtest.Options{Now: clock.Now})
	a := mustNew(b, f, clock.Now)
	from := time.Date(2025, 1, 2, 5, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	f.ClearTransactions(schwabtest.CashAccountNumber)
	f.GenerateTransactions(schwabtest.CashAccountNumber, pageSize, from, to)
	callback, err := url.Parse(f.ApproveURL(b, a.AuthorizationURL("b", "")))
	if err != nil {
		b.Fatal(err)
	}
	creds, err := a.Exchange(context.Background(), callback.Query().Get("code"), "")
	if err != nil {
		b.Fatal(err)
	}
	var id string
	accts, err := a.Accounts(context.Background(), creds)
	if err != nil {
		b.Fatal(err)
	}
	for _, acct := range accts {
		if acct.MaskedNumber == "5926" {
			id = acct.ID
		}
	}

	b.Run("baseline fetch and decode into maps", func(b *testing.B) {
		u := f.APIBaseURL() + "/accounts/" + schwabtest.AccountHash(schwabtest.CashAccountNumber) + "/transactions?" + url.Values{
			"startDate": {from.Format("2006-01-02T15:04:05.000Z")},
			"endDate":   {to.Add(-time.Millisecond).Format("2006-01-02T15:04:05.000Z")},
			"types":     {strings.Join(schwabtest.TransactionTypes, ",")},
		}.Encode()
		client := f.HTTPClient()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+creds.AccessToken)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var recs []map[string]any
			if err := json.Unmarshal(body, &recs); err != nil || len(recs) != pageSize {
				b.Fatalf("%d records, %v", len(recs), err)
			}
		}
		b.ReportMetric(float64(b.N*pageSize)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("adapter", func(b *testing.B) {
		var txs []commands.ProviderTransaction
		for b.Loop() {
			txs, err = a.Transactions(context.Background(), creds, id, from, to)
			if err != nil || len(txs) != pageSize {
				b.Fatalf("%d transactions, %v", len(txs), err)
			}
		}
		b.ReportMetric(float64(b.N*pageSize)/b.Elapsed().Seconds(), "records/s")
	})
}
