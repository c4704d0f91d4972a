package web_test

// These tests drive the upload page in a real headless Chromium against a
// real server on 127.0.0.1. They need Chromium (Debian's package
// "chromium"): without it they skip, except under CI=true, where they fail.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
)

const (
	threshold = 1 << 20   // the server's: at most this many bytes stay in memory
	smallSize = 100 << 10 // below the threshold: memory
	largeSize = 3 << 20   // above it: disk
	directMax = 4 << 20   // the page sends larger files in parts
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

// TestPageCancels has the server take the upload slowly, cancels it with
// the row's Cancel button once the server is reading it, then retries it
// at full speed. The file is the largest the page sends whole
// (TestPageMultipartCancel cancels parts).
func TestPageCancels(t *testing.T) {
	rec := &recorder{}
	slow := &slowBodies{rate: 256 << 10, reading: make(chan struct{}, 1)}
	slow.on.Store(true)
	srv := startServerOn(t, smallBufferListener(t), "", rec.wrap, slow.wrap)
	big := writeFile(t, t.TempDir(), "big.bin", directMax, 5)

	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{big}),
	))
	receive(t, ctx, slow.reading, "the server reading the upload")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#upload-1[data-state="uploading"] .cancel`)),
		chromedp.WaitVisible(chromedp.CSS(`#upload-1[data-state="cancelled"] .retry`)),
	))
	assert.Equal(t, "Cancelled", text(t, ctx, "#upload-1 .state"))
	assert.True(t, eval[bool](t, ctx, `document.activeElement === document.querySelector('#upload-1 .retry')`),
		"after Cancel, the keyboard focus is not on the row's Retry button")
	// What the browser had sent when it cancelled reaches the server, which
	// then finds the body short of its length.
	slow.on.Store(false)
	assert.Equal(t, http.StatusBadRequest, rec.waitFor(t, ctx, "PUT /files/big.bin").Status, "the cancelled PUT")
	assert.NoFileExists(t, filepath.Join(srv.uploads, "big.bin"), "a cancelled upload was stored")
	assertEmpty(t, srv.spool)

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#upload-1 .retry"))); err != nil {
		t.Fatal(err)
	}
	settle(t, ctx, "upload-1", "big.bin", "done")
	if got, want := text(t, ctx, "#upload-1 .sha256"), fileSHA256(t, big); got != want {
		t.Errorf("after Retry, the page shows SHA-256 %q, want %s", got, want)
	}
	assert.NotEmpty(t, text(t, ctx, "#upload-1 .rate"), "a finished upload shows its rate")
	wait(t, ctx, `#stored tr[data-name="big.bin"]`)
}

