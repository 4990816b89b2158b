package schwab_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/providers/schwab"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/commands"
)

// testKey keys account ids in these tests.
var testKey = []byte("schwab-adapter-tests-account-id-key-0123456789")

// config is the adapter's configuration against f.
func config(f *schwabtest.Fake, clock func() time.Time) schwab.Config {
	return schwab.Config{
		ClientID:     f.ClientID(),
		ClientSecret: f.ClientSecret(),
		RedirectURI:  f.RedirectURI(),
		AuthURL:      f.AuthURL(),
		TokenURL:     f.TokenURL(),
		APIBaseURL:   f.APIBaseURL(),
		AccountIDKey: testKey,
		HTTPClient:   f.HTTPClient(),
		Clock:        clock,
	}
}

// mustNew is the adapter against f, on clock (time.Now when nil).
func mustNew(tb testing.TB, f *schwabtest.Fake, clock func() time.Time) *schwab.Adapter {
	tb.Helper()
	a, err := schwab.New(config(f, clock))
	if err != nil {
		tb.Fatalf("new adapter: %v", err)
	}
	return a
}

// fixture is a fake on a settable clock with an adapter on the same clock.
type fixture struct {
	fake  *schwabtest.Fake
	clock *schwabtest.Clock
	a     *schwab.Adapter
}

// start is the instant fixtures begin at: a Thursday in spring.
var start = time.Date(2025, 4, 17, 15, 0, 0, 0, time.UTC)

func newFixture(t *testing.T, opts schwabtest.Options) fixture {
	t.Helper()
	clock := schwabtest.NewClock(start)
	opts.Now = clock.Now
	f := schwabtest.New(t, opts)
	return fixture{fake: f, clock: clock, a: mustNew(t, f, clock.Now)}
}

// connect authorises and exchanges through the fake.
func (fx fixture) connect(t *testing.T) commands.Credentials {
	t.Helper()
	q := fx.fake.Approve(t, fx.a.AuthorizationURL("st", ""))
	creds, err := fx.a.Exchange(context.Background(), q.Get("code"), "")
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return creds
}

// accountID is the adapter's id of the fake account with number.
func (fx fixture) accountID(t *testing.T, creds commands.Credentials, number string) string {
	t.Helper()
	accts, err := fx.a.Accounts(context.Background(), creds)
	if err != nil {
		t.Fatalf("accounts: %v", err)
	}
	for _, a := range accts {
		if a.MaskedNumber == number[len(number)-4:] {
			return a.ID
		}
	}
	t.Fatalf("no account ending %s", number[len(number)-4:])
	return ""
}

// kinds are the port's failure kinds.
var kinds = []error{commands.ErrProviderAuth, commands.ErrProviderUnavailable, commands.ErrProviderRateLimited,
	commands.ErrProviderNotFound, commands.ErrProviderInvalidResponse}

// wantKind fails unless err matches want and no other kind.
func wantKind(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("want %v, got %v", want, err)
	}
	for _, k := range kinds {
		if k != want && errors.Is(err, k) {
			t.Fatalf("%v also matches %v", err, k)
		}
	}
}

// noLeak fails when text holds a secret of f or a full account number.
func noLeak(t *testing.T, f *schwabtest.Fake, what, text string) {
	t.Helper()
	for _, s := range f.Secrets() {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret: %s", what, text)
		}
	}
	for _, n := range []string{schwabtest.CashAccountNumber, schwabtest.MarginAccountNumber} {
		if strings.Contains(text, n) {
			t.Errorf("%s contains account number %s: %s", what, n, text)
		}
	}
}

func jsonFailure(status int, body string) schwabtest.Failure {
	return schwabtest.Failure{Status: status, ContentType: "application/json", Body: body}
}

func withRetryAfter(fl schwabtest.Failure, v string) schwabtest.Failure {
	fl.Header = http.Header{"Retry-After": {v}}
	return fl
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
