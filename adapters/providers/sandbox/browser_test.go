package sandbox_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dashtam/dashtam/adapters/browsertest"
	"github.com/dashtam/dashtam/adapters/providers/sandbox"
)

// TestAuthorizePageInABrowser walks the authorize page in headless
// Chromium as a person would: it opens the authorization URL, picks a
// persona, presses Approve and lands on the application's callback page,
// whose code the adapter then exchanges; then it presses Deny.
func TestAuthorizePageInABrowser(t *testing.T) {
	callback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!DOCTYPE html><html><head><title>Connected</title></head>`+
			`<body><h1 id="landed">Back at the application</h1></body></html>`)
	}))
	t.Cleanup(callback.Close)
	cbURL := callback.URL + "/oauth/sandbox/callback"
	e := newEnv(t, envOptions{redirects: []string{cbURL}})
	ctx := browsertest.Start(t, "the authorize page")

	err := chromedp.Do(ctx,
		chromedp.Navigate(e.provider.AuthorizationURL("browser-state", testChallenge)),
		chromedp.WaitVisible(chromedp.ID("approve")),
		chromedp.SetValue(chromedp.ID("user"), "browser user"),
		chromedp.Click(chromedp.CSS(`input[name="persona"][value="expiring"]`)),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("landed")),
	)
	if err != nil {
		// A timeout here most often means the browser refused to follow the
		// redirect: the page's CSP form-action must name the callback's origin.
		t.Fatalf("approve in the browser (did the page's form-action block the callback?): %v", err)
	}
	landed, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(landed)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != cbURL || q.Get("state") != "browser-state" || q.Get("code") == "" {
		t.Fatalf("landed on %s", u.Redacted())
	}
	creds, err := e.provider.Exchange(context.Background(), q.Get("code"), testVerifier)
	if err != nil {
		t.Fatalf("exchange the browser's code: %v", err)
	}
	if got := creds.AccessExpiresAt.Sub(e.clock.Now()); got > time.Minute {
		t.Fatalf("access lasts %s: the persona chosen in the browser (expiring) was lost", got)
	}
	accounts, err := e.provider.Accounts(context.Background(), creds)
	if err != nil {
		t.Fatal(err)
	}
	if named := e.connect(t, "browser user", sandbox.PersonaDefault); len(accounts) == 0 {
		t.Fatal("no accounts")
	} else if other, err := e.provider.Accounts(context.Background(), named); err != nil || other[0].ID != accounts[0].ID {
		t.Fatalf("the user typed in the browser was lost: %v", err)
	}

	err = chromedp.Do(ctx,
		chromedp.Navigate(e.provider.AuthorizationURL("deny-state", testChallenge)),
		chromedp.WaitVisible(chromedp.ID("deny")),
		chromedp.Click(chromedp.ID("deny")),
		chromedp.WaitVisible(chromedp.ID("landed")),
	)
	if err != nil {
		t.Fatalf("deny in the browser: %v", err)
	}
	if landed, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse(landed)
	if u.Query().Get("error") != "access_denied" || u.Query().Get("state") != "deny-state" || u.Query().Has("code") {
		t.Fatalf("deny landed on %s", u.Redacted())
	}
}