// TestPageListRetriesBusy has the server refuse the page's first listing
// as busy, as it does past its cap on concurrent listings: the page asks
// again after Retry-After and shows the files, not the refusal.
func TestPageListRetriesBusy(t *testing.T) {
	var refused atomic.Int32
	busyOnce := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/files" && refused.CompareAndSwap(0, 1) {
				w.Header().Set("Retry-After", "0")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":{"code":"busy","message":"too many uploads or listings are in progress; retry after the Retry-After delay"}}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	srv := startServer(t, "", busyOnce)
	require.NoError(t, os.WriteFile(filepath.Join(srv.uploads, "kept.txt"), []byte("kept"), 0o644))

	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	wait(t, ctx, `#stored tr[data-name="kept.txt"]`)
	assert.EqualValues(t, 1, refused.Load(), "the first listing was refused")
	assert.NotContains(t, text(t, ctx, "#list-status"), "busy")
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

// TestPageListsInPages stores more files than one page of GET /files
// holds. The list shows the first page and a button; the button adds the
// next page, and a refresh then keeps both pages: each file once, in the
// server's order.
func TestPageListsInPages(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "", rec.wrap)
	var names []string
	for i := range 1005 {
		names = append(names, fmt.Sprintf("f%04d.bin", i))
	}
	names = append(names, "dir/a.bin", "dir-b.bin")
	for _, name := range names {
		writeStored(t, srv, name)
	}
	slices.Sort(names)

	ctx := newBrowser(t)
	rows := func() []string {
		return eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#stored tbody tr'), (tr) => tr.dataset.name)`)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, "#more-files")
	assert.Equal(t, names[:1000], rows(), "the first page, in the server's order")
	firstPageEnd := names[999]
	assert.Equal(t, "Showing the first 1,000 files; more are stored.", text(t, ctx, "#list-status"))

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("more-files")), chromedp.WaitNotVisible(chromedp.ID("more-row"))); err != nil {
		t.Fatal(err)
	}
	assert.Equal(t, names, rows(), "both pages, each file once")
	assert.Equal(t, "1,007 files", text(t, ctx, "#list-status"))
	assert.True(t, eval[bool](t, ctx, `document.activeElement === document.querySelector('#stored tbody tr:nth-child(1001) a')`),
		"the focus moves to the first file the button added, as the button goes")

	// A file that sorts first pushes one file of the first page onto the
	// second: a refresh fetches both pages again, and shows every file.
	writeStored(t, srv, "0-new.bin")
	names = append([]string{"0-new.bin"}, names...)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("refresh"))); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, `#stored tr[data-name="0-new.bin"]`)
	assert.Equal(t, names, rows())
	assert.Equal(t, "1,008 files", text(t, ctx, "#list-status"))

	// The page followed next_cursor: the last name of the page before.
	cursor := func(name string) string { return "cursor=" + base64.RawURLEncoding.EncodeToString([]byte(name)) }
	var lists []string
	for _, r := range rec.requests() {
		if r.Method == http.MethodGet && r.Path == "/files" {
			lists = append(lists, r.Query)
		}
	}
	assert.Equal(t, []string{"", cursor(firstPageEnd), "", cursor(names[999])}, lists)
	screenshot(t, ctx)
}

// writeStored puts a file named name, holding its name, straight into the
// server's upload directory.
func writeStored(t *testing.T, srv server, name string) {
	t.Helper()
	p := filepath.Join(srv.uploads, filepath.FromSlash(name))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
}

// TestPageMultipart sends a file of three parts. It goes through the
// multipart flow: POST /uploads, the part PUTs, three at a time, with more
// part URLs fetched when the first page runs out, a part that storage
// refuses once sent again, and the completion. The page then shows the
// stored file as it shows a direct upload.
func TestPageMultipart(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "", rec.wrap, firstPageOfOne(t), storageHiccup(2))
	size := 2*store.DefaultPartSize + 5<<20 + 321
	big := writeFile(t, t.TempDir(), "big.bin", size, 7)

	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{big}),
	))
	settle(t, ctx, "upload-1", "big.bin", "done")

	sent, err := os.ReadFile(big)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(srv.uploads, "big.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(sent, got), "the stored file (%d bytes) differs from the one sent (%d bytes)", len(got), len(sent))
	assert.Equal(t, fileSHA256(t, big), text(t, ctx, "#upload-1 .sha256"), "the SHA-256 shown")
	assert.Equal(t, "parts", text(t, ctx, "#upload-1 .spool"))
	assert.Equal(t, strconv.Itoa(size), attr(t, ctx, "#upload-1 .size", "data-bytes"))
	assert.Equal(t, "Done", text(t, ctx, "#upload-1 .state"))
	assert.True(t, eval[bool](t, ctx, `(p => p.value === p.max)(document.querySelector('#upload-1 progress'))`), "the progress bar is not full")

	assert.Equal(t, map[string]int{
		"POST /uploads":               1,
		"GET /uploads/{id}/parts":     1,
		"PUT part 1":                  1,
		"PUT part 2":                  2, // refused once
		"PUT part 3":                  1,
		"POST /uploads/{id}/complete": 1,
	}, rec.uploadRoutes())
	for _, r := range rec.requests() {
		if r.route() == "GET /uploads/{id}/parts" {
			assert.Equal(t, "from=2", r.Query, "the page fetched part URLs from the wrong part")
		}
		if r.route() == "POST /uploads" {
			// The page's own SHA-256 and CRC64NVME, computed a slice at a
			// time, against Go's of the whole file; the server checked
			// them too, or the upload would have failed.
			var cr api.CreateUploadRequest
			require.NoError(t, json.Unmarshal([]byte(r.Created), &cr), r.Created)
			assert.Equal(t, fileSHA256(t, big), cr.SHA256, "the SHA-256 the page declared")
			assert.Equal(t, store.EncodeCRC64NVME(crc64nvme.Checksum(sent)), cr.CRC64NVME, "the CRC64NVME the page declared")
		}
	}
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
	assertEmpty(t, srv.spool)
	wait(t, ctx, `#stored tr[data-name="big.bin"]`)
}

