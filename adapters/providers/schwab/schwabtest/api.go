package schwabtest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// handler routes every request, counting it and stamping a correlation id
// on the answer as Schwab does.
func (f *Fake) handler() http.Handler {
	oauth := http.NewServeMux()
	oauth.HandleFunc(string(EndpointAuthorize), f.serveAuthorize)
	oauth.HandleFunc(string(EndpointAuthorizeForm), f.serveDecision)
	oauth.HandleFunc(string(EndpointToken), f.serveToken)

	trader := http.NewServeMux()
	trader.HandleFunc(string(EndpointAccountNumbers), f.serveAccountNumbers)
	trader.HandleFunc(string(EndpointAccounts), f.serveAccounts)
	trader.HandleFunc(string(EndpointAccount), f.serveAccount)
	trader.HandleFunc(string(EndpointTransactions), f.serveTransactions)
	trader.HandleFunc(string(EndpointTransaction), f.serveTransaction)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Schwab-Client-CorrelId", uuid.NewString())
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		isTrader := strings.HasPrefix(r.URL.Path, "/trader/v1/") || r.URL.Path == "/trader/v1"
		mux := oauth
		if isTrader {
			mux = trader
		}
		_, pattern := mux.Handler(r)
		ep := EndpointUnknown
		if pattern != "" {
			ep = Endpoint(pattern)
		}
		// Counted before answering, so that a client that has its answer
		// sees its call counted.
		f.mu.Lock()
		f.calls[ep]++
		i, gen := len(f.requests), f.generation
		f.requests = append(f.requests, Request{Endpoint: ep, Path: r.URL.EscapedPath(), Query: r.URL.Query()})
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			if gen == f.generation {
				f.requests[i].Status = rec.status
				f.requests[i].Records = rec.records
			}
			f.mu.Unlock()
		}()
		switch {
		case isTrader:
			f.serveTrader(rec, r, trader, ep)
		case ep != EndpointUnknown:
			oauth.ServeHTTP(rec, r)
		default:
			writeFailure(rec, PlainNotFound())
		}
	})
}

// statusRecorder remembers the status written, for Requests.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	records int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// serveTrader applies the failure switches, answers a plain-text 404 for
// an unknown route, then checks the bearer token and serves the route.
func (f *Fake) serveTrader(w http.ResponseWriter, r *http.Request, mux *http.ServeMux, ep Endpoint) {
	f.mu.Lock()
	if q := f.failAt[ep]; len(q) > 0 {
		f.failAt[ep] = q[1:]
		f.mu.Unlock()
		writeFailure(w, q[0])
		return
	}
	if len(f.failNext) > 0 {
		fl := f.failNext[0]
		f.failNext = f.failNext[1:]
		f.mu.Unlock()
		writeFailure(w, fl)
		return
	}
	if f.garbageNext {
		f.garbageNext = false
		f.mu.Unlock()
		writeFailure(w, Failure{Status: http.StatusOK, ContentType: "application/json", Body: `[{"securitiesAccount":{"type":"CASH","roundTrips":0,"isDayTrader":fal`})
		return
	}
	if ep == EndpointUnknown {
		// The gateway routes before it authenticates.
		f.mu.Unlock()
		writeFailure(w, PlainNotFound())
		return
	}
	authorized := false
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		g, known := f.access[tok]
		authorized = known && f.now().Before(g.expiresAt)
	}
	f.mu.Unlock()
	if !authorized {
		writeFailure(w, failureFor(http.StatusUnauthorized))
		return
	}
	mux.ServeHTTP(w, r)
}

// accountNumberAnswer is one entry of GET /accounts/accountNumbers.
type accountNumberAnswer struct {
	AccountNumber string `json:"accountNumber"`
	HashValue     string `json:"hashValue"`
}

