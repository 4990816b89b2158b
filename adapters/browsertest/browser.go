// Package browsertest starts a headless Chromium for tests that must prove a
// page in a real browser (the sandbox's authorize page, the connect flow end
// to end). It is imported only by tests.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumNames are the executables tried, in order: Debian's package
// (chromium), Ubuntu's, Google's, and chromedp's headless-shell image.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}

// find returns the browser to drive. Without one the test fails, because
// what it proves needs a real browser; outside CI DASHTAM_SKIP_BROWSER=1
// skips it on purpose.
func find(t testing.TB, what string) string {
	t.Helper()
	if os.Getenv("DASHTAM_SKIP_BROWSER") == "1" && os.Getenv("CI") == "" {
		t.Skipf("DASHTAM_SKIP_BROWSER=1: %s is not tried in a browser", what)
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

// Start starts a headless Chromium for the test and returns a chromedp
// context bound to it; what names what the test proves, for the skip
// message. As root, Chromium refuses to start without --no-sandbox.
func Start(t testing.TB, what string) context.Context {
	t.Helper()
	path := find(t, what)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	// A bound on the whole browser session, not a synchronisation: every
	// step of a test waits for a condition in the page.
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}
