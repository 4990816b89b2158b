package schwabtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
)

// authURL is an authorize URL for f as a client builds it.
func authURL(f *schwabtest.Fake, change func(url.Values)) string {
	q := url.Values{"client_id": {f.ClientID()}, "redirect_uri": {f.RedirectURI()}, "response_type": {"code"}, "state": {"s1"}}
	if change != nil {
		change(q)
	}
	return f.AuthURL() + "?" + q.Encode()
}

// post sends a token request with form, authenticated as user:pass when
// user is not empty, and decodes the JSON answer.
func post(t *testing.T, f *schwabtest.Fake, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.TokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return do(t, f, req)
}

func do(t *testing.T, f *schwabtest.Fake, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return resp.StatusCode, m
}

// codeOf approves and returns the decoded code.
func codeOf(t *testing.T, f *schwabtest.Fake) string {
	t.Helper()
	return f.Approve(t, authURL(f, nil)).Get("code")
}

// accessToken connects and returns an access token.
func accessToken(t *testing.T, f *schwabtest.Fake) string {
	t.Helper()
	status, ans := post(t, f, url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, f)}, "redirect_uri": {f.RedirectURI()}}, f.ClientID(), f.ClientSecret())
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, ans)
	}
	return ans["access_token"].(string)
}

// get calls the Trader API and returns status, header and body.
func get(t *testing.T, f *schwabtest.Fake, token, path string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.APIBaseURL()+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func TestAuthorizePage(t *testing.T) {
	f := schwabtest.New(t, schwabtest.Options{})
	for name, change := range map[string]func(url.Values){
		"unknown client":         func(q url.Values) { q.Set("client_id", "other") },
		"redirect uri differs":   func(q url.Values) { q.Set("redirect_uri", f.RedirectURI()+"/") },
		"not the code flow":      func(q url.Values) { q.Set("response_type", "token") },
		"redirect uri case":      func(q url.Values) { q.Set("redirect_uri", strings.ToUpper(f.RedirectURI())) },
		"redirect uri is absent": func(q url.Values) { q.Del("redirect_uri") },
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := f.HTTPClient().Get(authURL(f, change))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want 400", resp.StatusCode)
			}
		})
	}
	callback := f.ApproveURL(t, authURL(f, nil))
	pattern := regexp.MustCompile(`^` + regexp.QuoteMeta(f.RedirectURI()) + `\?code=C0\.[A-Za-z0-9%]+\.[A-Za-z0-9%]+%40&session=[0-9a-f-]{36}&state=s1$`)
	if !pattern.MatchString(callback) {
		t.Fatalf("callback %s is not shaped like Schwab's", callback)
	}
	denied := f.DenyURL(t, authURL(f, nil))
	if q, _ := url.Parse(denied); q.Query().Get("error") != "access_denied" || q.Query().Get("state") != "s1" || q.Query().Has("code") {
		t.Fatalf("denial callback %s", denied)
	}
}

