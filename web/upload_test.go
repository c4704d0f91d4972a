package web_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"

	"spillway/internal/uploadtest"
)

// TestPageUploadsFiles chooses two files at once, one below the threshold
// and one above, and checks each row against the files the server stored,
// then the stored-files list and its download links.
func TestPageUploadsFiles(t *testing.T) {
	srv := startServer(t, "")
	dir := t.TempDir()
	small := writeFile(t, dir, "small.bin", smallSize, 1)
	large := writeFile(t, dir, "large.bin", largeSize, 2)

	ctx := openWith(t, srv.URL, small, large)

	// Rows are numbered in the order the files were chosen.
	for _, c := range []struct{ row, path, spool string }{
		{"upload-1", small, "memory"},
		{"upload-2", large, "disk"},
	} {
		name := filepath.Base(c.path)
		settle(t, ctx, c.row, name, "done")
		row := "#" + c.row

		sum := text(t, ctx, row+" .sha256")
		if want := uploadtest.SHA256File(t, filepath.Join(srv.uploads, name)); sum != want {
			t.Errorf("%s: the page shows SHA-256 %q, the stored file has %s", name, sum, want)
		}
		if want := uploadtest.SHA256File(t, c.path); sum != want {
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

	ctx := openWith(t, srv.URL, small)
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
		if got, want := text(t, ctx, "#"+c.row+" .sha256"), uploadtest.SHA256File(t, filepath.Join(srv.uploads, c.name)); got != want {
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

	ctx := openWith(t, srv.URL, big)
	receive(t, ctx, slow.reading, "the server reading the upload")
	cancelRow(t, ctx, "upload-1")
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
	if got, want := text(t, ctx, "#upload-1 .sha256"), uploadtest.SHA256File(t, big); got != want {
		t.Errorf("after Retry, the page shows SHA-256 %q, want %s", got, want)
	}
	assert.NotEmpty(t, text(t, ctx, "#upload-1 .rate"), "a finished upload shows its rate")
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
	if got, want := text(t, ctx, "#upload-2 .sha256"), uploadtest.SHA256File(t, small); got != want {
		t.Errorf("the page shows SHA-256 %q, want %s", got, want)
	}
	if got := attr(t, ctx, "#drop", "class"); got != "drop" {
		t.Errorf("the drop zone's class is %q after the drop, want drop", got)
	}
}

// TestPageSendsNFCNames chooses a file whose name is decomposed (NFD), as
// macOS may hand it out: the page sends it under its NFC name, the only
// form the server takes.
func TestPageSendsNFCNames(t *testing.T) {
	srv := startServer(t, "")
	nfd, nfc := "cafe\u0301.bin", "caf\u00e9.bin"
	file := writeFile(t, t.TempDir(), nfd, smallSize, 3)

	ctx := openWith(t, srv.URL, file)
	settle(t, ctx, "upload-1", nfc, "done")
	if got, want := uploadtest.SHA256File(t, filepath.Join(srv.uploads, nfc)), uploadtest.SHA256File(t, file); got != want {
		t.Errorf("stored %s has SHA-256 %s, the file sent %s", nfc, got, want)
	}
}
