package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is a headless Chromium of one test, and what its pages did: the requests they made
// and the problems their consoles reported.
type Browser struct {
	// Ctx drives the browser's tab with chromedp.
	Ctx context.Context

	mu       sync.Mutex
	requests []string
	problems []string
}

// Requests returns the URLs the pages requested so far.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// Problems returns the errors and warnings the pages' consoles reported so far: console.error
// and console.warn calls, uncaught exceptions, and the browser's own log entries of those
// levels (a resource that failed to load, a refused Content-Security-Policy).
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// listen records what the tab reports. It runs in the tab's event loop: it returns at once.
func (b *Browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning ||
			ev.Type == runtime.ConsoleAPICalledTypeAssert {
			text := ""
			for _, a := range ev.Args {
				text += fmt.Sprintf(" %s", a.Value)
			}
			b.problems = append(b.problems, "console."+string(ev.Type)+":"+text)
		}
	case *runtime.EventExceptionThrown:
		b.problems = append(b.problems, "exception: "+ev.ExceptionDetails.Text)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			b.problems = append(b.problems, fmt.Sprintf("%s %s: %s (%s)", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

// Chromium starts a headless Chromium of the test's own (Debian's chromium package, which make
// test installs), with a fresh profile and the browser's own background connections turned
// off, driven within timeout. It stops when the test ends. Without a Chromium that runs, the
// test fails.
func Chromium(t testing.TB, timeout time.Duration) *Browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("testenv: chromium is not installed (make test installs it: apt-get install chromium): %v", err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// This machine's network reaches nothing: the browser's own connections (updates,
		// sync, safe browsing, field trials) would only fail, and the requests a test sees must
		// be its pages' alone.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.WindowSize(1280, 900),
	)
	b := &Browser{}
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	// The browser lives as long as the context of its first action: start it now, without a
	// deadline, so that a Chromium that cannot run fails here, saying so.
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("testenv: start chromium (%s): %v", path, err)
	}
	ctx, cancelTimeout := context.WithTimeout(tab, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	b.Ctx = ctx
	return b
}
