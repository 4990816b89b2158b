package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// Provider is one financial institution's API as Dashtam needs it: OAuth
// authorisation, token refresh and the data calls of a sync. Adapters
// (adapters/providers/...) implement it over the institution's own HTTP
// dialect; one contract test suite (adapters/providers/providertest) runs
// against every adapter, each talking to a fake of its institution over
// real HTTP.
//
// Every method that calls the institution returns, for a failure, an error
// matching exactly one of ErrProviderAuth, ErrProviderUnavailable,
// ErrProviderRateLimited (a *RateLimitedError), ErrProviderNotFound or
// ErrProviderInvalidResponse, possibly wrapped, so that callers decide
// retries and state changes without knowing the dialect. No error, log
// line or returned value other than Credentials ever contains a token, a
// code or a client secret.
type Provider interface {
	// Info describes the provider for the public catalog.
	Info() ProviderInfo
	// AuthorizationURL returns where to send the user's browser to grant
	// access. state is opaque and comes back on the callback; challenge is
	// the PKCE S256 challenge, used only when Info().PKCE is true.
	AuthorizationURL(state, challenge string) string
	// Exchange trades the authorisation code the callback received (as
	// received in the query, decoded once) for credentials; verifier is the
	// PKCE verifier, empty when Info().PKCE is false. An invalid or expired
	// code is ErrProviderAuth.
	Exchange(ctx context.Context, code, verifier string) (Credentials, error)
	// Refresh trades c's refresh token for new credentials. A refresh token
	// that is expired, revoked or otherwise refused is ErrProviderAuth: the
	// user must authorise again. The result keeps c's RefreshExpiresAt when
	// the institution does not extend it.
	Refresh(ctx context.Context, c Credentials) (Credentials, error)
	// Accounts lists the accounts the credentials reach.
	Accounts(ctx context.Context, c Credentials) ([]ProviderAccount, error)
	// Transactions lists one account's transactions dated within [from,
	// to), splitting the range into as many calls as the institution's
	// limits need. An unknown account is ErrProviderNotFound.
	Transactions(ctx context.Context, c Credentials, accountID string, from, to time.Time) ([]ProviderTransaction, error)
	// Holdings lists one account's positions; an account without
	// positions has none. An unknown account is ErrProviderNotFound.
	Holdings(ctx context.Context, c Credentials, accountID string) ([]ProviderHolding, error)
}

// ProviderInfo describes one provider in the catalog.
type ProviderInfo struct {
	// Slug identifies the provider in URLs and connections, e.g. "schwab".
	Slug string
	// Name is the provider's display name, e.g. "Charles Schwab".
	Name string
	// AuthType says how a connection authenticates: "oauth2".
	AuthType string
	// PKCE reports whether the provider takes an S256 code challenge.
	PKCE bool
}

// Credentials are what a provider's authorisation yields. They live only
// in the encrypted vault: events carry a key id, a fingerprint and the
// expiries, never a token.
type Credentials struct {
	// AccessToken authorises data calls until AccessExpiresAt.
	AccessToken string `json:"access_token"`
	// RefreshToken obtains new credentials until RefreshExpiresAt.
	RefreshToken string `json:"refresh_token"`
	// TokenType is the scheme of AccessToken, normally "Bearer".
	TokenType string `json:"token_type"`
	// AccessExpiresAt is when AccessToken stops working.
	AccessExpiresAt time.Time `json:"access_expires_at"`
	// RefreshExpiresAt is when RefreshToken stops working, zero when the
	// provider does not say (Schwab's is seven days from the first exchange).
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	// Scope is the granted scope as the provider reported it.
	Scope string `json:"scope,omitempty"`
	// Extra holds provider-specific values the adapter needs again later
	// (never shown, encrypted with the rest).
	Extra map[string]string `json:"extra,omitempty"`
}

// ProviderAccount is one account as a provider reports it, mapped to
// Dashtam's vocabulary with the provider's own record kept beside it.
type ProviderAccount struct {
	// ID identifies the account at the provider, stable across syncs and
	// safe to store: never a full account number (adapters derive an id
	// when the institution has no other).
	ID string
	// Name is a display name.
	Name string
	// Type is the account type in Dashtam's vocabulary (AccountType*).
	Type string
	// Subtype is the provider's own account type, as it says it.
	Subtype string
	// MaskedNumber is the account number's last four digits, never more.
	MaskedNumber string
	// Currency is the ISO 4217 code of the balances.
	Currency string
	// Balance is the current balance (liquidation value for brokerage).
	Balance decimal.Decimal
	// Available is the available balance, nil when the provider has none.
	Available *decimal.Decimal
	// Raw is the provider's record, with any full account number removed.
	Raw json.RawMessage
}

// Account types of Dashtam's vocabulary.
const (
	AccountTypeChecking   = "checking"
	AccountTypeSavings    = "savings"
	AccountTypeBrokerage  = "brokerage"
	AccountTypeRetirement = "retirement"
	AccountTypeCredit     = "credit"
	AccountTypeOther      = "other"
)

