package web_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