// TestPageChecksumsMatchGo sends in parts a file whose SHA-256 padding
// takes two blocks (its size is 60 past a multiple of 64): the checksums
// the page declares are Go's, and the server, which checks both, stores it.
func TestPageChecksumsMatchGo(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "", rec.wrap)
	size := 4<<20 + 60
	f := writeFile(t, t.TempDir(), "pad.bin", size, 11)
	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{f}),
	))
	settle(t, ctx, "upload-1", "pad.bin", "done")
	sent, err := os.ReadFile(f)
	require.NoError(t, err)
	var creates int
	for _, r := range rec.requests() {
		if r.route() != "POST /uploads" {
			continue
		}
		creates++
		var cr api.CreateUploadRequest
		require.NoError(t, json.Unmarshal([]byte(r.Created), &cr), r.Created)
		assert.Equal(t, fileSHA256(t, f), cr.SHA256)
		assert.Equal(t, store.EncodeCRC64NVME(crc64nvme.Checksum(sent)), cr.CRC64NVME)
	}
	assert.Equal(t, 1, creates, "sent in parts")
	assert.Equal(t, fileSHA256(t, f), text(t, ctx, "#upload-1 .sha256"))
}

// TestPageMultipartCancel cancels a file while its parts are on their way:
// the server holds them until the page has cancelled, so the test knows
// they are in flight. Nothing of the upload is left: the page deletes it.
// Retry then starts over and sends the file.
func TestPageMultipartCancel(t *testing.T) {
	rec := &recorder{}
	gate := &partGate{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	srv := startServer(t, "", rec.wrap, gate.wrap)
	t.Cleanup(gate.open) // before the server closes, which waits for held requests
	big := writeFile(t, t.TempDir(), "big.bin", store.DefaultPartSize+4<<20, 8)

	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{big}),
	))
	for range 2 { // both parts are on their way
		receive(t, ctx, gate.arrived, "a part PUT")
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#upload-1[data-state="uploading"] .cancel`)),
		chromedp.WaitVisible(chromedp.CSS(`#upload-1[data-state="cancelled"] .retry`)),
	))
	assert.Equal(t, "Cancelled", text(t, ctx, "#upload-1 .state"))
	assert.True(t, eval[bool](t, ctx, `document.activeElement === document.querySelector('#upload-1 .retry')`),
		"after Cancel, the keyboard focus is not on the row's Retry button")

	del := rec.waitFor(t, ctx, "DELETE /uploads/{id}")
	assert.Equal(t, http.StatusNoContent, del.Status, "the page's DELETE of the upload")
	gate.open() // the held parts go on, to an upload that is gone
	gate.held.Wait()
	assert.NoFileExists(t, filepath.Join(srv.uploads, "big.bin"))
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
	assertEmpty(t, srv.spool)

	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#upload-1 .retry"))))
	settle(t, ctx, "upload-1", "big.bin", "done")
	assert.Equal(t, fileSHA256(t, big), text(t, ctx, "#upload-1 .sha256"))
	assert.Equal(t, fileSHA256(t, big), fileSHA256(t, filepath.Join(srv.uploads, "big.bin")))
	assert.Equal(t, map[string]int{
		"POST /uploads":               2, // Retry starts over
		"DELETE /uploads/{id}":        1,
		"PUT part 1":                  2,
		"PUT part 2":                  2,
		"POST /uploads/{id}/complete": 1,
	}, rec.uploadRoutes())
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
}

