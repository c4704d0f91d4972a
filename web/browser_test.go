package web_test

// These tests drive the upload page in a real headless Chromium against a
// real server on 127.0.0.1. They need Chromium (Debian's package
// "chromium"): without it they skip, except under CI=true, where they fail.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	threshold = 1 << 20   // the server's: at most this many bytes stay in memory
	smallSize = 100 << 10 // below the threshold: memory
	largeSize = 3 << 20   // above it: disk
	directMax = 4 << 20   // the page sends larger files in parts
	// browserTimeout bounds everything one test does in the browser.
	browserTimeout = 60 * time.Second
)

// newBrowser starts a headless Chromium for t and returns its tab's context,
// with a deadline of browserTimeout. When t ends, the browser and every
// process it started are gone.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := findChromium(t)
	// Everything the browser writes stays in root, TMPDIR aside (below):
	// the profile and, through HOME and XDG_*, the crash-report database
	// and caches it would keep in the user's home. Cleanups run last-in
	// first-out, so root is removed after the browser is gone.
	root := t.TempDir()
	// Chromium also makes org.chromium.Chromium.* directories in TMPDIR
	// and leaves them there, with its singleton's Unix socket inside: a
	// directory named after a long test would take the socket's path past
	// the 108 bytes a socket address holds, and Chromium would not start.
	// So TMPDIR is short, and removed after the browser is gone (cleanups
	// run last-in first-out).
	tmp, err := os.MkdirTemp("", "chromium")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(filepath.Join(root, "profile")),
		chromedp.Env(
			"HOME="+filepath.Join(root, "home"),
			"XDG_CONFIG_HOME="+filepath.Join(root, "config"),
			"XDG_CACHE_HOME="+filepath.Join(root, "cache"),
			"TMPDIR="+tmp,
			// File names are UTF-8 (TestPageSendsNFCNames chooses "café"):
			// under the C locale, which a bare CI shell has, Chromium
			// cannot open such a file from its chooser and the page never
			// sees it.
			"LC_ALL=C.UTF-8",
		),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("lang", "en-US"),
		// No outbound connections: the machine may have no network, and a
		// test must neither depend on it nor phone home.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-field-trial-config", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-features", strings.Join([]string{
			"Translate", "OptimizationHints", "MediaRouter", "DialMediaRouteProvider",
			"CertificateTransparencyComponentUpdater", "AutofillServerCommunication",
			"InterestFeedContentSuggestions", "HttpsUpgrades", "NetworkTimeServiceQuerying",
			"PrivacySandboxSettings4", "LensOverlay",
		}, ",")),
		// Every host name fails to resolve; only the test server, by
		// address, is reachable.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)

	// The page must not throw, log errors or break its CSP. Failed requests
	// (the token test's 401s) are the browser's network log, and expected.
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()

	t.Cleanup(func() {
		cancelCtx()   // kills the browser and waits for it
		cancelAlloc() // waits for the allocator's goroutines
		<-done
		killStrays(t, root)
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("page console: %s", p)
		}
	})

	// The first action binds the browser's life to its context, so start
	// the browser on one without a deadline; the actions get one below.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	if runtime.GOOS == "linux" && len(processesWith([]byte(root+string(filepath.Separator)))) == 0 {
		t.Fatal("the browser's processes are not in /proc, so the check for strays after the test would miss them")
	}
	tctx, cancel := context.WithTimeout(ctx, browserTimeout)
	t.Cleanup(cancel)
	return tctx
}

// findChromium finds the browser, or skips t (fails it under CI=true).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium on PATH (tried chromium, chromium-browser, google-chrome, google-chrome-stable); " +
		"install it, e.g. `apt-get install -y chromium` on Debian"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI must install it")
	}
	t.Skip(msg)
	return ""
}

// killStrays makes sure no process of the browser outlives the test. Each
// names root in its command line: the helpers (zygote, renderers, network
// service) carry --user-data-dir, and the crash handlers, which detach from
// the browser, carry their database under XDG_CONFIG_HOME. It looks only on
// Linux, where /proc is.
func killStrays(t *testing.T, root string) {
	t.Helper()
	arg := []byte(root + string(filepath.Separator))
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := processesWith(arg)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Chromium processes %v still run after the test", pids)
			return
		}
		t.Logf("killing Chromium processes %v left after the browser exited", pids)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesWith lists the live processes whose command line contains arg.
func processesWith(arg []byte) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, arg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// openWith opens the page at base in a new browser (newBrowser) and picks
// files in its file input, which starts their uploads.
func openWith(t *testing.T, base string, files ...string) context.Context {
	t.Helper()
	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), files),
	))
	return ctx
}

// settle waits until the upload row id has finished, checks that it is
// name's row and that it ended in state want. A row that ended otherwise
// fails t at once, with what the row says.
func settle(t *testing.T, ctx context.Context, id, name, want string) {
	t.Helper()
	wait(t, ctx, "#"+id+`:is([data-state="done"],[data-state="error"],[data-state="cancelled"])`)
	if got := attr(t, ctx, "#"+id, "data-file"); got != name {
		t.Fatalf("row %s is for %q, want %q", id, got, name)
	}
	if got := attr(t, ctx, "#"+id, "data-state"); got != want {
		t.Fatalf("%s ended %s, want %s; the row says: %q", name, got, want,
			eval[string](t, ctx, `document.getElementById('`+id+`').innerText`))
	}
}

// cancelRow clicks Cancel on the upload row id while it uploads, and
// checks that the row says so and that the keyboard focus is on its Retry
// button.
func cancelRow(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#`+id+`[data-state="uploading"] .cancel`)),
		chromedp.WaitVisible(chromedp.CSS(`#`+id+`[data-state="cancelled"] .retry`)),
	))
	assert.Equal(t, "Cancelled", text(t, ctx, "#"+id+" .state"))
	assert.True(t, eval[bool](t, ctx, `document.activeElement === document.querySelector('#`+id+` .retry')`),
		"after Cancel, the keyboard focus is not on the row's Retry button")
}

// download clicks the link css and returns the bytes the browser saved.
func download(t *testing.T, ctx context.Context, css string) []byte {
	t.Helper()
	wait(t, ctx, css)
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName, // saved as dir/GUID
		DownloadPath:  dir,
		EventsEnabled: new(true),
	}); err != nil {
		t.Fatal(err)
	}
	events := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(css))); err != nil {
		t.Fatal(err)
	}
	for ev, err := range events {
		if err != nil {
			t.Fatalf("downloading %s: %v", css, err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				t.Fatal(err)
			}
			return b
		case browser.DownloadProgressStateCanceled:
			t.Fatalf("the browser cancelled the download of %s", css)
		}
	}
	panic("unreachable: the events end with an error")
}

func wait(t *testing.T, ctx context.Context, css string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(css))); err != nil {
		t.Fatalf("waiting for %s: %v", css, err)
	}
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("reading %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

func attr(t *testing.T, ctx context.Context, css, name string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(css), name))
	if err != nil {
		t.Fatalf("reading %s of %s: %v", name, css, err)
	}
	return v.Value
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// screenshot saves a full-page PNG into t's temp dir, and to the path in
// SPILLWAY_SCREENSHOT when that is set.
func screenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(t.TempDir(), "page.png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	if out := os.Getenv("SPILLWAY_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatalf("SPILLWAY_SCREENSHOT: %v", err)
		}
		t.Logf("screenshot: %s", out)
	}
}

// receive waits for a value from ch, or fails t when ctx ends first.
func receive[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
		panic("unreachable")
	}
}
