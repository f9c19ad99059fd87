// Package browsertest starts the headless Chromium the dashboard's tests
// drive (through chromedp, over the DevTools protocol). scripts/deps.sh
// installs Debian's chromium; a test that finds none fails, saying so,
// rather than skipping: a browser test that skips silently in CI tests
// nothing.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Candidates are the browser programs looked for, in order, after
// $HANDOVER_CHROMIUM.
var Candidates = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// ExecPath returns the browser to run, or "" when there is none.
func ExecPath() string {
	if p := os.Getenv("HANDOVER_CHROMIUM"); p != "" {
		return p
	}
	for _, c := range Candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless browser for the test's lifetime and returns the
// context of its first tab. Further tabs (with sessionStorage of their
// own) come from chromedp.NewContext on it.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path := ExecPath()
	if path == "" {
		t.Fatalf("no Chromium found (looked for $HANDOVER_CHROMIUM and %v on PATH): run `make deps` (scripts/deps.sh installs Debian's chromium and chromium-driver)", Candidates)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// Root (CI, the dev machines) cannot use Chromium's sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return bctx
}