// TestPageMultipartToken runs the server with a token. A large file sent
// without it fails with the 401 in words; with the token typed in, Retry
// (from the keyboard) sends it in parts. The API requests carry the token;
// the part PUTs, whose URLs are their credential, never do.
func TestPageMultipartToken(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "t0k", rec.wrap)
	big := writeFile(t, t.TempDir(), "big.bin", store.DefaultPartSize+1<<20, 9)

	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{big}),
	))
	settle(t, ctx, "upload-1", "big.bin", "error")
	assert.Equal(t, "unauthorized", attr(t, ctx, "#upload-1", "data-error-code"))
	msg := text(t, ctx, "#upload-1 .error")
	for _, want := range []string{"401", "unauthorized", "a valid bearer token is required", "request ID"} {
		assert.Contains(t, msg, want, "the row's error")
	}
	wait(t, ctx, "#auth-message")
	assert.Contains(t, text(t, ctx, "#auth-message"), "needs an access token")
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
	before := len(rec.requests())

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), "t0k"),
		chromedp.Focus(chromedp.CSS("#upload-1 .retry")),
		chromedp.KeyEvent("\r"),
	))
	settle(t, ctx, "upload-1", "big.bin", "done")
	assert.Equal(t, fileSHA256(t, big), text(t, ctx, "#upload-1 .sha256"))
	assert.Equal(t, fileSHA256(t, big), fileSHA256(t, filepath.Join(srv.uploads, "big.bin")))
	assert.Empty(t, text(t, ctx, "#auth-message"))

	routes := map[string]int{}
	for _, r := range rec.requests()[before:] {
		route := r.route()
		switch {
		case strings.HasPrefix(route, "PUT part "):
			assert.Empty(t, r.Auth, "%s carried an Authorization header", route)
		case strings.HasPrefix(r.Path, "/uploads"):
			assert.Equal(t, "Bearer t0k", r.Auth, "%s without the token", route)
		default:
			continue
		}
		routes[route]++
	}
	assert.Equal(t, map[string]int{
		"POST /uploads":               1,
		"PUT part 1":                  1,
		"PUT part 2":                  1,
		"POST /uploads/{id}/complete": 1,
	}, routes)
}

// TestPageMultipartElsewhere gives the page part URLs on an origin its
// Content-Security-Policy does not let it reach, as a local server storing
// to an S3-compatible server on another port does. The page deletes the
// upload and sends the file whole, which such a server takes.
func TestPageMultipartElsewhere(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "", rec.wrap, rewriteCreated(t, func(up map[string]any) {
		for _, p := range up["parts"].([]any) {
			u, err := url.Parse(p.(map[string]any)["url"].(string))
			if !assert.NoError(t, err) {
				return
			}
			u.Scheme, u.Host = "http", "192.0.2.1:7070" // TEST-NET-1: never reached
			p.(map[string]any)["url"] = u.String()
		}
	}))
	big := writeFile(t, t.TempDir(), "big.bin", 5<<20, 10)

	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{big}),
	))
	settle(t, ctx, "upload-1", "big.bin", "done")
	assert.Equal(t, fileSHA256(t, big), text(t, ctx, "#upload-1 .sha256"))
	assert.Equal(t, "disk", text(t, ctx, "#upload-1 .spool"))
	del := rec.waitFor(t, ctx, "DELETE /uploads/{id}")
	assert.Equal(t, http.StatusNoContent, del.Status, "the page's DELETE of the upload")
	assert.Equal(t, map[string]int{
		"POST /uploads":        1,
		"DELETE /uploads/{id}": 1,
		"PUT /files/big.bin":   1,
	}, rec.uploadRoutes())
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
}

