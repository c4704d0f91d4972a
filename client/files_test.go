package client_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/client"
)

// files is a server of stored files that answers the listing, downloads
// and deletes as the README's API does: pages with next_cursor, downloads
// through http.ServeContent (Range, If-Range), and, with redirect set, a
// 307 to a second server that holds the bytes and wants no credentials.
type files struct {
	mu       sync.Mutex
	data     map[string][]byte
	etags    map[string]string
	requests []*http.Request // every request to either server, headers only
	redirect bool
	// cut, when > 0, ends the next download's body after that many bytes.
	cut int
	url string
}

func newFiles(t *testing.T) *files {
	fs := &files{data: map[string][]byte{}, etags: map[string]string{}}
	bytesSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.record(r)
		fs.serve(w, r, strings.TrimPrefix(r.URL.Path, "/bytes/"))
	}))
	t.Cleanup(bytesSrv.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.record(r)
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			writeErr(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
			return
		}
		name, isFile := strings.CutPrefix(r.URL.Path, "/files/")
		switch {
		case r.URL.Path == "/files" && r.Method == http.MethodGet:
			fs.list(w, r)
		case isFile && r.Method == http.MethodGet && fs.redirect:
			http.Redirect(w, r, bytesSrv.URL+"/bytes/"+name+"?X-Amz-Signature=sig", http.StatusTemporaryRedirect)
		case isFile && r.Method == http.MethodGet:
			fs.serve(w, r, name)
		case isFile && r.Method == http.MethodDelete:
			fs.mu.Lock()
			_, ok := fs.data[name]
			delete(fs.data, name)
			fs.mu.Unlock()
			if !ok {
				writeErr(w, http.StatusNotFound, "not_found", "no file or route has this path; GET /files lists the stored files")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			writeErr(w, http.StatusNotFound, "not_found", "no file or route has this path; GET /files lists the stored files")
		}
	}))
	t.Cleanup(srv.Close)
	fs.url = srv.URL
	return fs
}

func (fs *files) record(r *http.Request) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.requests = append(fs.requests, &http.Request{Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Host: r.Host})
}

func (fs *files) put(name string, body []byte) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.data[name] = body
	fs.etags[name] = fmt.Sprintf(`"v%d"`, len(fs.etags)+1)
}

func (fs *files) serve(w http.ResponseWriter, r *http.Request, name string) {
	fs.mu.Lock()
	body, ok := fs.data[name]
	etag := fs.etags[name]
	cut := fs.cut
	fs.cut = 0
	fs.mu.Unlock()
	if !ok {
		writeErr(w, http.StatusNotFound, "not_found", "no file or route has this path; GET /files lists the stored files")
		return
	}
	w.Header().Set("ETag", etag)
	if cut > 0 {
		// Announce the whole length, send part of it, and drop the
		// connection, as a network failure would.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:cut])
		panic(http.ErrAbortHandler)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (fs *files) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 1000
	if q.Has("limit") {
		limit, _ = strconv.Atoi(q.Get("limit"))
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		b, _ := base64.RawURLEncoding.DecodeString(c)
		after = string(b)
	}
	fs.mu.Lock()
	var names []string
	for n := range fs.data {
		if strings.HasPrefix(n, q.Get("prefix")) && n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	resp := map[string]any{}
	var page []map[string]any
	for i, n := range names {
		if i == limit {
			resp["next_cursor"] = base64.RawURLEncoding.EncodeToString([]byte(names[i-1]))
			break
		}
		page = append(page, map[string]any{"name": n, "size": len(fs.data[n]), "modified": time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)})
	}
	fs.mu.Unlock()
	resp["files"] = page
	writeJSON(w, http.StatusOK, resp)
}

func (fs *files) sent() []*http.Request {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	r := fs.requests
	fs.requests = nil
	return r
}

func filesClient(t *testing.T, fs *files) *client.Client {
	c, err := client.New(fs.url, client.Options{Token: "s3cret", NoResume: true, RetryWait: time.Millisecond})
	require.NoError(t, err)
	return c
}

func TestListFollowsPages(t *testing.T) {
	fs := newFiles(t)
	for i := range 7 {
		fs.put(fmt.Sprintf("logs/%02d.txt", i), bytes.Repeat([]byte("x"), i))
	}
	fs.put("other.txt", []byte("o"))
	c := filesClient(t, fs)

	var got []string
	for f, err := range c.List(testCtx(t), "logs/", 3) {
		require.NoError(t, err)
		got = append(got, fmt.Sprintf("%s %d", f.Name, f.Size))
	}
	assert.Equal(t, []string{"logs/00.txt 0", "logs/01.txt 1", "logs/02.txt 2", "logs/03.txt 3", "logs/04.txt 4", "logs/05.txt 5", "logs/06.txt 6"}, got)
	reqs := fs.sent()
	require.Len(t, reqs, 3, "three pages of at most 3")
	assert.Equal(t, "limit=3&prefix=logs%2F", reqs[0].URL.RawQuery)
	assert.Equal(t, "cursor="+base64.RawURLEncoding.EncodeToString([]byte("logs/02.txt"))+"&limit=3&prefix=logs%2F", reqs[1].URL.RawQuery)

	// Stopping early asks for no more pages.
	for range c.List(testCtx(t), "", 3) {
		break
	}
	assert.Len(t, fs.sent(), 1)
}

func TestListRefusesACursorThatDoesNotAdvance(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"files": []map[string]any{{"name": "a", "size": 1}}, "next_cursor": "YQ"})
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Options{NoResume: true})
	require.NoError(t, err)
	n := 0
	var last error
	for _, err := range c.List(testCtx(t), "", 0) {
		n++
		last = err
	}
	assert.ErrorContains(t, last, "next_cursor does not advance")
	assert.Equal(t, 3, n, "two pages, then the error")
}

