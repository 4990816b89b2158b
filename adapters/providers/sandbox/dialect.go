package sandbox

// The sandbox's JSON dialect, deliberately its own (not Schwab's, not
// Plaid's): money is an object of a decimal string and a currency, dates
// are ISO 8601 calendar dates, instants RFC 3339 in UTC, lists are
// wrapped in an object. docs/sandbox.md documents it for client
// developers; the institution writes these types and the adapter reads
// them, keeping each record's raw JSON beside the mapped values.

// wireMoney is an amount: value is a decimal string with two places,
// signed (money into the account is positive).
type wireMoney struct {
	Value    string `json:"value"`
	Currency string `json:"currency"`
}

// wireAccountList answers GET /api/v1/accounts.
type wireAccountList struct {
	Accounts []wireAccount `json:"accounts"`
	AsOf     string        `json:"as_of"`
}

// wireAccount is one account. No full account number is ever served.
type wireAccount struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Product     string       `json:"product"`
	NumberLast4 string       `json:"number_last4"`
	Currency    string       `json:"currency"`
	Status      string       `json:"status"`
	OpenedOn    string       `json:"opened_on"`
	Balances    wireBalances `json:"balances"`
}

// wireBalances are decimal strings in the account's currency: current is
// the ledger balance (total value for an investment account), available
// what can be spent or withdrawn now; cash and securities split an
// investment account's value.
type wireBalances struct {
	Current    string  `json:"current"`
	Available  *string `json:"available,omitempty"`
	Cash       *string `json:"cash,omitempty"`
	Securities *string `json:"securities,omitempty"`
}

// wireTransactionPage answers GET /api/v1/accounts/{id}/transactions.
type wireTransactionPage struct {
	Transactions []wireTransaction `json:"transactions"`
	NextCursor   string            `json:"next_cursor,omitempty"`
}

// wireTransaction is one transaction.
type wireTransaction struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	// Status is "pending" or "posted".
	Status      string    `json:"status"`
	Kind        string    `json:"kind"`
	Description string    `json:"description"`
	Amount      wireMoney `json:"amount"`
	// AuthorizedAmount is the pending amount of a posted transaction whose
	// posted amount differs (a tip, a fuel hold).
	AuthorizedAmount *wireMoney `json:"authorized_amount,omitempty"`
	// BookingDate is the transaction's date; ValueDate when the money
	// moved (a posted card purchase's posting date, a trade's settlement).
	BookingDate  string `json:"booking_date"`
	ValueDate    string `json:"value_date,omitempty"`
	AuthorizedAt string `json:"authorized_at"`
	PostedAt     string `json:"posted_at,omitempty"`
	// CounterpartyAccountID is the other account of an internal transfer.
	CounterpartyAccountID string        `json:"counterparty_account_id,omitempty"`
	Merchant              *wireMerchant `json:"merchant,omitempty"`
	Trade                 *wireTrade    `json:"trade,omitempty"`
}

// wireMerchant is where a card was used.
type wireMerchant struct {
	Name     string `json:"name"`
	Category string `json:"category"`
	City     string `json:"city"`
}

// wireTrade details a trade: quantity is signed (negative for a sale),
// price, commission and fees are decimal strings in the amount's currency.
type wireTrade struct {
	Symbol     string `json:"symbol"`
	Side       string `json:"side"`
	Quantity   string `json:"quantity"`
	Price      string `json:"price"`
	Commission string `json:"commission"`
	Fees       string `json:"fees"`
}

// wirePositionList answers GET /api/v1/accounts/{id}/positions.
type wirePositionList struct {
	AccountID string         `json:"account_id"`
	Positions []wirePosition `json:"positions"`
	AsOf      string         `json:"as_of"`
}

// wirePosition is one holding.
type wirePosition struct {
	Symbol     string `json:"symbol"`
	Name       string `json:"name"`
	AssetClass string `json:"asset_class"`
	Quantity   string `json:"quantity"`
	Price      string `json:"price"`
	// CostBasisPerUnit is the average price paid, absent when unknown.
	CostBasisPerUnit *string   `json:"cost_basis_per_unit,omitempty"`
	MarketValue      wireMoney `json:"market_value"`
}

// wireError is every error body of the data endpoints.
type wireError struct {
	Error wireErrorDetail `json:"error"`
}

// wireErrorDetail names the error: code is stable, message for people.
type wireErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of the data endpoints.
const (
	codeInvalidToken    = "invalid_token"
	codeAccountNotFound = "account_not_found"
	codeInvalidRequest  = "invalid_request"
	codeRangeTooLarge   = "range_too_large"
	codeRateLimited     = "rate_limited"
	codeUnavailable     = "temporarily_unavailable"
	codeNotFound        = "not_found"
)

// Limits of the transactions endpoint.
const (
	// maxRangeDays is the longest start_date..end_date range, both inclusive.
	maxRangeDays = 92
	// defaultPageSize and maxPageSize bound a page of transactions.
	defaultPageSize = 200
	maxPageSize     = 1000
)

// currency is the only currency the sandbox banks in.
const currency = "USD"
