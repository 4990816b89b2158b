package syncs_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// bank is a scripted institution speaking the sandbox's dialect
// (docs/sandbox.md) over real HTTP: the tests set its accounts,
// transactions and positions (a "provider snapshot"), make a call fail
// with the dialect's errors, and look at each request before it is
// answered. The sandbox's own OAuth endpoints sit beside it, so
// connections authorise through the real flow and the real adapter reads
// the data.
type bank struct {
	mu       sync.Mutex
	accounts []bankAccount
	txs      map[string][]bankTx
	// positions are per account id.
	positions map[string][]bankPosition
	// failures queue answers by route: "accounts", "transactions:ID",
	// "positions:ID".
	failures map[string][]bankFailure
	// onRequest runs before each data request is answered.
	onRequest func(r *http.Request)
	calls     map[string]int
}

// bankAccount is one account of the snapshot.
type bankAccount struct {
	ID, Name, Product, Last4 string
	Balance                  string
	Available                *string
}

// bankTx is one transaction of the snapshot.
type bankTx struct {
	ID, Kind, Description string
	Pending               bool
	Amount                string
	Date                  string
	ValueDate             string
}

// bankPosition is one position of the snapshot.
type bankPosition struct {
	Symbol, Quantity, Value string
}

// bankFailure is an answer given instead of the next call's.
type bankFailure struct {
	status     int
	code       string
	retryAfter string
	// body, when set, is sent verbatim with status instead of the
	// dialect's error: an answer that is not the dialect.
	body string
	// stall answers nothing until the client gives up.
	stall bool
}

func newBank() *bank {
	return &bank{txs: map[string][]bankTx{}, positions: map[string][]bankPosition{}, failures: map[string][]bankFailure{}, calls: map[string]int{}}
}

// set replaces the whole snapshot.
func (b *bank) set(accounts []bankAccount, txs map[string][]bankTx, positions map[string][]bankPosition) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.accounts = slices.Clone(accounts)
	b.txs = map[string][]bankTx{}
	for k, v := range txs {
		b.txs[k] = slices.Clone(v)
	}
	b.positions = map[string][]bankPosition{}
	for k, v := range positions {
		b.positions[k] = slices.Clone(v)
	}
}

// fail queues a failure of route.
func (b *bank) fail(route string, status int, code, retryAfter string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures[route] = append(b.failures[route], bankFailure{status: status, code: code, retryAfter: retryAfter})
}

// garble queues an answer of status whose body is raw, not the dialect.
func (b *bank) garble(route string, status int, raw string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures[route] = append(b.failures[route], bankFailure{status: status, body: raw})
}

// stall makes the next call of route hang until the client gives up.
func (b *bank) stall(route string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures[route] = append(b.failures[route], bankFailure{stall: true})
}

// called is how many requests route received.
func (b *bank) called(route string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[route]
}

