package schwab_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/providers/schwab"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/commands"
)

// dataCall is one of the adapter's data calls on the cash account.
type dataCall func(fx fixture, creds commands.Credentials, id string) error

var (
	accountsCall dataCall = func(fx fixture, creds commands.Credentials, _ string) error {
		_, err := fx.a.Accounts(context.Background(), creds)
		return err
	}
	holdingsCall dataCall = func(fx fixture, creds commands.Credentials, id string) error {
		_, err := fx.a.Holdings(context.Background(), creds, id)
		return err
	}
	transactionsCall dataCall = func(fx fixture, creds commands.Credentials, id string) error {
		_, err := fx.a.Transactions(context.Background(), creds, id, start.AddDate(0, -1, 0), start)
		return err
	}
)

func TestDataCallFailures(t *testing.T) {
	httpDate := start.Add(90 * time.Second).Format(http.TimeFormat)
	tests := []struct {
		name  string
		at    schwabtest.Endpoint
		fail  schwabtest.Failure
		call  dataCall
		want  error
		delay time.Duration
	}{
		{"401 errors list", schwabtest.EndpointAccounts, failure(401), accountsCall, commands.ErrProviderAuth, 0},
		{"401 gateway fault", schwabtest.EndpointAccounts, schwabtest.GatewayFault(401, "Invalid access token", "oauth.v2.InvalidAccessToken"), accountsCall, commands.ErrProviderAuth, 0},
		{"403 json", schwabtest.EndpointAccount, failure(403), holdingsCall, commands.ErrProviderAuth, 0},
		{"403 access denied page", schwabtest.EndpointAccounts, schwabtest.AccessDenied(403), accountsCall, commands.ErrProviderUnavailable, 0},
		{"404 with a string status on the account", schwabtest.EndpointAccount, failure(404), holdingsCall, commands.ErrProviderNotFound, 0},
		{"plain-text 404 on the search", schwabtest.EndpointTransactions, schwabtest.PlainNotFound(), transactionsCall, commands.ErrProviderNotFound, 0},
		{"404 on the account list", schwabtest.EndpointAccounts, failure(404), accountsCall, commands.ErrProviderUnavailable, 0},
		{"plain-text 404 on the account numbers", schwabtest.EndpointAccountNumbers, schwabtest.PlainNotFound(), holdingsCall, commands.ErrProviderUnavailable, 0},
		{"400 invalid account number", schwabtest.EndpointTransactions, failure(400), transactionsCall, commands.ErrProviderNotFound, 0},
		{"400 other", schwabtest.EndpointTransactions, jsonFailure(400, `{"message":"Bad Request","errors":["types is required"]}`), transactionsCall, commands.ErrProviderInvalidResponse, 0},
		{"429 in seconds", schwabtest.EndpointAccounts, schwabtest.RateLimited("7"), accountsCall, commands.ErrProviderRateLimited, 7 * time.Second},
		{"429 as an HTTP date", schwabtest.EndpointAccount, schwabtest.RateLimited(httpDate), holdingsCall, commands.ErrProviderRateLimited, 90 * time.Second},
		{"429 without Retry-After", schwabtest.EndpointTransactions, schwabtest.RateLimited(""), transactionsCall, commands.ErrProviderRateLimited, 0},
		{"500 json", schwabtest.EndpointAccounts, failure(500), accountsCall, commands.ErrProviderUnavailable, 0},
		{"502 gateway fault", schwabtest.EndpointTransactions, failure(502), transactionsCall, commands.ErrProviderUnavailable, 0},
		{"503 gateway fault", schwabtest.EndpointAccount, failure(503), holdingsCall, commands.ErrProviderUnavailable, 0},
		{"504 html", schwabtest.EndpointAccountNumbers, schwabtest.AccessDenied(504), transactionsCall, commands.ErrProviderUnavailable, 0},
		{"200 truncated json", schwabtest.EndpointAccounts, jsonFailure(200, `[{"securitiesAccount":{"type":"CA`), accountsCall, commands.ErrProviderInvalidResponse, 0},
		{"200 html", schwabtest.EndpointAccount, schwabtest.AccessDenied(200), holdingsCall, commands.ErrProviderInvalidResponse, 0},
		{"200 object for a list", schwabtest.EndpointTransactions, jsonFailure(200, `{"transactions":[]}`), transactionsCall, commands.ErrProviderInvalidResponse, 0},
		{"200 record without activityId", schwabtest.EndpointTransactions, jsonFailure(200, `[{"type":"JOURNAL","time":"2024-01-01T00:00:00+0000","netAmount":1}]`), transactionsCall, commands.ErrProviderInvalidResponse, 0},
		{"200 record with an unreadable time", schwabtest.EndpointTransactions, jsonFailure(200, `[{"activityId":1,"type":"JOURNAL","time":"yesterday","netAmount":1}]`), transactionsCall, commands.ErrProviderInvalidResponse, 0},
		{"200 account without balances", schwabtest.EndpointAccounts, jsonFailure(200, `[{"securitiesAccount":{"type":"CASH","accountNumber":"31415926"}}]`), accountsCall, commands.ErrProviderInvalidResponse, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, schwabtest.Options{})
			creds := fx.connect(t)
			id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
			fx.fake.FailNextAt(tt.at, tt.fail)
			err := tt.call(fx, creds, id)
			wantKind(t, err, tt.want)
			noLeak(t, fx.fake, "error", err.Error())
			if tt.want == commands.ErrProviderRateLimited {
				var rl *commands.RateLimitedError
				if !errorsAs(err, &rl) || rl.RetryAfter != tt.delay {
					t.Fatalf("want a *RateLimitedError of %s, got %v", tt.delay, err)
				}
			}
			if !strings.Contains(err.Error(), "Schwab-Client-CorrelId ") {
				t.Errorf("error without Schwab's correlation id: %v", err)
			}
			if strings.Contains(err.Error(), schwabtest.AccountHash(schwabtest.CashAccountNumber)) {
				t.Errorf("error names the account hash: %v", err)
			}
		})
	}
}