func TestDelete(t *testing.T) {
	fs := newFiles(t)
	fs.put("a b/c.txt", []byte("c"))
	c := filesClient(t, fs)

	require.NoError(t, c.Delete(testCtx(t), "a b/c.txt"))
	reqs := fs.sent()
	require.Len(t, reqs, 1)
	assert.Equal(t, http.MethodDelete, reqs[0].Method)
	assert.Equal(t, "/files/a%20b/c.txt", reqs[0].URL.EscapedPath())

	err := c.Delete(testCtx(t), "a b/c.txt")
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusNotFound, e.Status)
	assert.Equal(t, "not_found", e.Code)
	assert.Len(t, fs.sent(), 1, "a 404 is not tried again")
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestDownload(t *testing.T) {
	for _, redirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("redirect=%v", redirect), func(t *testing.T) {
			fs := newFiles(t)
			fs.redirect = redirect
			body := randomBytes(t, 1<<20)
			fs.put("dir/big.bin", body)
			c := filesClient(t, fs)
			dest := filepath.Join(t.TempDir(), "big.bin")

			res, err := c.Download(testCtx(t), "dir/big.bin", dest, client.DownloadOptions{SHA256: strings.ToUpper(hexSHA(body))})
			require.NoError(t, err)
			assert.Equal(t, int64(len(body)), res.Size)
			assert.Equal(t, hexSHA(body), res.SHA256)
			assert.Equal(t, redirect, res.Redirected)
			assert.Zero(t, res.Resumed)
			got, err := os.ReadFile(dest)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(body, got))
			entries, err := os.ReadDir(filepath.Dir(dest))
			require.NoError(t, err)
			assert.Len(t, entries, 1, "no .part left")

			reqs := fs.sent()
			if redirect {
				require.Len(t, reqs, 2)
				assert.Equal(t, "Bearer s3cret", reqs[0].Header.Get("Authorization"))
				assert.Equal(t, "/bytes/dir/big.bin", reqs[1].URL.Path)
				assert.Equal(t, "sig", reqs[1].URL.Query().Get("X-Amz-Signature"))
				assert.Empty(t, reqs[1].Header.Get("Authorization"), "no credentials to the redirect's target")
			} else {
				require.Len(t, reqs, 1)
			}
		})
	}
}

func TestDownloadResumes(t *testing.T) {
	for _, redirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("redirect=%v", redirect), func(t *testing.T) {
			fs := newFiles(t)
			fs.redirect = redirect
			body := randomBytes(t, 1<<20)
			fs.put("big.bin", body)
			dest := filepath.Join(t.TempDir(), "big.bin")
			part, meta := client.PartPaths(dest)

			// A client that tries once: the cut-off body stays in .part.
			once, err := client.New(fs.url, client.Options{Token: "s3cret", NoResume: true, Attempts: 1})
			require.NoError(t, err)
			fs.cut = 300 << 10
			_, err = once.Download(testCtx(t), "big.bin", dest, client.DownloadOptions{})
			require.Error(t, err)
			assert.NoFileExists(t, dest)
			fi, err := os.Stat(part)
			require.NoError(t, err)
			assert.Equal(t, int64(300<<10), fi.Size())
			assert.FileExists(t, meta)
			fs.sent()

			res, err := filesClient(t, fs).Download(testCtx(t), "big.bin", dest, client.DownloadOptions{SHA256: hexSHA(body)})
			require.NoError(t, err)
			assert.Equal(t, int64(300<<10), res.Resumed)
			assert.Equal(t, int64(len(body)-300<<10), res.Received)
			got, err := os.ReadFile(dest)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(body, got))
			assert.NoFileExists(t, part)
			assert.NoFileExists(t, meta)

			reqs := fs.sent()
			last := reqs[len(reqs)-1]
			assert.Equal(t, "bytes=307200-", last.Header.Get("Range"))
			assert.Equal(t, `"v1"`, last.Header.Get("If-Range"))
			if redirect {
				assert.Empty(t, last.Header.Get("Authorization"))
			}
		})
	}
}