type server struct {
	URL     string
	uploads string // the upload directory
	spool   string // the spool directory
}

// startServer serves the API, page included, on 127.0.0.1, through wrap
// (the first wraps the others).
func startServer(t *testing.T, token string, wrap ...func(http.Handler) http.Handler) server {
	t.Helper()
	return startServerOn(t, nil, token, wrap...)
}

// startServerOn is startServer on the listener ln, or on one of httptest's
// when ln is nil.
func startServerOn(t *testing.T, ln net.Listener, token string, wrap ...func(http.Handler) http.Handler) server {
	t.Helper()
	spoolDir := t.TempDir()
	sp, err := spool.New(spool.Config{Dir: spoolDir, Threshold: threshold, MemoryBudget: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	uploads := t.TempDir()
	st, _, err := dirstore.Open(uploads, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	var h http.Handler = api.New(api.Config{
		Spooler: sp,
		Store:   st,
		Token:   token,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	})
	for _, w := range slices.Backward(wrap) {
		h = w(h)
	}
	srv := httptest.NewUnstartedServer(h)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		st.Close()
		if l := logs.String(); t.Failed() && l != "" {
			t.Logf("server log:\n%s", l)
		}
	})
	return server{URL: srv.URL, uploads: uploads, spool: spoolDir}
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

// slowBodies makes the server read upload bodies at about rate bytes per
// second while on, as a slow uplink would, and tells reading when it
// starts on one. Throttling in the test's own server needs no DevTools
// network emulation, whose parameters change between Chromium releases.
// It needs smallBufferListener beside it.
type slowBodies struct {
	on      atomic.Bool
	rate    int
	reading chan struct{}
}

func (s *slowBodies) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.on.Load() && r.Method == http.MethodPut {
			r.Body = &slowReader{ReadCloser: r.Body, s: s}
		}
		next.ServeHTTP(w, r)
	})
}

// smallBufferListener listens on 127.0.0.1 with a small socket receive
// buffer, which the connections it accepts inherit. On loopback the kernel
// would otherwise take in a whole 4 MiB file at once, however slowly the
// server reads, and a cancel would come after the browser had sent it all.
// The browser's own send buffer still takes a part of the file at once.
func smallBufferListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

// slowReader paces reads of an upload body, a tick's worth of bytes per
// tick, until its slowBodies is switched off: then the rest of a cancelled
// upload drains at once.
type slowReader struct {
	io.ReadCloser
	s *slowBodies
}

func (r *slowReader) Read(p []byte) (int, error) {
	const tick = 20 * time.Millisecond
	if r.s.on.Load() {
		select {
		case r.s.reading <- struct{}{}:
		default:
		}
		time.Sleep(tick) // pacing, not synchronisation: the rate is the point
		if n := r.s.rate * int(tick) / int(time.Second); len(p) > n {
			p = p[:n]
		}
	}
	return r.ReadCloser.Read(p)
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

// request is what a test server saw of one request; Status is 0 until the
// handler has answered it.
type request struct {
	Method, Path, Query, Auth string
	Status                    int
	Created                   string // the body of a POST /uploads
}

var (
	partURLPath = regexp.MustCompile(`^/uploads/[A-Za-z0-9._~-]+/parts/([0-9]+)$`)
	uploadPath  = regexp.MustCompile(`^/uploads/[A-Za-z0-9._~-]+(/parts|/complete)?$`)
)

// route names r without its upload ID: "PUT part 2", "POST
// /uploads/{id}/complete", "PUT /files/big.bin".
func (r request) route() string {
	if m := partURLPath.FindStringSubmatch(r.Path); m != nil && r.Method == http.MethodPut {
		return "PUT part " + m[1]
	}
	if m := uploadPath.FindStringSubmatch(r.Path); m != nil {
		return r.Method + " /uploads/{id}" + m[1]
	}
	return r.Method + " " + r.Path
}

// recorder notes every request as it arrives, and its status once served.
type recorder struct {
	mu      sync.Mutex
	seen    []request
	changed chan struct{} // closed, and replaced, at each answer
}

func (rec *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var created []byte
		if r.Method == http.MethodPost && r.URL.Path == "/uploads" {
			// A create is a small JSON body; read it whole and hand it on.
			created, _ = io.ReadAll(io.LimitReader(r.Body, 64<<10))
			r.Body = io.NopCloser(bytes.NewReader(created))
		}
		rec.mu.Lock()
		i := len(rec.seen)
		rec.seen = append(rec.seen, request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Created: string(created)})
		rec.mu.Unlock()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		rec.mu.Lock()
		rec.seen[i].Status = cmp.Or(sw.status, http.StatusOK)
		if rec.changed != nil {
			close(rec.changed)
			rec.changed = nil
		}
		rec.mu.Unlock()
	})
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.seen)
}

