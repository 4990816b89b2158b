package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/dashtam/dashtam/adapters/providers/sandbox"
	"github.com/dashtam/dashtam/commands"
)

// testKey signs the tests' tokens; restart tests build a second
// institution with it.
var testKey = []byte("0123456789abcdef0123456789abcdef-sandbox-test-key")

const (
	testClientID     = "dashtam-test"
	testClientSecret = "test-client-secret-7f3a9c"
	// testRedirect is the callback the non-browser tests register: they
	// read the redirect's Location and never follow it.
	testRedirect = "https://dashtam.example/oauth/sandbox/callback"
)

// A fixed PKCE pair (RFC 7636 appendix B).
const (
	testVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	testChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// clock is the injected clock of an institution and its adapter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one institution served over real HTTP, the adapter talking to it
// and the fake's switches around it.
type env struct {
	clock    *clock
	inst     *sandbox.Institution
	srv      *httptest.Server
	provider *sandbox.Provider
	fake     *fake
}

// envOptions vary an env.
type envOptions struct {
	start     time.Time // the clock's start; time.Now() when zero
	key       []byte    // testKey when nil
	redirects []string  // testRedirect when nil
	redirect  string    // the adapter's callback; redirects[0] when empty
	pageSize  int
}

func newEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	if o.start.IsZero() {
		o.start = time.Now()
	}
	if o.key == nil {
		o.key = testKey
	}
	if o.redirects == nil {
		o.redirects = []string{testRedirect}
	}
	if o.redirect == "" {
		o.redirect = o.redirects[0]
	}
	e := &env{clock: newClock(o.start)}
	inst, err := sandbox.NewInstitution(sandbox.Config{Key: o.key, ClientID: testClientID, ClientSecret: testClientSecret,
		RedirectURIs: o.redirects, Now: e.clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	e.inst = inst
	e.fake = &fake{env: e, secrets: []string{testClientSecret, string(o.key)}}
	e.srv = httptest.NewServer(e.fake.wrap(inst.Handler()))
	tb.Cleanup(e.srv.Close)
	e.provider = e.newProvider(tb, e.srv.URL, o.redirect, o.pageSize)
	return e
}

// newProvider returns an adapter of the institution at serverURL.
func (e *env) newProvider(tb testing.TB, serverURL, redirect string, pageSize int) *sandbox.Provider {
	tb.Helper()
	p, err := sandbox.NewProvider(sandbox.ProviderConfig{BaseURL: serverURL + sandbox.Prefix, ClientID: testClientID,
		ClientSecret: testClientSecret, RedirectURI: redirect, HTTPClient: e.srv.Client(), Now: e.clock.Now, PageSize: pageSize})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// connect authorises as user with persona (the page's defaults when
// empty) and exchanges the code.
func (e *env) connect(tb testing.TB, user string, persona sandbox.Persona) commands.Credentials {
	tb.Helper()
	form := url.Values{}
	if user != "" {
		form.Set("user", user)
	}
	if persona != "" {
		form.Set("persona", string(persona))
	}
	q := e.fake.decide(tb, e.provider.AuthorizationURL("st", testChallenge), "approve", form)
	creds, err := e.provider.Exchange(context.Background(), q.Get("code"), testVerifier)
	if err != nil {
		tb.Fatalf("exchange: %v", err)
	}
	return creds
}

// fake implements providertest.Fake around a real Institution: it plays
// the browser on the authorize page, moves the clock, revokes through the
// revoke endpoint, and injects failures into data calls in front of the
// institution. It records every secret that crosses the wire.
type fake struct {
	env *env

	mu         sync.Mutex
	failStatus int
	failRetry  time.Duration
	garbage    bool
	secrets    []string
	refresh    []string
}

// wrap puts the fake's switches and recorder in front of h.
func (f *fake) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, sandbox.Prefix+sandbox.APIPath+"/") {
			f.mu.Lock()
			status, retry, garbage := f.failStatus, f.failRetry, f.garbage
			f.failStatus, f.failRetry, f.garbage = 0, 0, false
			f.mu.Unlock()
			switch {
			case status != 0:
				if retry > 0 {
					w.Header().Set("Retry-After", strings.TrimSuffix(retry.String(), "s"))
				}
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, "<html><body>gateway says no</body></html>")
				return
			case garbage:
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"accounts":[{"id":"acc_1","balances":{"current":`)
				return
			}
		}
		if r.URL.Path == sandbox.Prefix+sandbox.TokenPath {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var tok struct {
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &tok) == nil && tok.AccessToken != "" {
				f.mu.Lock()
				f.secrets = append(f.secrets, tok.AccessToken, tok.RefreshToken)
				f.refresh = append(f.refresh, tok.RefreshToken)
				f.mu.Unlock()
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Approve plays the user who approves with the page's defaults.
func (f *fake) Approve(t *testing.T, authURL string) url.Values {
	t.Helper()
	return f.decide(t, authURL, "approve", nil)
}

// decide opens authURL as a browser would, fills the form (overrides
// replace the page's values), presses the decision's button and returns
// the query of the redirect to the callback.
func (f *fake) decide(tb testing.TB, authURL, decision string, overrides url.Values) url.Values {
	tb.Helper()
	resp := submitAuthorize(tb, f.env.srv.Client(), authURL, decision, overrides)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(resp.Body)
		tb.Fatalf("authorize decision: status %d, want 303: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		tb.Fatal(err)
	}
	q := loc.Query()
	if c := q.Get("code"); c != "" {
		f.mu.Lock()
		f.secrets = append(f.secrets, c)
		f.mu.Unlock()
	}
	return q
}

// ExpireAccess moves the clock past every access token's life (and not
// past any refresh token's).
func (f *fake) ExpireAccess() { f.env.clock.Advance(10 * time.Minute) }

// RevokeRefresh revokes every refresh token issued so far through the
// institution's revoke endpoint.
func (f *fake) RevokeRefresh() {
	f.mu.Lock()
	tokens := append([]string(nil), f.refresh...)
	f.mu.Unlock()
	for _, tok := range tokens {
		if err := f.env.provider.Revoke(context.Background(), commands.Credentials{RefreshToken: tok}); err != nil {
			panic("revoke: " + err.Error())
		}
	}
}

// FailNext makes the next data call answer status (an HTML error page).
func (f *fake) FailNext(status int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failStatus, f.failRetry = status, retryAfter
}

// GarbageNext makes the next data call answer truncated JSON.
func (f *fake) GarbageNext() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.garbage = true
}

// Secrets lists every secret seen.
func (f *fake) Secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.secrets...)
}

// noRedirects makes a client stop at the first redirect, as the tests
// must read where the institution sends the browser.
func noRedirects(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// submitAuthorize GETs the authorize page, reads its form as a browser
// would (hidden fields, the text field, the checked radio button), applies
// overrides, and submits it with the decision's button.
func submitAuthorize(tb testing.TB, c *http.Client, authURL, decision string, overrides url.Values) *http.Response {
	tb.Helper()
	c = noRedirects(c)
	resp, err := c.Get(authURL)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("authorize page: status %d: %s", resp.StatusCode, body)
	}
	action, fields := readForm(tb, body)
	for k, v := range overrides {
		fields[k] = v
	}
	fields.Set("decision", decision)
	target, err := url.Parse(authURL)
	if err != nil {
		tb.Fatal(err)
	}
	target, err = target.Parse(action)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err = c.PostForm(target.String(), fields)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// readForm returns the first form's action and the values a browser would
// submit from it, buttons aside.
func readForm(tb testing.TB, page []byte) (string, url.Values) {
	tb.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		tb.Fatal(err)
	}
	action, found := "", false
	vals := url.Values{}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			_, checked := "", false
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
				if a.Key == "checked" {
					checked = true
				}
			}
			switch n.Data {
			case "form":
				if !found {
					action, found = attr["action"], true
				}
			case "input":
				switch attr["type"] {
				case "hidden", "text", "":
					vals.Add(attr["name"], attr["value"])
				case "radio", "checkbox":
					if checked {
						vals.Add(attr["name"], attr["value"])
					}
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(doc)
	if !found {
		tb.Fatalf("no form on the authorize page:\n%s", page)
	}
	return action, vals
}
