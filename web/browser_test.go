package web_test

// These tests drive the upload page in a real headless Chromium against a
// real server on 127.0.0.1. They need Chromium (Debian's package
// "chromium"): without it they skip, except under CI=true, where they fail.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
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
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"spillway/api"
	"spillway/spool"
	"spillway/store/dirstore"
)

const (
	threshold = 1 << 20   // the server's: at most this many bytes stay in memory
	smallSize = 100 << 10 // below the threshold: memory
	largeSize = 3 << 20   // above it: disk
	// browserTimeout bounds everything one test does in the browser.
	browserTimeout = 60 * time.Second
)

// TestPageUploadsFiles chooses two files at once, one below the threshold
// and one above, and checks each row against the files the server stored,
// then the stored-files list and its download links.
func TestPageUploadsFiles(t *testing.T) {
	srv := startServer(t, "")
	dir := t.TempDir()
	small := writeFile(t, dir, "small.bin", smallSize, 1)
	large := writeFile(t, dir, "large.bin", largeSize, 2)

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{small, large}),
	); err != nil {
		t.Fatal(err)
	}

	// Rows are numbered in the order the files were chosen.
	for _, c := range []struct{ row, path, spool string }{
		{"upload-1", small, "memory"},
		{"upload-2", large, "disk"},
	} {
		name := filepath.Base(c.path)
		settle(t, ctx, c.row, name, "done")
		row := "#" + c.row

		sum := text(t, ctx, row+" .sha256")
		if want := fileSHA256(t, filepath.Join(srv.uploads, name)); sum != want {
			t.Errorf("%s: the page shows SHA-256 %q, the stored file has %s", name, sum, want)
		}
		if want := fileSHA256(t, c.path); sum != want {
			t.Errorf("%s: the page shows SHA-256 %q, the file sent has %s", name, sum, want)
		}
		if got := text(t, ctx, row+" .spool"); got != c.spool {
			t.Errorf("%s: spool shows %q, want %q", name, got, c.spool)
		}
		info, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := attr(t, ctx, row+" .size", "data-bytes"); got != strconv.FormatInt(info.Size(), 10) {
			t.Errorf("%s: size shows %s bytes, want %d", name, got, info.Size())
		}
		if !eval[bool](t, ctx, `(p => p.value === p.max)(document.querySelector('`+row+` progress'))`) {
			t.Errorf("%s: the progress bar is not full", name)
		}
		if got := text(t, ctx, row+" .state"); got != "Done" {
			t.Errorf("%s: the state reads %q, want Done", name, got)
		}
	}

	// The list refreshes after the uploads; its links download the bytes.
	for _, p := range []string{small, large} {
		name := filepath.Base(p)
		got := download(t, ctx, `#stored tr[data-name="`+name+`"] a.download`)
		if want, _ := os.ReadFile(p); !bytes.Equal(got, want) {
			t.Errorf("%s: the download link gave %d bytes, not the %d bytes sent", name, len(got), len(want))
		}
	}

	screenshot(t, ctx)
}

// TestPageAsksForToken runs the server with a token. An upload without it
// shows the 401 in the server's words and asks for the token; with the token
// typed in, uploads and the (fetched) download work.
func TestPageAsksForToken(t *testing.T) {
	srv := startServer(t, "t0k")
	dir := t.TempDir()
	small := writeFile(t, dir, "small.bin", smallSize, 3)
	large := writeFile(t, dir, "large.bin", largeSize, 4)

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{small}),
	); err != nil {
		t.Fatal(err)
	}
	settle(t, ctx, "upload-1", "small.bin", "error")
	if code := attr(t, ctx, "#upload-1", "data-error-code"); code != "unauthorized" {
		t.Errorf("error code %q, want unauthorized", code)
	}
	msg := text(t, ctx, "#upload-1 .error")
	for _, want := range []string{"401", "unauthorized", "a valid bearer token is required", "request ID"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the row's error %q lacks %q", msg, want)
		}
	}
	wait(t, ctx, "#auth-message")
	if m := text(t, ctx, "#auth-message"); !strings.Contains(m, "needs an access token") {
		t.Errorf("the auth message %q does not ask for the token", m)
	}
	if _, err := os.Stat(filepath.Join(srv.uploads, "small.bin")); !os.IsNotExist(err) {
		t.Fatalf("a refused upload was stored (stat: %v)", err)
	}

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), "t0k"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{small, large}),
	); err != nil {
		t.Fatal(err)
	}
	settle(t, ctx, "upload-2", "small.bin", "done")
	settle(t, ctx, "upload-3", "large.bin", "done")
	for _, c := range []struct{ row, name string }{{"upload-2", "small.bin"}, {"upload-3", "large.bin"}} {
		if got, want := text(t, ctx, "#"+c.row+" .sha256"), fileSHA256(t, filepath.Join(srv.uploads, c.name)); got != want {
			t.Errorf("%s: the page shows SHA-256 %q, the stored file has %s", c.name, got, want)
		}
	}
	if m := text(t, ctx, "#auth-message"); m != "" {
		t.Errorf("the auth message %q stays after an authorized upload", m)
	}
	if tok := eval[string](t, ctx, `sessionStorage.getItem('spillway.token')`); tok != "t0k" {
		t.Errorf("sessionStorage holds the token %q, want t0k", tok)
	}
	// A link cannot send the token: the page fetches the file with it.
	got := download(t, ctx, `#stored tr[data-name="small.bin"] a.download`)
	if want, _ := os.ReadFile(small); !bytes.Equal(got, want) {
		t.Errorf("the download with the token gave %d bytes, not the %d bytes sent", len(got), len(want))
	}
}