func TestDownloadStartsAgainWhenTheFileChanged(t *testing.T) {
	fs := newFiles(t)
	fs.put("f.bin", randomBytes(t, 64<<10))
	dest := filepath.Join(t.TempDir(), "f.bin")
	once, err := client.New(fs.url, client.Options{Token: "s3cret", NoResume: true, Attempts: 1})
	require.NoError(t, err)
	fs.cut = 10 << 10
	_, err = once.Download(testCtx(t), "f.bin", dest, client.DownloadOptions{})
	require.Error(t, err)

	changed := randomBytes(t, 50<<10)
	fs.put("f.bin", changed) // a new ETag
	res, err := filesClient(t, fs).Download(testCtx(t), "f.bin", dest, client.DownloadOptions{})
	require.NoError(t, err)
	assert.Zero(t, res.Resumed, "If-Range made it send the whole new file")
	assert.Equal(t, hexSHA(changed), res.SHA256)
	got, err := os.ReadFile(dest)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(changed, got))
}

func TestDownloadFailuresLeaveNothing(t *testing.T) {
	fs := newFiles(t)
	body := []byte("hello")
	fs.put("h.txt", body)
	c := filesClient(t, fs)
	dir := t.TempDir()

	_, err := c.Download(testCtx(t), "missing.txt", filepath.Join(dir, "m.txt"), client.DownloadOptions{})
	var e *client.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "not_found", e.Code)

	_, err = c.Download(testCtx(t), "h.txt", filepath.Join(dir, "h.txt"), client.DownloadOptions{SHA256: hexSHA([]byte("other"))})
	require.ErrorIs(t, err, client.ErrChecksum)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no file, .part or record left")
}

func TestDownloadOfAWholePartialFileFinishes(t *testing.T) {
	fs := newFiles(t)
	body := randomBytes(t, 32<<10)
	fs.put("f.bin", body)
	dest := filepath.Join(t.TempDir(), "f.bin")
	part, meta := client.PartPaths(dest)
	// Interrupted after the last byte, before the rename.
	require.NoError(t, os.WriteFile(part, body, 0o644))
	require.NoError(t, os.WriteFile(meta, []byte(`{"server":"`+fs.url+`","name":"f.bin","etag":"\"v1\""}`), 0o600))

	res, err := filesClient(t, fs).Download(testCtx(t), "f.bin", dest, client.DownloadOptions{SHA256: hexSHA(body)})
	require.NoError(t, err)
	assert.Equal(t, int64(len(body)), res.Resumed)
	assert.Zero(t, res.Received, "416: nothing more to send")
	assert.FileExists(t, dest)
	assert.NoFileExists(t, part)
	assert.NoFileExists(t, meta)
}

func TestDownloadDiscardsARangeOfAnotherVersion(t *testing.T) {
	// A server that ignores If-Range: its 206 carries the new ETag.
	body := randomBytes(t, 32<<10)
	var ranges []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		w.Header().Set("ETag", `"new"`)
		r.Header.Del("If-Range")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Options{NoResume: true, RetryWait: time.Millisecond})
	require.NoError(t, err)
	dest := filepath.Join(t.TempDir(), "f.bin")
	part, meta := client.PartPaths(dest)
	require.NoError(t, os.WriteFile(part, []byte("stale bytes of the old version"), 0o644))
	require.NoError(t, os.WriteFile(meta, []byte(`{"server":"`+srv.URL+`","name":"f.bin","etag":"\"old\""}`), 0o600))

	res, err := c.Download(testCtx(t), "f.bin", dest, client.DownloadOptions{})
	require.NoError(t, err)
	assert.Zero(t, res.Resumed)
	assert.Equal(t, hexSHA(body), res.SHA256)
	got, err := os.ReadFile(dest)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(body, got))
	assert.Equal(t, []string{"bytes=30-", ""}, ranges)
}
