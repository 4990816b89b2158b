// Package schwabtest is a fake Charles Schwab Trader API served over real
// HTTP (httptest.Server), speaking Schwab's dialect with its quirks: the
// OAuth authorize page and token endpoint (Basic client authentication,
// URL-encoded "C0.…@" codes, refresh tokens that die seven days after the
// first exchange), the account, position and transaction calls with
// accounts addressed by hash, the transaction search's required
// parameters, 3000-record cap and one-year range, and Schwab's error
// answers (the 401 errors list, HTML "Access Denied" pages, API-gateway
// faults, plain-text 404s, Schwab-Client-CorrelId on every answer).
//
// Its data is deterministic: a CASH and a MARGIN account with positions
// and about a year of transactions ending the day before the fake's clock
// read at New. Tests add records in the dialect (AddTransaction), bulk
// records (GenerateTransactions), switch failures on (FailNext…), move the
// clock (Clock) and count the calls each endpoint received (Calls), e.g. to
// prove that a use case did not call the provider.
//
// Fake implements providertest.Fake.
package schwabtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/adapters/providers/providertest"
)

var _ providertest.Fake = (*Fake)(nil)

// Endpoint names one route of the fake, as a method and path template;
// unknown routes count as EndpointUnknown.
type Endpoint string

// The fake's routes.
// The {accountNumber} segment takes the account's hash, as at Schwab.
const (
	// EndpointAuthorize is the consent page.
	EndpointAuthorize Endpoint = "GET /v1/oauth/authorize"
	// EndpointAuthorizeForm takes the user's decision and redirects.
	EndpointAuthorizeForm Endpoint = "POST /v1/oauth/authorize"
	// EndpointToken exchanges codes and refresh tokens.
	EndpointToken Endpoint = "POST /v1/oauth/token"
	// EndpointAccountNumbers maps account numbers to hashes.
	EndpointAccountNumbers Endpoint = "GET /trader/v1/accounts/accountNumbers"
	// EndpointAccounts lists the accounts.
	EndpointAccounts Endpoint = "GET /trader/v1/accounts"
	// EndpointAccount is one account, positions on request.
	EndpointAccount Endpoint = "GET /trader/v1/accounts/{accountNumber}"
	// EndpointTransactions is the transaction search.
	EndpointTransactions Endpoint = "GET /trader/v1/accounts/{accountNumber}/transactions"
	// EndpointTransaction is one transaction.
	EndpointTransaction Endpoint = "GET /trader/v1/accounts/{accountNumber}/transactions/{activityId}"
	// EndpointUnknown is any other route, answered with a plain-text 404.
	EndpointUnknown Endpoint = "unknown"
)

// Defaults of Options.
const (
	// DefaultClientID is the app key the fake accepts by default.
	DefaultClientID = "FakeSchwabAppKey0123456789abcdef"
	// DefaultRedirectURI is the callback registered by default.
	DefaultRedirectURI = "https://127.0.0.1:8182/oauth/schwab/callback"
)

// The fake's accounts.
const (
	// CashAccountNumber is the CASH account's full number.
	CashAccountNumber = "31415926"
	// MarginAccountNumber is the MARGIN account's full number.
	MarginAccountNumber = "27182818"
)

// Lifetimes the fake enforces, Schwab's.
const (
	// CodeLifetime is how long an authorisation code can be exchanged.
	CodeLifetime = 30 * time.Second
	// AccessTokenLifetime is how long an access token works.
	AccessTokenLifetime = 30 * time.Minute
	// RefreshTokenLifetime is how long a refresh token works, from the
	// code exchange that started its chain.
	RefreshTokenLifetime = 7 * 24 * time.Hour
)

// Limits of the transaction search the fake enforces, Schwab's.
const (
	// MaxTransactionsPerCall is the most records one search answers.
	MaxTransactionsPerCall = 3000
	// MaxTransactionRange is the longest endDate - startDate accepted.
	MaxTransactionRange = 365 * 24 * time.Hour
)

// Options configures a Fake; the zero value is usable.
type Options struct {
	// ClientID is the app key the fake accepts, DefaultClientID when empty.
	ClientID string
	// ClientSecret is the app secret it accepts, random when empty.
	ClientSecret string
	// RedirectURI is the registered callback, DefaultRedirectURI when
	// empty; the authorize page and the code exchange require it exactly.
	RedirectURI string
	// Now is the fake's clock, time.Now when nil: it dates the generated
	// data (read once, at New) and expires codes and tokens.
	Now func() time.Time
	// RotateRefresh makes a refresh answer a new refresh token (with the
	// same hard expiry) and retire the old one; otherwise the refresh
	// token comes back unchanged.
	RotateRefresh bool
}

// Request is one request the fake received.
type Request struct {
	// Endpoint is the route it matched.
	Endpoint Endpoint
	// Path is the request path as sent (escaped).
	Path string
	// Query is its decoded query string.
	Query url.Values
	// Status is the status the fake answered.
	Status int
	// Records is how many records a transaction search answered.
	Records int
}