// ProviderTransaction is one transaction as a provider reports it.
type ProviderTransaction struct {
	// ID identifies the transaction at the provider, stable across syncs.
	ID string
	// AccountID is the ProviderAccount.ID it belongs to.
	AccountID string
	// Type is the transaction type in Dashtam's vocabulary (TransactionType*).
	Type string
	// Subtype is the provider's own type, as it says it.
	Subtype string
	// Pending is true until the transaction posts.
	Pending bool
	// Amount is signed: money into the account is positive.
	Amount decimal.Decimal
	// Currency is the ISO 4217 code of Amount.
	Currency string
	// Description is the provider's description, possibly empty.
	Description string
	// Date is the transaction's calendar date (midnight UTC).
	Date time.Time
	// SettlementDate is the settlement's calendar date, nil when unknown.
	SettlementDate *time.Time
	// Symbol, Quantity (signed: negative for a sale), UnitPrice,
	// Commission and Fees describe a trade; empty or nil otherwise.
	Symbol     string
	Quantity   *decimal.Decimal
	UnitPrice  *decimal.Decimal
	Commission *decimal.Decimal
	Fees       *decimal.Decimal
	// Raw is the provider's record, with any full account number removed.
	Raw json.RawMessage
}

// Transaction types of Dashtam's vocabulary; the provider's own type is
// kept as the subtype.
const (
	TransactionTypeBuy        = "buy"
	TransactionTypeSell       = "sell"
	TransactionTypeDividend   = "dividend"
	TransactionTypeInterest   = "interest"
	TransactionTypeDeposit    = "deposit"
	TransactionTypeWithdrawal = "withdrawal"
	TransactionTypeTransfer   = "transfer"
	TransactionTypeFee        = "fee"
	TransactionTypeJournal    = "journal"
	TransactionTypeOther      = "other"
)

// ProviderHolding is one position in an account.
type ProviderHolding struct {
	// Symbol is the instrument's ticker or identifier.
	Symbol string
	// Description names the instrument, possibly empty.
	Description string
	// AssetType is the provider's instrument class (EQUITY, OPTION, ...).
	AssetType string
	// Quantity is signed: negative for a short position.
	Quantity decimal.Decimal
	// AveragePrice is the cost per unit, nil when unknown.
	AveragePrice *decimal.Decimal
	// MarketValue is the position's current value.
	MarketValue decimal.Decimal
	// Currency is the ISO 4217 code of the amounts.
	Currency string
	// Raw is the provider's record.
	Raw json.RawMessage
}

// The kinds of provider failure; every error a Provider returns matches
// exactly one of them (errors.Is).
var (
	// ErrProviderAuth means the credentials were refused: the user must
	// authorise again (after one refresh, for an expired access token).
	ErrProviderAuth = errors.New("provider refused the credentials")
	// ErrProviderUnavailable means the provider failed or could not be
	// reached; retry later with backoff.
	ErrProviderUnavailable = errors.New("provider unavailable")
	// ErrProviderRateLimited means the provider refused for the rate; the
	// error is a *RateLimitedError saying when to retry.
	ErrProviderRateLimited = errors.New("provider rate limit reached")
	// ErrProviderNotFound means the provider does not know the account or
	// transaction asked for.
	ErrProviderNotFound = errors.New("provider does not know the resource")
	// ErrProviderInvalidResponse means the provider answered something the
	// adapter cannot read; retrying may help, and the answer is logged
	// without secrets.
	ErrProviderInvalidResponse = errors.New("provider answered an invalid response")
)

// RateLimitedError is a rate-limit refusal with the delay the provider
// asked for (Retry-After), zero when it named none.
type RateLimitedError struct {
	RetryAfter time.Duration
}

// Error says how long to wait.
func (e *RateLimitedError) Error() string {
	if e.RetryAfter <= 0 {
		return ErrProviderRateLimited.Error()
	}
	return fmt.Sprintf("%s: retry after %s", ErrProviderRateLimited, e.RetryAfter)
}

// Is makes errors.Is(err, ErrProviderRateLimited) hold.
func (e *RateLimitedError) Is(target error) bool { return target == ErrProviderRateLimited }

// Providers is the explicit registry of enabled providers, built from
// configuration at start-up (no self-registration).
type Providers struct {
	bySlug map[string]Provider
	order  []string
}

// NewProviders returns the registry of ps, refusing duplicate or empty slugs.
func NewProviders(ps ...Provider) (*Providers, error) {
	r := &Providers{bySlug: make(map[string]Provider, len(ps))}
	for _, p := range ps {
		if p == nil {
			return nil, errors.New("providers: nil provider")
		}
		slug := p.Info().Slug
		if slug == "" {
			return nil, errors.New("providers: empty slug")
		}
		if _, dup := r.bySlug[slug]; dup {
			return nil, fmt.Errorf("providers: %q enabled twice", slug)
		}
		r.bySlug[slug] = p
		r.order = append(r.order, slug)
	}
	return r, nil
}

// ErrUnknownProvider means no enabled provider has the slug.
var ErrUnknownProvider = errors.New("unknown provider")

// Get returns the enabled provider with slug, or ErrUnknownProvider.
func (r *Providers) Get(slug string) (Provider, error) {
	p, ok := r.bySlug[slug]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProvider, slug)
	}
	return p, nil
}

// List returns the enabled providers' descriptions in configuration order.
func (r *Providers) List() []ProviderInfo {
	out := make([]ProviderInfo, len(r.order))
	for i, slug := range r.order {
		out[i] = r.bySlug[slug].Info()
	}
	return out
}

// ProviderPacer spaces the calls to each provider across every instance,
// so that together they stay under the provider's own rate limit (Schwab
// allows about 120 requests a minute per app) instead of running into 429s.
type ProviderPacer interface {
	// Reserve books the next free call slot of provider if it is at most
	// maxWait away and returns how long to wait for it (zero: call now)
	// and true; when the next slot is further away it books nothing and
	// returns the wait and false, so a job can snooze instead of holding a
	// worker.
	Reserve(ctx context.Context, provider string, maxWait time.Duration) (wait time.Duration, reserved bool, err error)
}
