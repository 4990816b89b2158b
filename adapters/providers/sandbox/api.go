package sandbox

import (
	"net/http"
	"strconv"
	"time"
)

// dataHandler serves one data endpoint for an authenticated grant.
type dataHandler func(w http.ResponseWriter, r *http.Request, p *profile, now time.Time)

// data authenticates a data call, plays the flaky persona's failures and
// builds the grant's profile for h.
func (i *Institution) data(h dataHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := i.bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, codeInvalidToken, "access token missing, expired, revoked or not issued here")
			return
		}
		if c.Persona == PersonaFlaky {
			switch i.countCall(c.Grant) % flakyCycle {
			case flakyUnavailable:
				writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the flaky persona's intermittent outage; retry")
				return
			case 0:
				w.Header().Set("Retry-After", strconv.Itoa(int(flakyRetryAfter/time.Second)))
				writeError(w, http.StatusTooManyRequests, codeRateLimited, "the flaky persona's rate limit; retry after the delay")
				return
			}
		}
		h(w, r, newProfile(c.Seed, c.Persona), i.now())
	}
}

func (i *Institution) listAccounts(w http.ResponseWriter, _ *http.Request, p *profile, now time.Time) {
	list := wireAccountList{Accounts: make([]wireAccount, 0, len(p.accounts)), AsOf: now.UTC().Format(time.RFC3339)}
	for _, a := range p.accounts {
		list.Accounts = append(list.Accounts, p.accountRecord(a, now.Unix()))
	}
	writeJSON(w, http.StatusOK, list)
}

// pathAccount returns the path's account, answering 404 when there is none.
func pathAccount(w http.ResponseWriter, r *http.Request, p *profile) *account {
	a := p.accountByID(r.PathValue("id"))
	if a == nil {
		writeError(w, http.StatusNotFound, codeAccountNotFound, "no such account")
	}
	return a
}

func (i *Institution) getAccount(w http.ResponseWriter, r *http.Request, p *profile, now time.Time) {
	if a := pathAccount(w, r, p); a != nil {
		writeJSON(w, http.StatusOK, p.accountRecord(a, now.Unix()))
	}
}

func (i *Institution) listPositions(w http.ResponseWriter, r *http.Request, p *profile, now time.Time) {
	if a := pathAccount(w, r, p); a != nil {
		writeJSON(w, http.StatusOK, wirePositionList{AccountID: a.id, Positions: p.positionRecords(a, now.Unix()),
			AsOf: now.UTC().Format(time.RFC3339)})
	}
}

// listTransactions serves one page of an account's transactions booked
// from start_date to end_date, both inclusive and required, at most
// maxRangeDays apart, oldest first.
func (i *Institution) listTransactions(w http.ResponseWriter, r *http.Request, p *profile, now time.Time) {
	a := pathAccount(w, r, p)
	if a == nil {
		return
	}
	q := r.URL.Query()
	start, err1 := time.Parse(time.DateOnly, q.Get("start_date"))
	end, err2 := time.Parse(time.DateOnly, q.Get("end_date"))
	if err1 != nil || err2 != nil {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "start_date and end_date (YYYY-MM-DD) are required")
		return
	}
	first, last := dayOf(start), dayOf(end)
	switch {
	case last < first:
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "end_date is before start_date")
		return
	case last-first+1 > maxRangeDays:
		writeError(w, http.StatusBadRequest, codeRangeTooLarge, "at most "+strconv.Itoa(maxRangeDays)+" days per request")
		return
	}
	size := defaultPageSize
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, codeInvalidRequest, "page_size must be 1 to "+strconv.Itoa(maxPageSize))
			return
		}
		size = n
	}
	var after *cursor
	if s := q.Get("cursor"); s != "" {
		c, ok := parseCursor(s)
		if !ok {
			writeError(w, http.StatusBadRequest, codeInvalidRequest, "malformed cursor")
			return
		}
		after = &c
	}
	txs, next := p.transactions(a, now.Unix(), first, last, after, size)
	page := wireTransactionPage{Transactions: txs}
	if page.Transactions == nil {
		page.Transactions = []wireTransaction{}
	}
	if next != nil {
		page.NextCursor = next.String()
	}
	writeJSON(w, http.StatusOK, page)
}