// Failure is an answer the fake gives instead of the next call's.
type Failure struct {
	// Status is the HTTP status.
	Status int
	// ContentType is the body's media type.
	ContentType string
	// Body is sent verbatim.
	Body string
	// Header holds extra header fields, e.g. Retry-After.
	Header http.Header
}

// Fake is a Schwab Trader API on a local httptest.Server.
type Fake struct {
	srv  *httptest.Server
	opts Options
	now  func() time.Time

	mu            sync.Mutex
	codes         map[string]*codeGrant
	access        map[string]*accessGrant
	refresh       map[string]*refreshGrant
	secrets       []string
	accounts      []*account
	txs           map[string][]storedTx
	failNext      []Failure
	failAt        map[Endpoint][]Failure
	failNextToken []Failure
	garbageNext   bool
	wholeDays     bool
	calls         map[Endpoint]int
	requests      []Request
	generation    int
	nextID        int64
}

// codeGrant is an issued authorisation code.
type codeGrant struct {
	redirectURI string
	issuedAt    time.Time
	used        bool
}

// accessGrant is an issued access token.
type accessGrant struct {
	expiresAt time.Time
}

// refreshGrant is an issued refresh token; expiresAt is seven days from
// the code exchange that started the chain.
type refreshGrant struct {
	expiresAt time.Time
	revoked   bool
}

// New starts a fake for the test, closed when the test ends.
func New(tb testing.TB, opts Options) *Fake {
	tb.Helper()
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "secret-" + randomHex(12)
	}
	if opts.RedirectURI == "" {
		opts.RedirectURI = DefaultRedirectURI
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	f := &Fake{
		opts:    opts,
		now:     now,
		codes:   map[string]*codeGrant{},
		access:  map[string]*accessGrant{},
		refresh: map[string]*refreshGrant{},
		secrets: []string{opts.ClientSecret},
		txs:     map[string][]storedTx{},
		calls:   map[Endpoint]int{},
		failAt:  map[Endpoint][]Failure{},
		nextID:  80_000_000_000,
	}
	f.seed(now())
	f.srv = httptest.NewServer(f.handler())
	tb.Cleanup(f.srv.Close)
	return f
}

// URL is the fake's root, e.g. http://127.0.0.1:PORT.
func (f *Fake) URL() string { return f.srv.URL }

// AuthURL is the authorize endpoint.
func (f *Fake) AuthURL() string { return f.srv.URL + "/v1/oauth/authorize" }

// TokenURL is the token endpoint.
func (f *Fake) TokenURL() string { return f.srv.URL + "/v1/oauth/token" }

// APIBaseURL is the Trader API root.
func (f *Fake) APIBaseURL() string { return f.srv.URL + "/trader/v1" }

// ClientID is the app key the fake accepts.
func (f *Fake) ClientID() string { return f.opts.ClientID }

// ClientSecret is the app secret the fake accepts.
func (f *Fake) ClientSecret() string { return f.opts.ClientSecret }

// RedirectURI is the registered callback.
func (f *Fake) RedirectURI() string { return f.opts.RedirectURI }

// HTTPClient is a client for the fake with a timeout.
func (f *Fake) HTTPClient() *http.Client {
	c := *f.srv.Client()
	c.Timeout = 30 * time.Second
	return &c
}

// Calls is how many requests ep received so far.
func (f *Fake) Calls(ep Endpoint) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[ep]
}

// DataCalls is how many requests the Trader API (every route under
// /trader/v1, unknown ones included) received so far.
func (f *Fake) DataCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for ep, c := range f.calls {
		if ep == EndpointUnknown || strings.Contains(string(ep), " /trader/") {
			n += c
		}
	}
	return n
}

// Requests lists the requests received so far, in order, optionally only
// those of the given endpoints.
func (f *Fake) Requests(eps ...Endpoint) []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Request
	for _, r := range f.requests {
		if len(eps) == 0 || slices.Contains(eps, r.Endpoint) {
			out = append(out, r)
		}
	}
	return out
}

// ResetCalls forgets the calls and requests counted so far.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[Endpoint]int{}
	f.requests = nil
	f.generation++
}

// Secrets lists every secret the fake handed out or knows: the client
// secret, codes, access, refresh and id tokens.
func (f *Fake) Secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.secrets)
}

// ExpireAccess makes every access token issued so far expire.
func (f *Fake) ExpireAccess() {
	f.mu.Lock()
	defer f.mu.Unlock()
	past := f.now().Add(-time.Second)
	for _, g := range f.access {
		g.expiresAt = past
	}
}

// RevokeRefresh makes every refresh token issued so far invalid.
func (f *Fake) RevokeRefresh() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.refresh {
		g.revoked = true
	}
}