// uploadRoutes counts the requests that upload: the /uploads routes and
// PUT /files/{name}.
func (rec *recorder) uploadRoutes() map[string]int {
	n := map[string]int{}
	for _, r := range rec.requests() {
		if strings.HasPrefix(r.Path, "/uploads") || r.Method == http.MethodPut && strings.HasPrefix(r.Path, "/files/") {
			n[r.route()]++
		}
	}
	return n
}

// waitFor waits until a request on route has been answered, and returns it.
func (rec *recorder) waitFor(t *testing.T, ctx context.Context, route string) request {
	t.Helper()
	for {
		rec.mu.Lock()
		for _, r := range rec.seen {
			if r.Status != 0 && r.route() == route {
				rec.mu.Unlock()
				return r
			}
		}
		if rec.changed == nil {
			rec.changed = make(chan struct{})
		}
		changed := rec.changed
		rec.mu.Unlock()
		receive(t, ctx, changed, route)
	}
}

// statusWriter notes the status a handler answers with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// rewriteCreated lets edit change the body of POST /uploads's 201.
func rewriteCreated(t *testing.T, edit func(up map[string]any)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/uploads" {
				next.ServeHTTP(w, r)
				return
			}
			rw := httptest.NewRecorder()
			next.ServeHTTP(rw, r)
			body := rw.Body.Bytes()
			if rw.Code == http.StatusCreated {
				var up map[string]any
				if assert.NoError(t, json.Unmarshal(body, &up)) {
					edit(up)
					var err error
					body, err = json.Marshal(up)
					assert.NoError(t, err)
				}
			}
			maps.Copy(w.Header(), rw.Header())
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rw.Code)
			w.Write(body)
		})
	}
}

// firstPageOfOne leaves one part URL in POST /uploads's answer, with
// next_from 2, so that the page fetches the others with GET
// /uploads/{id}/parts, as it must for a file of over 500 parts.
func firstPageOfOne(t *testing.T) func(http.Handler) http.Handler {
	return rewriteCreated(t, func(up map[string]any) {
		parts := up["parts"].([]any)
		if assert.Greater(t, len(parts), 1, "the test needs a file of several parts") {
			up["parts"], up["next_from"] = parts[:1], 2
		}
	})
}