func (f *Fake) serveAccountNumbers(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	out := make([]accountNumberAnswer, len(f.accounts))
	for i, a := range f.accounts {
		out[i] = accountNumberAnswer{AccountNumber: a.number, HashValue: AccountHash(a.number)}
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) serveAccounts(w http.ResponseWriter, r *http.Request) {
	positions := fieldsPositions(r)
	f.mu.Lock()
	out := make([]json.RawMessage, len(f.accounts))
	for i, a := range f.accounts {
		out[i] = a.envelope(positions, true)
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) serveAccount(w http.ResponseWriter, r *http.Request) {
	a := f.accountByHash(r.PathValue("accountNumber"))
	if a == nil {
		writeFailure(w, accountNotFound())
		return
	}
	f.mu.Lock()
	body := a.envelope(fieldsPositions(r), false)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// fieldsPositions reports whether fields asks for positions.
func fieldsPositions(r *http.Request) bool {
	for _, f := range strings.Split(r.URL.Query().Get("fields"), ",") {
		if strings.TrimSpace(f) == "positions" {
			return true
		}
	}
	return false
}

// accountNotFound is Schwab's 404 for an unknown account hash: the
// status is a string.
func accountNotFound() Failure {
	return jsonFailure(http.StatusNotFound, `{"errors":[{"id":"`+uuid.NewString()+`","status":"404","title":"Not Found","detail":"Invalid account number"}]}`)
}

// badRequest is Schwab's 400 with a message and its reasons.
func badRequest(w http.ResponseWriter, reasons ...string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Bad Request", "errors": reasons})
}

func (f *Fake) accountByHash(hash string) *account {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.accounts {
		if AccountHash(a.number) == hash {
			return a
		}
	}
	return nil
}

// searchLayout is the only form the search takes its dates in.
const searchLayout = "2006-01-02T15:04:05.000Z"

// serveTransactions is the transaction search: startDate, endDate and
// types required, at most a year apart, at most 3000 records (newest
// first), records matched by time (or whole days, see MatchWholeDays).
func (f *Fake) serveTransactions(w http.ResponseWriter, r *http.Request) {
	a := f.accountByHash(r.PathValue("accountNumber"))
	if a == nil {
		writeFailure(w, accountNotFound())
		return
	}
	q := r.URL.Query()
	var reasons []string
	start, errStart := time.Parse(searchLayout, q.Get("startDate"))
	end, errEnd := time.Parse(searchLayout, q.Get("endDate"))
	switch {
	case !q.Has("startDate"):
		reasons = append(reasons, "startDate is required")
	case errStart != nil:
		reasons = append(reasons, "startDate must look like 2024-03-28T21:10:42.000Z")
	}
	switch {
	case !q.Has("endDate"):
		reasons = append(reasons, "endDate is required")
	case errEnd != nil:
		reasons = append(reasons, "endDate must look like 2024-03-28T21:10:42.000Z")
	}
	types := map[string]bool{}
	if q.Get("types") == "" {
		reasons = append(reasons, "types is required")
	}
	for _, t := range strings.Split(q.Get("types"), ",") {
		if t == "" {
			continue
		}
		if !slices.Contains(TransactionTypes, t) {
			reasons = append(reasons, "unknown type "+t)
		}
		types[t] = true
	}
	if len(reasons) == 0 {
		switch {
		case end.Before(start):
			reasons = append(reasons, "endDate is before startDate")
		case end.Sub(start) > MaxTransactionRange:
			reasons = append(reasons, "date range cannot exceed 1 year")
		}
	}
	if len(reasons) > 0 {
		badRequest(w, reasons...)
		return
	}
	symbol := q.Get("symbol")
	f.mu.Lock()
	var hits []storedTx
	for _, tx := range f.txs[a.number] {
		if !types[tx.typ] || (symbol != "" && !slices.Contains(tx.symbols, symbol)) {
			continue
		}
		in := !tx.at.Before(start) && !tx.at.After(end)
		if f.wholeDays {
			d := newYorkDate(tx.at)
			in = !d.Before(newYorkDate(start)) && !d.After(newYorkDate(end))
		}
		if in {
			hits = append(hits, tx)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(hits, func(x, y storedTx) int {
		return cmp.Or(y.at.Compare(x.at), cmp.Compare(y.id, x.id))
	})
	if len(hits) > MaxTransactionsPerCall {
		hits = hits[:MaxTransactionsPerCall]
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.records = len(hits)
	}
	// Written as stored, byte for byte: json.Marshal would re-indent
	// nothing but would compact and re-validate every record each time.
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, tx := range hits {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(tx.raw)
	}
	buf.WriteByte(']')
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

func (f *Fake) serveTransaction(w http.ResponseWriter, r *http.Request) {
	a := f.accountByHash(r.PathValue("accountNumber"))
	if a == nil {
		writeFailure(w, accountNotFound())
		return
	}
	id, err := strconv.ParseInt(r.PathValue("activityId"), 10, 64)
	if err != nil {
		badRequest(w, "activityId must be a number")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tx := range f.txs[a.number] {
		if tx.id == id {
			writeJSON(w, http.StatusOK, tx.raw)
			return
		}
	}
	writeFailure(w, jsonFailure(http.StatusNotFound, `{"errors":[{"id":"`+uuid.NewString()+`","status":"404","title":"Not Found","detail":"Transaction not found"}]}`))
}