// TestPageCancels slows the upload down in the browser, cancels it with the
// row's Cancel button, then retries it at full speed.
func TestPageCancels(t *testing.T) {
	srv := startServer(t, "")
	big := writeFile(t, t.TempDir(), "big.bin", 8<<20, 5)

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	throttle(t, ctx, 1<<20) // 8 s for the whole file
	if err := chromedp.Do(ctx,
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{big}),
		// The rate shows once the upload has run for a moment.
		chromedp.WaitVisible(chromedp.CSS(`#upload-1[data-state="uploading"] .rate:not(:empty)`)),
		chromedp.Click(chromedp.CSS("#upload-1 .cancel")),
		chromedp.WaitVisible(chromedp.CSS(`#upload-1[data-state="cancelled"] .retry`)),
	); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#upload-1 .state"); got != "Cancelled" {
		t.Errorf("the state reads %q, want Cancelled", got)
	}
	if !eval[bool](t, ctx, `document.activeElement === document.querySelector('#upload-1 .retry')`) {
		t.Error("after Cancel, the keyboard focus is not on the row's Retry button")
	}
	if _, err := os.Stat(filepath.Join(srv.uploads, "big.bin")); !os.IsNotExist(err) {
		t.Fatalf("a cancelled upload was stored (stat: %v)", err)
	}

	throttle(t, ctx, -1)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#upload-1 .retry"))); err != nil {
		t.Fatal(err)
	}
	settle(t, ctx, "upload-1", "big.bin", "done")
	if got, want := text(t, ctx, "#upload-1 .sha256"), fileSHA256(t, big); got != want {
		t.Errorf("after Retry, the page shows SHA-256 %q, want %s", got, want)
	}
	wait(t, ctx, `#stored tr[data-name="big.bin"]`)
}

// TestPageDropZone drops a file and a folder on the drop zone, as a file
// manager does: the file is uploaded, the folder is refused in words.
func TestPageDropZone(t *testing.T) {
	srv := startServer(t, "")
	dir := t.TempDir()
	small := writeFile(t, dir, "dropped.bin", smallSize, 6)
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	xy := eval[[]float64](t, ctx, `(r => [r.x + r.width/2, r.y + r.height/2])(document.querySelector('#drop').getBoundingClientRect())`)
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: []string{folder, small}, DragOperationsMask: 1} // 1: copy
	for _, typ := range []input.DispatchDragEventType{
		input.DispatchDragEventTypeDragEnter,
		input.DispatchDragEventTypeDragOver,
		input.DispatchDragEventTypeDrop,
	} {
		if _, err := chromedp.Call(ctx, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: xy[0], Y: xy[1], Data: data}); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	settle(t, ctx, "upload-1", "folder", "error")
	if code := attr(t, ctx, "#upload-1", "data-error-code"); code != "not_a_file" {
		t.Errorf("the folder's error code is %q, want not_a_file", code)
	}
	settle(t, ctx, "upload-2", "dropped.bin", "done")
	if got, want := text(t, ctx, "#upload-2 .sha256"), fileSHA256(t, small); got != want {
		t.Errorf("the page shows SHA-256 %q, want %s", got, want)
	}
	if got := attr(t, ctx, "#drop", "class"); got != "drop" {
		t.Errorf("the drop zone's class is %q after the drop, want drop", got)
	}
}

type server struct {
	URL     string
	uploads string // the upload directory
}

// startServer serves the API, page included, on 127.0.0.1.
func startServer(t *testing.T, token string) server {
	t.Helper()
	sp, err := spool.New(spool.Config{Dir: t.TempDir(), Threshold: threshold, MemoryBudget: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	uploads := t.TempDir()
	st, _, err := dirstore.Open(uploads, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	srv := httptest.NewServer(api.New(api.Config{
		Spooler: sp,
		Store:   st,
		Token:   token,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	}))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
		if l := logs.String(); t.Failed() && l != "" {
			t.Logf("server log:\n%s", l)
		}
	})
	return server{URL: srv.URL, uploads: uploads}
}

// newBrowser starts a headless Chromium for t and returns its tab's context,
// with a deadline of browserTimeout. When t ends, the browser and every
// process it started are gone.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := findChromium(t)
	// Everything the browser writes stays in root: the profile and, through
	// HOME and XDG_*, the crash-report database and caches it would keep in
	// the user's home. Cleanups run last-in first-out, so root is removed
	// after the browser is gone.
	root := t.TempDir()
	// Chromium also makes org.chromium.Chromium.* directories in TMPDIR
	// and leaves them there.
	tmp := filepath.Join(root, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(filepath.Join(root, "profile")),
		chromedp.Env(
			"HOME="+filepath.Join(root, "home"),
			"XDG_CONFIG_HOME="+filepath.Join(root, "config"),
			"XDG_CACHE_HOME="+filepath.Join(root, "cache"),
			"TMPDIR="+tmp,
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

// throttle caps the tab's upload rate in bytes per second; -1 lifts it.
func throttle(t *testing.T, ctx context.Context, rate float64) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{DownloadThroughput: -1, UploadThroughput: rate}},
	}); err != nil {
		t.Fatalf("throttling: %v", err)
	}
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

// writeFile writes size deterministic bytes, from seed, to dir/name.
func writeFile(t *testing.T, dir, name string, size int, seed byte) string {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// lockedBuffer holds the server's log for a failing test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