// storageHiccup answers the first PUT of part n as S3 answers a client it
// asks to slow down: 503, in XML.
func storageHiccup(n int) func(http.Handler) http.Handler {
	var once sync.Once
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m := partURLPath.FindStringSubmatch(r.URL.EscapedPath())
			refuse := false
			if m != nil && r.Method == http.MethodPut && m[1] == strconv.Itoa(n) {
				once.Do(func() { refuse = true })
			}
			if !refuse {
				next.ServeHTTP(w, r)
				return
			}
			io.Copy(io.Discard, r.Body) // the browser sends it all before it reads the answer
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>TESTREQUESTID</RequestId></Error>`)
		})
	}
}

// partGate holds every part PUT until the test opens it, and tells the
// test when each arrives.
type partGate struct {
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	held    sync.WaitGroup // the part PUTs the gate has seen, until served
}

func (g *partGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && partURLPath.MatchString(r.URL.EscapedPath()) {
			g.held.Add(1)
			defer g.held.Done()
			select {
			case g.arrived <- struct{}{}:
			default:
			}
			<-g.release
		}
		next.ServeHTTP(w, r)
	})
}

func (g *partGate) open() { g.once.Do(func() { close(g.release) }) }

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

// assertEmpty checks that dir holds nothing (or is not there at all).
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "left in %s", dir)
}

// TestPageSendsNFCNames chooses a file whose name is decomposed (NFD), as
// macOS may hand it out: the page sends it under its NFC name, the only
// form the server takes.
func TestPageSendsNFCNames(t *testing.T) {
	srv := startServer(t, "")
	nfd, nfc := "cafe\u0301.bin", "caf\u00e9.bin"
	file := writeFile(t, t.TempDir(), nfd, smallSize, 3)

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{file}),
	); err != nil {
		t.Fatal(err)
	}
	settle(t, ctx, "upload-1", nfc, "done")
	if got, want := fileSHA256(t, filepath.Join(srv.uploads, nfc)), fileSHA256(t, file); got != want {
		t.Errorf("stored %s has SHA-256 %s, the file sent %s", nfc, got, want)
	}
}

// TestPageDeletes deletes stored files from the list with the keyboard:
// Delete asks in the row, Escape takes it back, "Yes, delete" sends the
// DELETE with the token, and the focus moves to the next row's Delete
// button, the previous one's, or Refresh list once the list is empty. A
// refused delete (401) keeps the row and says why, with the request ID; a
// file already gone (404) leaves the list with the error in words.
func TestPageDeletes(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "t0k", rec.wrap)
	for _, name := range []string{"a.bin", "dir/b.bin", "c.bin"} {
		writeStored(t, srv, name)
	}
	ctx := newBrowser(t)
	row := func(name string) string { return `#stored tr[data-name="` + name + `"]` }
	focused := func(css string) bool {
		t.Helper()
		return eval[bool](t, ctx, `document.activeElement === document.querySelector('`+css+`')`)
	}
	deletes := func() []request {
		var ds []request
		for _, r := range rec.requests() {
			if r.Method == http.MethodDelete {
				ds = append(ds, r)
			}
		}
		return ds
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SendKeys(chromedp.ID("token"), "t0k"),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)),
	); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, row("dir/b.bin")+" button.delete")
	assert.Equal(t, "Delete dir/b.bin", attr(t, ctx, row("dir/b.bin")+" button.delete", "aria-label"))

	// Enter asks; the focus is on Cancel; Escape takes it back.
	if err := chromedp.Do(ctx,
		chromedp.Focus(chromedp.CSS(row("dir/b.bin")+" button.delete")),
		chromedp.KeyEvent("\r"),
	); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, row("dir/b.bin")+" button.confirm")
	assert.Equal(t, "Delete b.bin?", text(t, ctx, row("dir/b.bin")+" .confirm-text"))
	assert.Equal(t, "Yes, delete dir/b.bin", attr(t, ctx, row("dir/b.bin")+" button.confirm", "aria-label"))
	assert.Equal(t, "Cancel deleting dir/b.bin", attr(t, ctx, row("dir/b.bin")+" button.cancel-delete", "aria-label"))
	assert.True(t, focused(row("dir/b.bin")+" button.cancel-delete"), "the focus is on Cancel, the safe answer")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, row("dir/b.bin")+" button.delete")
	assert.True(t, focused(row("dir/b.bin")+" button.delete"), "Escape puts the focus back on Delete")
	assert.Empty(t, deletes(), "nothing is deleted without the confirmation")
	assert.FileExists(t, filepath.Join(srv.uploads, "dir", "b.bin"))

	// Confirmed: the DELETE carries the token, the row and the file go,
	// and so does the folder the file leaves empty.
	if err := chromedp.Do(ctx,
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(row("dir/b.bin")+" button.confirm")),
		chromedp.Focus(chromedp.CSS(row("dir/b.bin")+" button.confirm")),
		chromedp.KeyEvent("\r"),
		chromedp.WaitNotPresent(chromedp.CSS(row("dir/b.bin"))),
	); err != nil {
		t.Fatal(err)
	}
	got := rec.waitFor(t, ctx, "DELETE /files/dir/b.bin")
	assert.Equal(t, http.StatusNoContent, got.Status)
	assert.Equal(t, "Bearer t0k", got.Auth)
	assert.NoDirExists(t, filepath.Join(srv.uploads, "dir"))
	assert.True(t, focused(row("c.bin")+" button.delete"), "the focus moves to the next row's Delete")
	assert.Equal(t, "Deleted dir/b.bin. 2 files", text(t, ctx, "#list-status"))

	// With a token the server refuses (as after it changed its token; set
	// without an input event, so the list is not fetched again): 401, in
	// words with the request ID, and the row and the file stay.
	eval[string](t, ctx, `document.getElementById('token').value = 'stale'`)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row("c.bin")+" button.delete")),
		chromedp.Click(chromedp.CSS(row("c.bin")+" button.confirm")),
	); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, "#delete-message")
	msg := text(t, ctx, "#delete-message")
	for _, want := range []string{"c.bin", "HTTP 401", "unauthorized", "a valid bearer token is required", "(request ID "} {
		assert.Contains(t, msg, want)
	}
	assert.Regexp(t, `\(request ID [0-9A-Z]{20,}\)`, msg)
	assert.Contains(t, text(t, ctx, "#auth-message"), "refused this access token")
	wait(t, ctx, row("c.bin")+" button.delete")
	assert.True(t, focused(row("c.bin")+" button.delete"), "a refused delete leaves the focus on Delete")
	assert.FileExists(t, filepath.Join(srv.uploads, "c.bin"))

	// Gone already (404): the row leaves the list, the error says so.
	require.NoError(t, os.Remove(filepath.Join(srv.uploads, "c.bin")))
	eval[string](t, ctx, `document.getElementById('token').value = 't0k'`)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row("c.bin")+" button.delete")),
		chromedp.Click(chromedp.CSS(row("c.bin")+" button.confirm")),
		chromedp.WaitNotPresent(chromedp.CSS(row("c.bin"))),
	); err != nil {
		t.Fatal(err)
	}
	msg = text(t, ctx, "#delete-message")
	for _, want := range []string{"c.bin", "HTTP 404", "not_found", "(request ID "} {
		assert.Contains(t, msg, want)
	}
	assert.Regexp(t, `\(request ID [0-9A-Z]{20,}\)`, msg)
	assert.True(t, focused(row("a.bin")+" button.delete"), "the focus moves to the previous row's Delete")

	// The last file: the focus goes to Refresh list.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row("a.bin")+" button.delete")),
		chromedp.Click(chromedp.CSS(row("a.bin")+" button.confirm")),
		chromedp.WaitNotPresent(chromedp.CSS(row("a.bin"))),
	); err != nil {
		t.Fatal(err)
	}
	assert.Empty(t, text(t, ctx, "#delete-message"), "a delete that worked clears the last error")
	assert.True(t, focused("#refresh"), "with no rows left, the focus goes to Refresh list")
	assert.Equal(t, "Deleted a.bin. No files stored yet.", text(t, ctx, "#list-status"))
	assert.NoFileExists(t, filepath.Join(srv.uploads, "a.bin"))
	assert.Len(t, deletes(), 4)
}