// serveData answers the data API under prefix ("/sandbox/api/v1").
func (b *bank) serveData(w http.ResponseWriter, r *http.Request, prefix string) {
	b.mu.Lock()
	hook := b.onRequest
	b.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	path := strings.TrimPrefix(r.URL.Path, prefix)
	parts := strings.Split(strings.Trim(path, "/"), "/")
	route := ""
	switch {
	case len(parts) == 1 && parts[0] == "accounts":
		route = "accounts"
	case len(parts) == 3 && parts[0] == "accounts" && parts[2] == "transactions":
		route = "transactions:" + parts[1]
	case len(parts) == 3 && parts[0] == "accounts" && parts[2] == "positions":
		route = "positions:" + parts[1]
	default:
		writeBankError(w, http.StatusNotFound, "not_found", "")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		writeBankError(w, http.StatusUnauthorized, "invalid_token", "")
		return
	}
	b.mu.Lock()
	b.calls[route]++
	if q := b.failures[route]; len(q) > 0 {
		f := q[0]
		b.failures[route] = q[1:]
		b.mu.Unlock()
		switch {
		case f.stall:
			<-r.Context().Done()
		case f.body != "":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.status)
			_, _ = io.WriteString(w, f.body)
		default:
			writeBankError(w, f.status, f.code, f.retryAfter)
		}
		return
	}
	defer b.mu.Unlock()
	switch {
	case route == "accounts":
		type money struct {
			Current   string  `json:"current"`
			Available *string `json:"available,omitempty"`
		}
		type account struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			Product     string `json:"product"`
			NumberLast4 string `json:"number_last4"`
			Currency    string `json:"currency"`
			Status      string `json:"status"`
			OpenedOn    string `json:"opened_on"`
			Balances    money  `json:"balances"`
		}
		out := struct {
			Accounts []account `json:"accounts"`
			AsOf     string    `json:"as_of"`
		}{Accounts: []account{}, AsOf: "2026-03-10T00:00:00Z"}
		for _, a := range b.accounts {
			out.Accounts = append(out.Accounts, account{ID: a.ID, Name: a.Name, Product: a.Product, NumberLast4: a.Last4,
				Currency: "USD", Status: "open", OpenedOn: "2024-01-01", Balances: money{Current: a.Balance, Available: a.Available}})
		}
		writeBankJSON(w, out)
	case strings.HasPrefix(route, "transactions:"):
		b.serveTransactions(w, r, strings.TrimPrefix(route, "transactions:"))
	default:
		id := strings.TrimPrefix(route, "positions:")
		if !b.knows(id) {
			writeBankError(w, http.StatusNotFound, "account_not_found", "")
			return
		}
		type pos struct {
			Symbol      string            `json:"symbol"`
			Name        string            `json:"name"`
			AssetClass  string            `json:"asset_class"`
			Quantity    string            `json:"quantity"`
			Price       string            `json:"price"`
			MarketValue map[string]string `json:"market_value"`
		}
		out := struct {
			AccountID string `json:"account_id"`
			Positions []pos  `json:"positions"`
			AsOf      string `json:"as_of"`
		}{AccountID: id, Positions: []pos{}, AsOf: "2026-03-10T00:00:00Z"}
		for _, p := range b.positions[id] {
			out.Positions = append(out.Positions, pos{Symbol: p.Symbol, Name: p.Symbol + " Fund", AssetClass: "etf", Quantity: p.Quantity,
				Price: "1.00", MarketValue: map[string]string{"value": p.Value, "currency": "USD"}})
		}
		writeBankJSON(w, out)
	}
}

// knows reports whether the snapshot lists account id; b.mu is held.
func (b *bank) knows(id string) bool {
	return slices.ContainsFunc(b.accounts, func(a bankAccount) bool { return a.ID == id })
}

// serveTransactions answers one page of an account's transactions booked
// from start_date to end_date (inclusive), oldest first; b.mu is held.
func (b *bank) serveTransactions(w http.ResponseWriter, r *http.Request, id string) {
	if !b.knows(id) {
		writeBankError(w, http.StatusNotFound, "account_not_found", "")
		return
	}
	q := r.URL.Query()
	start, end := q.Get("start_date"), q.Get("end_date")
	if _, err := time.Parse(time.DateOnly, start); err != nil {
		writeBankError(w, http.StatusBadRequest, "invalid_request", "")
		return
	}
	size, _ := strconv.Atoi(q.Get("page_size"))
	if size <= 0 {
		size = 200
	}
	offset, _ := strconv.Atoi(q.Get("cursor"))
	var in []bankTx
	for _, t := range b.txs[id] {
		if t.Date >= start && t.Date <= end {
			in = append(in, t)
		}
	}
	slices.SortStableFunc(in, func(x, y bankTx) int { return strings.Compare(x.Date, y.Date) })
	type money struct {
		Value    string `json:"value"`
		Currency string `json:"currency"`
	}
	type tx struct {
		ID           string `json:"id"`
		AccountID    string `json:"account_id"`
		Status       string `json:"status"`
		Kind         string `json:"kind"`
		Description  string `json:"description"`
		Amount       money  `json:"amount"`
		BookingDate  string `json:"booking_date"`
		ValueDate    string `json:"value_date,omitempty"`
		AuthorizedAt string `json:"authorized_at"`
	}
	page := struct {
		Transactions []tx   `json:"transactions"`
		NextCursor   string `json:"next_cursor,omitempty"`
	}{Transactions: []tx{}}
	for i := offset; i < len(in) && i < offset+size; i++ {
		t := in[i]
		status := "posted"
		if t.Pending {
			status = "pending"
		}
		page.Transactions = append(page.Transactions, tx{ID: t.ID, AccountID: id, Status: status, Kind: t.Kind, Description: t.Description,
			Amount: money{Value: t.Amount, Currency: "USD"}, BookingDate: t.Date, ValueDate: t.ValueDate, AuthorizedAt: t.Date + "T12:00:00Z"})
	}
	if offset+size < len(in) {
		page.NextCursor = strconv.Itoa(offset + size)
	}
	writeBankJSON(w, page)
}

func writeBankJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeBankError(w http.ResponseWriter, status int, code, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": code}})
}
