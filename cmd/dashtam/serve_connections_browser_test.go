package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromiumNames are the executables tried, in order: Debian's package
// (chromium), Ubuntu's, Google's, and chromedp's headless-shell image (as
// adapters/providers/sandbox/browser_test.go tries them).
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}

// findChromium returns the browser to drive. Without one the test fails,
// because the connect flow must be proven in a real browser; outside CI
// DASHTAM_SKIP_BROWSER=1 skips it on purpose.
func findChromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("DASHTAM_SKIP_BROWSER") == "1" && os.Getenv("CI") == "" {
		t.Skip("DASHTAM_SKIP_BROWSER=1: the connect flow is not tried in a browser")
	}
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium on PATH (tried %v): install the Debian package chromium (.ci/run does), "+
		"or outside CI set DASHTAM_SKIP_BROWSER=1 to skip this test", chromiumNames)
	return ""
}

// browser starts a headless Chromium for the test. As root, Chromium
// refuses to start without --no-sandbox.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	// A bound on the whole browser session, not a synchronisation: every
	// step below waits for a condition in the page.
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// TestConnectInABrowserEndToEnd walks the sandbox's authorize page in
// headless Chromium against the real server, as a person would: it opens
// the authorization URL the API answered, presses Approve, and lands on
// Dashtam's own callback page, which says the connection is made; the API
// then shows it active. A second connection is declined with Deny. Under
// the pages' strict Content-Security-Policies (the authorize page's
// form-action names the callback's origin) the browser must follow the
// redirect, and neither page needs a script.
func TestConnectInABrowserEndToEnd(t *testing.T) {
	ctx := browser(t)
	srv := startConnectionsServer(t)
	token := srv.mustUser(t, "hana@example.com")
	created := srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Browser bank"}, token).
		Want(t, 201, "connect")

	err := chromedp.Do(ctx,
		chromedp.Navigate(created.Str("authorization_url")),
		chromedp.WaitVisible(chromedp.ID("approve")),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("connected")),
	)
	require.NoError(t, err, "approve in the browser (did a page's CSP block the redirect, or the callback fail?)")
	outcome, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("connected")))
	require.NoError(t, err)
	location, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(location, srv.publicURL+"/oauth/sandbox/callback?"), location)
	assert.Contains(t, outcome, "Your Sandbox Bank connection 'Browser bank' is connected. You can close this window.")
	got := srv.api("GET", "/api/v1/connections/"+created.Str("id"), nil, token).Want(t, 200, "get")
	assert.Equal(t, "active", got.Str("status"))

	declined := srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Declined"}, token).
		Want(t, 201, "connect")
	err = chromedp.Do(ctx,
		chromedp.Navigate(declined.Str("authorization_url")),
		chromedp.WaitVisible(chromedp.ID("deny")),
		chromedp.Click(chromedp.ID("deny")),
		chromedp.WaitVisible(chromedp.ID("not-connected")),
	)
	require.NoError(t, err, "deny in the browser")
	outcome, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("not-connected")))
	require.NoError(t, err)
	assert.Contains(t, outcome, "You declined access at Sandbox Bank")
	assert.Equal(t, "failed", srv.api("GET", "/api/v1/connections/"+declined.Str("id"), nil, token).Want(t, 200, "get").Str("status"))
}
