package sandbox

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dashtam/dashtam/commands"
)

// BenchmarkLargeIngest reads a year of the large persona (over 100,000
// transactions across 14 accounts) through the adapter over HTTP, as an
// ingest benchmark will, beside a baseline measured in the same run: the
// institution generating and rendering the same pages without HTTP or
// JSON. The gap is what the dialect and the wire cost.
func BenchmarkLargeIngest(b *testing.B) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	inst, err := NewInstitution(Config{Key: []byte("benchmark key of at least thirty-two bytes"), ClientID: "bench",
		ClientSecret: "secret", RedirectURIs: []string{"https://bench.example/cb"}, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(inst.Handler())
	defer srv.Close()
	p, err := NewProvider(ProviderConfig{BaseURL: srv.URL + Prefix, ClientID: "bench", ClientSecret: "secret",
		RedirectURI: "https://bench.example/cb", HTTPClient: srv.Client(), Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	seed := SeedForUser("bench")
	// A token as the token endpoint would issue it: the benchmark is about data.
	creds := commands.Credentials{AccessToken: inst.signer.sign(kindAccess, claims{Grant: "bench", Seed: seed,
		Persona: PersonaLarge, Client: "bench", ExpiresAt: now.Add(time.Hour).Unix()})}
	ctx := context.Background()
	accounts, err := p.Accounts(ctx, creds)
	if err != nil {
		b.Fatal(err)
	}
	from, to := now.AddDate(-1, 0, 0), now
	prof := newProfile(seed, PersonaLarge)
	var fetched, generated int
	var fetchTime, generateTime time.Duration
	for b.Loop() {
		start := time.Now()
		for _, a := range accounts {
			txs, err := p.Transactions(ctx, creds, a.ID, from, to)
			if err != nil {
				b.Fatal(err)
			}
			fetched += len(txs)
		}
		fetchTime += time.Since(start)

		start = time.Now()
		for _, a := range prof.accounts {
			first, end := dayOf(ceilDay(from)), dayOf(ceilDay(to))
			for w := first; w < end; w += maxRangeDays {
				var after *cursor
				for {
					page, next := prof.transactions(a, now.Unix(), w, min(w+maxRangeDays, end)-1, after, maxPageSize)
					generated += len(page)
					if next == nil {
						break
					}
					after = next
				}
			}
		}
		generateTime += time.Since(start)
	}
	if fetched != generated || fetched < 100_000 {
		b.Fatalf("fetched %d, generated %d transactions", fetched, generated)
	}
	rate, baseline := float64(fetched)/fetchTime.Seconds(), float64(generated)/generateTime.Seconds()
	b.ReportMetric(rate, "tx/s")
	b.ReportMetric(baseline, "baseline-generate-tx/s")
	b.ReportMetric(100*rate/baseline, "%-of-baseline")
	b.ReportMetric(float64(fetched)/float64(b.N), "tx/op")
}