func failure(status int) schwabtest.Failure {
	switch status {
	case 400:
		return jsonFailure(400, `{"message":"Invalid account number","errors":["Invalid account number"]}`)
	case 401:
		return jsonFailure(401, `{"errors":[{"id":"5e3b0c0a-1111-2222-3333-444455556666","status":401,"title":"Unauthorized","detail":"Client not authorized"}]}`)
	case 403:
		return jsonFailure(403, `{"errors":[{"id":"5e3b0c0a-1111-2222-3333-444455556666","status":403,"title":"Forbidden","detail":"Client not authorized"}]}`)
	case 404:
		return jsonFailure(404, `{"errors":[{"id":"5e3b0c0a-1111-2222-3333-444455556666","status":"404","title":"Not Found","detail":"Invalid account number"}]}`)
	case 500:
		return jsonFailure(500, `{"message":"An unexpected error occurred","errors":["Internal Server Error"]}`)
	case 502:
		return schwabtest.GatewayFault(502, "Unexpected EOF at target", "messaging.adaptors.http.flow.UnexpectedEOFAtTarget")
	case 503:
		return schwabtest.GatewayFault(503, "The Service is temporarily unavailable", "messaging.adaptors.http.flow.ServiceUnavailable")
	}
	return jsonFailure(status, `{"message":"`+http.StatusText(status)+`"}`)
}

// TestNothingLeaks collects every error and raw record the adapter
// produces against the fake, including answers that quote a code or a
// refresh token, and checks that none holds a secret or a full account
// number.
func TestNothingLeaks(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	ctx := context.Background()
	creds := fx.connect(t)
	var texts []string
	keep := func(err error) {
		if err == nil {
			t.Fatal("want an error")
		}
		texts = append(texts, err.Error())
	}

	// The fake's token errors quote the refused code or refresh token.
	code := fx.fake.Approve(t, fx.a.AuthorizationURL("st", "")).Get("code")
	if _, err := fx.a.Exchange(ctx, code, ""); err != nil {
		t.Fatal(err)
	}
	_, err := fx.a.Exchange(ctx, code, "")
	keep(err)
	next, err := fx.a.Refresh(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	fx.fake.RevokeRefresh()
	_, err = fx.a.Refresh(ctx, next)
	keep(err)
	// Failures of every kind on the data calls.
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	for _, status := range []int{400, 401, 403, 404, 429, 500, 502, 503} {
		for _, call := range []dataCall{accountsCall, holdingsCall, transactionsCall} {
			fx.fake.FailNext(status, time.Second)
			keep(call(fx, creds, id))
		}
	}
	fx.fake.GarbageNext()
	keep(accountsCall(fx, creds, id))
	fx.fake.ExpireAccess()
	keep(accountsCall(fx, creds, id))
	fx.clock.Advance(time.Hour)
	keep(accountsCall(fx, creds, id))

	// Every raw record of a fresh connection.
	creds = fx.connect(t)
	accts, err := fx.a.Accounts(ctx, creds)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accts {
		texts = append(texts, string(a.Raw), a.ID, a.Name, a.MaskedNumber)
		hs, err := fx.a.Holdings(ctx, creds, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			texts = append(texts, string(h.Raw))
		}
		txs, err := fx.a.Transactions(ctx, creds, a.ID, start.AddDate(-1, 0, 0), start)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs {
			texts = append(texts, string(tx.Raw), tx.Description)
		}
	}
	if len(fx.fake.Secrets()) < 8 {
		t.Fatalf("only %d secrets known: the check would prove little", len(fx.fake.Secrets()))
	}
	for _, s := range texts {
		noLeak(t, fx.fake, "output", s)
	}
}

func TestUnreachableSchwabIsUnavailable(t *testing.T) {
	fx := newFixture(t, schwabtest.Options{})
	creds := fx.connect(t)
	id := fx.accountID(t, creds, schwabtest.CashAccountNumber)
	cfg := config(fx.fake, fx.clock.Now)
	closed := schwabtest.New(t, schwabtest.Options{})
	cfg.APIBaseURL, cfg.TokenURL = closed.APIBaseURL(), closed.TokenURL()
	closed.Close()
	a, err := schwab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Accounts(context.Background(), creds)
	wantKind(t, err, commands.ErrProviderUnavailable)
	_, err = a.Holdings(context.Background(), creds, id)
	wantKind(t, err, commands.ErrProviderUnavailable)
	_, err = a.Refresh(context.Background(), creds)
	wantKind(t, err, commands.ErrProviderUnavailable)
	noLeak(t, fx.fake, "error", err.Error())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = fx.a.Accounts(ctx, creds)
	wantKind(t, err, commands.ErrProviderUnavailable)
	if !errorsIs(err, context.Canceled) {
		t.Fatalf("cancelled call: %v does not say so", err)
	}
}
