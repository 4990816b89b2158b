package schwabtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Approve plays the user approving access at authURL (as the adapter
// built it) and returns the callback's query as the callback reads it:
// parsed, so decoded once ("…%40" is "…@" again).
func (f *Fake) Approve(t *testing.T, authURL string) url.Values {
	t.Helper()
	return callbackQuery(t, f.ApproveURL(t, authURL))
}

// ApproveURL plays the user approving access at authURL and returns the
// URL Schwab sends the browser to: the redirect URI with code, session
// and state, still URL-encoded as on the wire.
func (f *Fake) ApproveURL(tb testing.TB, authURL string) string {
	tb.Helper()
	return f.decide(tb, authURL, "approve")
}

// DenyURL plays the user refusing access at authURL and returns the URL
// Schwab sends the browser to (error=access_denied).
func (f *Fake) DenyURL(tb testing.TB, authURL string) string {
	tb.Helper()
	return f.decide(tb, authURL, "deny")
}

func callbackQuery(tb testing.TB, callback string) url.Values {
	tb.Helper()
	u, err := url.Parse(callback)
	if err != nil {
		tb.Fatalf("parse callback: %v", err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		tb.Fatalf("parse callback query: %v", err)
	}
	return q
}

// decide loads the authorize page as a browser would, then submits the
// decision and returns the redirect's Location.
func (f *Fake) decide(tb testing.TB, authURL, decision string) string {
	tb.Helper()
	c := f.HTTPClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authURL)
	if err != nil {
		tb.Fatalf("open authorize page: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("authorize page: HTTP %d: %s", resp.StatusCode, page)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		tb.Fatalf("parse authorize url: %v", err)
	}
	form := u.Query()
	form.Set("decision", decision)
	resp, err = c.PostForm(f.AuthURL(), form)
	if err != nil {
		tb.Fatalf("submit decision: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("decision: HTTP %d: %s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

var authorizePage = template.Must(template.New("authorize").Parse(`<!doctype html>
<html><head><title>Charles Schwab — Authorize</title></head><body>
<h1>Allow this app to access your accounts?</h1>
<form method="post" action="/v1/oauth/authorize">
{{range $k, $vs := .}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">{{end}}{{end}}
<button name="decision" value="approve">Allow</button>
<button name="decision" value="deny">Cancel</button>
</form></body></html>
`))

// checkAuthorize validates an authorize request's parameters the way
// Schwab does: known app key, registered callback exactly, code flow.
func (f *Fake) checkAuthorize(q url.Values) string {
	switch {
	case q.Get("client_id") != f.opts.ClientID:
		return "unknown client_id"
	case q.Get("redirect_uri") != f.opts.RedirectURI:
		return "redirect_uri does not match the registered callback"
	case q.Get("response_type") != "code":
		return "response_type must be code"
	}
	return ""
}

// serveAuthorize shows the consent page.
func (f *Fake) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := f.checkAuthorize(q); msg != "" {
		http.Error(w, "Bad Request: "+msg, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = authorizePage.Execute(w, q)
}

// serveDecision redirects the browser to the callback with a code (or an
// error), encoded the way Schwab does: the code's "@" as %40.
func (f *Fake) serveDecision(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	q := r.PostForm
	if msg := f.checkAuthorize(q); msg != "" {
		http.Error(w, "Bad Request: "+msg, http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	loc := f.opts.RedirectURI + "?"
	if strings.Contains(f.opts.RedirectURI, "?") {
		loc = f.opts.RedirectURI + "&"
	}
	if q.Get("decision") != "approve" {
		loc += "error=access_denied&error_description=" + url.QueryEscape("The user denied access") + "&state=" + url.QueryEscape(state)
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	code := f.newCode()
	f.mu.Lock()
	f.codes[code] = &codeGrant{redirectURI: q.Get("redirect_uri"), issuedAt: f.now()}
	f.secrets = append(f.secrets, code)
	f.mu.Unlock()
	loc += "code=" + url.QueryEscape(code) + "&session=" + uuid.NewString() + "&state=" + url.QueryEscape(state)
	http.Redirect(w, r, loc, http.StatusFound)
}

// newCode makes a code shaped like Schwab's, C0.<base64>.<token>@, whose
// token holds a "+": a client that decodes the code a second time turns
// it into a space and the exchange fails, as it would at Schwab.
func (f *Fake) newCode() string {
	for {
		tok := randomToken(base64.RawStdEncoding, 48)
		if strings.Contains(tok, "+") {
			return "C0." + base64.StdEncoding.EncodeToString([]byte("oauth2.cdc.schwab.com")) + "." + tok + "@"
		}
	}
}

// tokenAnswer is the token endpoint's success body.
type tokenAnswer struct {
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
}

// serveToken is the token endpoint: form body, Basic client
// authentication, the authorization_code and refresh_token grants.
// Its error descriptions quote the refused code or token, as Schwab's
// refresh errors do, so that a client copying them into errors is caught.
func (f *Fake) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if len(f.failNextToken) > 0 {
		fl := f.failNextToken[0]
		f.failNextToken = f.failNextToken[1:]
		f.mu.Unlock()
		writeFailure(w, fl)
		return
	}
	f.mu.Unlock()
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		tokenError(w, http.StatusBadRequest, "invalid_request", "body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "unreadable body")
		return
	}
	form := r.PostForm
	if form.Has("client_secret") {
		tokenError(w, http.StatusBadRequest, "invalid_request", "client credentials belong in the Authorization header")
		return
	}
	user, pass, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
		user, _ = url.QueryUnescape(user)
		pass, _ = url.QueryUnescape(pass)
	}
	if !ok || user != f.opts.ClientID || pass != f.opts.ClientSecret {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		f.exchangeCode(w, form)
	case "refresh_token":
		f.refreshToken(w, form)
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

func (f *Fake) exchangeCode(w http.ResponseWriter, form url.Values) {
	code := form.Get("code")
	f.mu.Lock()
	g, ok := f.codes[code]
	now := f.now()
	switch {
	case !ok, g.used, now.Sub(g.issuedAt) > CodeLifetime:
		f.mu.Unlock()
		tokenError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("Bad authorization code [%s]: invalid or expired", code))
		return
	case form.Get("redirect_uri") != g.redirectURI:
		f.mu.Unlock()
		tokenError(w, http.StatusBadRequest, "invalid_request", "redirect_uri does not match the authorization request")
		return
	}
	g.used = true
	ans := f.issue(now, "", now.Add(RefreshTokenLifetime))
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, ans)
}

func (f *Fake) refreshToken(w http.ResponseWriter, form url.Values) {
	rt := form.Get("refresh_token")
	f.mu.Lock()
	g, ok := f.refresh[rt]
	now := f.now()
	if !ok || g.revoked || !now.Before(g.expiresAt) {
		f.mu.Unlock()
		// Schwab's own words, refresh token included.
		inner := fmt.Sprintf(`{"error_description":"Exception while authenticating refresh token [%s], exception: RefreshToken expired or invalid","error":"refresh_token_authentication_error"}`, rt)
		tokenError(w, http.StatusBadRequest, "unsupported_token_type", `400 Bad Request: "`+inner+`"`)
		return
	}
	keep := rt
	if f.opts.RotateRefresh {
		g.revoked = true
		keep = ""
	}
	ans := f.issue(now, keep, g.expiresAt)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, ans)
}

// issue makes a new access token, and a refresh token unless keep names
// the one to answer again; f.mu is held.
func (f *Fake) issue(now time.Time, keep string, refreshExpiresAt time.Time) tokenAnswer {
	access := "I0." + base64.StdEncoding.EncodeToString([]byte("oauth2.bdc.schwab.com")) + "." + randomToken(base64.RawURLEncoding, 48) + "@"
	idToken := "eyJ" + randomToken(base64.RawURLEncoding, 96)
	f.access[access] = &accessGrant{expiresAt: now.Add(AccessTokenLifetime)}
	f.secrets = append(f.secrets, access, idToken)
	rt := keep
	if rt == "" {
		rt = randomToken(base64.RawURLEncoding, 64) + "@"
		f.refresh[rt] = &refreshGrant{expiresAt: refreshExpiresAt}
		f.secrets = append(f.secrets, rt)
	}
	return tokenAnswer{
		ExpiresIn:    int(AccessTokenLifetime / time.Second),
		TokenType:    "Bearer",
		Scope:        "api",
		RefreshToken: rt,
		AccessToken:  access,
		IDToken:      idToken,
	}
}

func tokenError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeFailure(w http.ResponseWriter, fl Failure) {
	for k, vs := range fl.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if fl.ContentType != "" {
		w.Header().Set("Content-Type", fl.ContentType)
	}
	w.WriteHeader(fl.Status)
	_, _ = io.WriteString(w, fl.Body)
}