// FailNext makes the next Trader API call answer status with the body
// Schwab gives for it (the 401 errors list, a 404 whose status is a
// string, a 502 or 503 gateway fault, ...), with Retry-After in whole
// seconds (rounded up) when retryAfter > 0.
func (f *Fake) FailNext(status int, retryAfter time.Duration) {
	fl := failureFor(status)
	if retryAfter > 0 {
		secs := int64((retryAfter + time.Second - 1) / time.Second)
		fl.Header = http.Header{"Retry-After": {formatInt(secs)}}
	}
	f.FailNextWith(fl)
}

// FailNextWith makes the next Trader API call answer fl; several queue up.
func (f *Fake) FailNextWith(fl Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = append(f.failNext, fl)
}

// FailNextAt makes the next call of the Trader API endpoint ep answer fl,
// whatever calls of other endpoints come first; several queue up.
func (f *Fake) FailNextAt(ep Endpoint, fl Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt[ep] = append(f.failAt[ep], fl)
}

// FailNextToken makes the next token request answer fl; several queue up.
func (f *Fake) FailNextToken(fl Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNextToken = append(f.failNextToken, fl)
}

// GarbageNext makes the next Trader API call answer 200 with truncated
// JSON.
func (f *Fake) GarbageNext() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.garbageNext = true
}

// MatchWholeDays makes the transaction search match whole New York days
// (the date parts of startDate and endDate, both inclusive) instead of
// instants, so that adjacent windows both answer the records of their
// common day: the way to test that a client removes duplicates.
func (f *Fake) MatchWholeDays(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wholeDays = on
}

// AccountHash is the hash Schwab's URLs take for an account number.
func AccountHash(number string) string {
	return strings.ToUpper(hex.EncodeToString(sha256Sum("fake-schwab-account:" + number)))
}

// failureFor is Schwab's answer for status.
func failureFor(status int) Failure {
	id := uuid.NewString()
	switch status {
	case http.StatusUnauthorized:
		return jsonFailure(status, `{"errors":[{"id":"`+id+`","status":401,"title":"Unauthorized","detail":"Client not authorized"}]}`)
	case http.StatusForbidden:
		return jsonFailure(status, `{"errors":[{"id":"`+id+`","status":403,"title":"Forbidden","detail":"Client not authorized to access this resource"}]}`)
	case http.StatusNotFound:
		return jsonFailure(status, `{"errors":[{"id":"`+id+`","status":"404","title":"Not Found","detail":"Resource not found"}]}`)
	case http.StatusTooManyRequests:
		return jsonFailure(status, `{"errors":[{"id":"`+id+`","status":429,"title":"Too Many Requests","detail":"Rate limit exceeded"}]}`)
	case http.StatusBadGateway:
		return GatewayFault(status, "Unexpected EOF at target", "messaging.adaptors.http.flow.UnexpectedEOFAtTarget")
	case http.StatusServiceUnavailable:
		return GatewayFault(status, "The Service is temporarily unavailable", "messaging.adaptors.http.flow.ServiceUnavailable")
	case http.StatusBadRequest:
		return jsonFailure(status, `{"message":"Invalid account number","errors":["Invalid account number"]}`)
	}
	return jsonFailure(status, `{"message":"An unexpected error occurred","errors":["`+http.StatusText(status)+`"]}`)
}

func jsonFailure(status int, body string) Failure {
	return Failure{Status: status, ContentType: "application/json", Body: body}
}

// GatewayFault is the API gateway's own error answer.
func GatewayFault(status int, faultString, errorCode string) Failure {
	return jsonFailure(status, `{"fault":{"faultstring":"`+faultString+`","detail":{"errorcode":"`+errorCode+`"}}}`)
}

// AccessDenied is the HTML page the CDN answers on transient faults.
func AccessDenied(status int) Failure {
	return Failure{Status: status, ContentType: "text/html", Body: accessDeniedPage}
}

// PlainNotFound is the plain-text 404 of an unknown route.
func PlainNotFound() Failure {
	return Failure{Status: http.StatusNotFound, ContentType: "text/plain", Body: "404 Not Found"}
}

// RateLimited is a 429 whose Retry-After is retryAfter verbatim (seconds
// or an HTTP date), or absent when empty.
func RateLimited(retryAfter string) Failure {
	fl := failureFor(http.StatusTooManyRequests)
	if retryAfter != "" {
		fl.Header = http.Header{"Retry-After": {retryAfter}}
	}
	return fl
}

const accessDeniedPage = `<HTML><HEAD>
<TITLE>Access Denied</TITLE>
</HEAD><BODY>
<H1>Access Denied</H1>
You don't have permission to access "http&#58;&#47;&#47;api&#46;schwabapi&#46;com&#47;trader&#47;v1&#47;accounts" on this server.<P>
Reference&#32;&#35;18&#46;7c2d3b17&#46;1712345678&#46;1a2b3c4d
</BODY>
</HTML>
`

// randomToken is base64 of n random bytes in the given alphabet.
func randomToken(enc *base64.Encoding, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return enc.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Close stops the server early (New's cleanup closes it otherwise), for
// tests of an unreachable Schwab.
func (f *Fake) Close() { f.srv.Close() }