func TestTokenEndpoint(t *testing.T) {
	f := schwabtest.New(t, schwabtest.Options{})
	exchange := func(code string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {f.RedirectURI()}}
	}
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		errCode    string
	}{
		{"no client authentication", exchange(codeOf(t, f)), "", "", 401, "invalid_client"},
		{"wrong secret", exchange(codeOf(t, f)), f.ClientID(), "nope", 401, "invalid_client"},
		{"secret in the body", func() url.Values { v := exchange(codeOf(t, f)); v.Set("client_secret", f.ClientSecret()); return v }(), f.ClientID(), f.ClientSecret(), 400, "invalid_request"},
		{"other redirect uri", func() url.Values {
			v := exchange(codeOf(t, f))
			v.Set("redirect_uri", "https://elsewhere/cb")
			return v
		}(), f.ClientID(), f.ClientSecret(), 400, "invalid_request"},
		{"unknown code", exchange("C0.x.y@"), f.ClientID(), f.ClientSecret(), 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"password"}}, f.ClientID(), f.ClientSecret(), 400, "unsupported_grant_type"},
		{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r@"}}, f.ClientID(), f.ClientSecret(), 400, "unsupported_token_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ans := post(t, f, tt.form, tt.user, tt.pass)
			if status != tt.status || ans["error"] != tt.errCode {
				t.Fatalf("HTTP %d %v, want %d %s", status, ans, tt.status, tt.errCode)
			}
		})
	}
	status, ans := post(t, f, exchange(codeOf(t, f)), f.ClientID(), f.ClientSecret())
	if status != 200 || ans["expires_in"] != float64(1800) || ans["token_type"] != "Bearer" || ans["scope"] != "api" ||
		ans["id_token"] == nil || !strings.HasPrefix(ans["access_token"].(string), "I0.") || ans["refresh_token"] == "" {
		t.Fatalf("HTTP %d %v", status, ans)
	}
	req, _ := http.NewRequest(http.MethodPost, f.TokenURL(), strings.NewReader(`{"grant_type":"refresh_token"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(f.ClientID(), f.ClientSecret())
	if status, _ := do(t, f, req); status != 400 {
		t.Fatalf("JSON body: HTTP %d, want 400", status)
	}
}

func TestRefreshTokenLivesSevenDaysFromTheExchange(t *testing.T) {
	clock := schwabtest.NewClock(time.Date(2025, 1, 6, 15, 0, 0, 0, time.UTC))
	f := schwabtest.New(t, schwabtest.Options{Now: clock.Now})
	status, ans := post(t, f, url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, f)}, "redirect_uri": {f.RedirectURI()}}, f.ClientID(), f.ClientSecret())
	if status != 200 {
		t.Fatal(ans)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ans["refresh_token"].(string)}}
	for _, step := range []time.Duration{24 * time.Hour, 5 * 24 * time.Hour, 23 * time.Hour} {
		clock.Advance(step)
		if status, ans := post(t, f, refresh, f.ClientID(), f.ClientSecret()); status != 200 || ans["refresh_token"] != refresh.Get("refresh_token") {
			t.Fatalf("refresh after %s: %d %v", step, status, ans)
		}
	}
	clock.Advance(time.Hour) // seven days since the exchange
	if status, ans := post(t, f, refresh, f.ClientID(), f.ClientSecret()); status != 400 || ans["error"] != "unsupported_token_type" {
		t.Fatalf("refresh on day seven: %d %v", status, ans)
	}
}

func TestTraderAPI(t *testing.T) {
	f := schwabtest.New(t, schwabtest.Options{})
	tok := accessToken(t, f)
	cashHash := schwabtest.AccountHash(schwabtest.CashAccountNumber)

	status, h, body := get(t, f, "", "/accounts")
	if status != 401 || !strings.Contains(body, `"status":401`) || h.Get("Schwab-Client-CorrelId") == "" {
		t.Fatalf("unauthenticated: %d %s %v", status, body, h)
	}
	status, _, body = get(t, f, tok, "/accounts/accountNumbers")
	if status != 200 || !regexp.MustCompile(`"hashValue":"[0-9A-F]{64}"`).MatchString(body) || !strings.Contains(body, cashHash) {
		t.Fatalf("account numbers: %d %s", status, body)
	}
	if _, _, body = get(t, f, tok, "/accounts"); strings.Contains(body, `"positions"`) || !strings.Contains(body, `"aggregatedBalance"`) {
		t.Errorf("accounts without fields: %s", body)
	}
	if _, _, body = get(t, f, tok, "/accounts?fields=positions"); !strings.Contains(body, `"COLLECTIVE_INVESTMENT"`) {
		t.Errorf("accounts with positions: %s", body)
	}
	if _, _, body = get(t, f, tok, "/accounts/"+cashHash+"?fields=positions"); !strings.Contains(body, `"SCHD"`) || strings.Contains(body, "aggregatedBalance") {
		t.Errorf("account with positions: %s", body)
	}
	// The plain number is not a path segment Schwab knows.
	if status, _, body = get(t, f, tok, "/accounts/"+schwabtest.CashAccountNumber); status != 404 || !strings.Contains(body, `"status":"404"`) {
		t.Errorf("account by number: %d %s", status, body)
	}
	status, h, body = get(t, f, tok, "/orders")
	if status != 404 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("unknown route: %d %s %s", status, h.Get("Content-Type"), body)
	}

	search := func(start, end, types string) (int, string) {
		q := url.Values{}
		for k, v := range map[string]string{"startDate": start, "endDate": end, "types": types} {
			if v != "" {
				q.Set(k, v)
			}
		}
		status, _, body := get(t, f, tok, "/accounts/"+cashHash+"/transactions?"+q.Encode())
		return status, body
	}
	all := strings.Join(schwabtest.TransactionTypes, ",")
	for name, tt := range map[string][3]string{
		"no start":         {"", "2025-01-01T00:00:00.000Z", all},
		"no end":           {"2024-01-01T00:00:00.000Z", "", all},
		"no types":         {"2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z", ""},
		"unknown type":     {"2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z", "TRADE,BOGUS"},
		"no milliseconds":  {"2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", all},
		"over 365 days":    {"2024-01-01T00:00:00.000Z", "2024-12-31T00:00:00.001Z", all},
		"end before start": {"2024-02-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z", all},
	} {
		if status, body := search(tt[0], tt[1], tt[2]); status != 400 || !strings.Contains(body, `"message"`) {
			t.Errorf("%s: %d %s", name, status, body)
		}
	}
	if status, body := search("2024-01-01T00:00:00.000Z", "2024-12-31T00:00:00.000Z", all); status != 200 {
		t.Errorf("365 days: %d %s", status, body)
	}

	// The cap: 3100 records, the newest 3000 answered.
	from := time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC)
	ids := f.GenerateTransactions(schwabtest.CashAccountNumber, 3100, from, from.Add(24*time.Hour))
	status, body = search("2023-03-01T00:00:00.000Z", "2023-03-02T00:00:00.000Z", all)
	var recs []struct {
		ActivityID int64 `json:"activityId"`
	}
	if err := json.Unmarshal([]byte(body), &recs); err != nil || status != 200 || len(recs) != 3000 || recs[0].ActivityID != ids[len(ids)-1] {
		t.Fatalf("capped search: %d, %d records, %v", status, len(recs), err)
	}
	if status, body = search("2023-03-01T00:00:00.000Z", "2023-03-02T00:00:00.000Z", "TRADE"); status != 200 || body != "[]" {
		t.Errorf("type filter: %d %.80s", status, body)
	}
	if status, _, body = get(t, f, tok, "/accounts/"+cashHash+"/transactions/"+formatID(ids[0])); status != 200 || !strings.Contains(body, `"activityId":`+formatID(ids[0])+`,`) {
		t.Errorf("one transaction: %d %.80s", status, body)
	}
	if status, _, _ = get(t, f, tok, "/accounts/"+cashHash+"/transactions/1"); status != 404 {
		t.Errorf("unknown transaction: %d", status)
	}

	// Counting, and the failure switches in order.
	if n := f.Calls(schwabtest.EndpointTransactions); n != 10 {
		t.Errorf("%d searches counted, want 10", n)
	}
	f.ResetCalls()
	f.FailNextAt(schwabtest.EndpointAccount, schwabtest.AccessDenied(403))
	f.FailNext(503, 0)
	f.GarbageNext()
	if status, _, body = get(t, f, tok, "/accounts"); status != 503 || !strings.Contains(body, `"fault"`) {
		t.Errorf("first: %d %s", status, body)
	}
	if status, _, body = get(t, f, tok, "/accounts"); status != 200 || json.Valid([]byte(body)) {
		t.Errorf("second: %d %s", status, body)
	}
	if status, _, body = get(t, f, tok, "/accounts/"+cashHash); status != 403 || !strings.Contains(body, "Access Denied") {
		t.Errorf("third: %d %s", status, body)
	}
	if status, _, _ = get(t, f, tok, "/accounts"); status != 200 {
		t.Errorf("fourth: %d", status)
	}
	f.ExpireAccess()
	if status, _, _ = get(t, f, tok, "/accounts"); status != 401 {
		t.Errorf("expired token: %d", status)
	}
	if f.DataCalls() != 5 || f.Calls(schwabtest.EndpointAccounts) != 4 || f.Calls(schwabtest.EndpointToken) != 0 {
		t.Errorf("calls: data %d, accounts %d, token %d", f.DataCalls(), f.Calls(schwabtest.EndpointAccounts), f.Calls(schwabtest.EndpointToken))
	}
	statuses := []int{}
	for _, r := range f.Requests() {
		statuses = append(statuses, r.Status)
	}
	if want := "[503 200 403 200 401]"; fmtInts(statuses) != want {
		t.Errorf("statuses %v, want %s", statuses, want)
	}
}

func formatID(id int64) string { return strconv.FormatInt(id, 10) }

func fmtInts(v []int) string { return fmt.Sprint(v) }
