package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is the upload API of the README in memory, for the commands: PUT
// /files/{name} refusing names already taken, HEAD with the SHA-256 when
// asked for (RFC 9530), GET /files in pages, GET and DELETE /files/{name}.
// With a token, every request must carry it. The client package's tests
// cover the multipart contract.
type fake struct {
	token string
	mu    sync.Mutex
	files map[string][]byte
	auth  []string // each PUT's Authorization
	pages int      // the pages of GET /files answered
	hook  func()   // runs before a PUT is handled
}

// newFake serves a fake holding files, and gives the commands a cache of
// their own.
func newFake(t *testing.T, token string, files map[string]string) (*fake, string) {
	f := &fake{token: token, files: map[string][]byte{}}
	for k, v := range files {
		f.files[k] = []byte(v)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	return f, srv.URL
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		writeError(w, http.StatusUnauthorized, `{"error":{"code":"unauthorized","message":"a valid bearer token is required; send it as Authorization: Bearer <token>","request_id":"r3"}}`)
		return
	}
	name, isFile := strings.CutPrefix(r.URL.Path, "/files/")
	switch {
	case r.URL.Path == "/files":
		f.list(w, r)
	case isFile && r.Method == http.MethodPut:
		f.put(w, r, name)
	case isFile && r.Method == http.MethodHead:
		f.head(w, r, name)
	case isFile && r.Method == http.MethodGet:
		f.get(w, r, name)
	case isFile && r.Method == http.MethodDelete:
		f.delete(w, name)
	default:
		notFound(w)
	}
}

func writeError(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, `{"error":{"code":"not_found","message":"no file or route has this path; GET /files lists the stored files","request_id":"r2"}}`)
}

func (f *fake) put(w http.ResponseWriter, r *http.Request, name string) {
	if f.hook != nil {
		f.hook()
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	if _, taken := f.files[name]; taken {
		writeError(w, http.StatusConflict, `{"error":{"code":"exists","message":"a file with this name already exists; choose another name or overwrite where the server allows it","request_id":"r1"}}`)
		return
	}
	f.files[name] = body
	sum := sha256.Sum256(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"files": []map[string]any{
		{"name": name, "size": len(body), "sha256": hex.EncodeToString(sum[:]), "spool": "memory"}}})
}

func (f *fake) head(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	body, found := f.files[name]
	f.mu.Unlock()
	if !found {
		notFound(w)
		return
	}
	if r.Header.Get("Want-Repr-Digest") != "" {
		sum := sha256.Sum256(body)
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
}

func (f *fake) get(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	body, ok := f.files[name]
	f.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	w.Header().Set("ETag", `"e1"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (f *fake) delete(w http.ResponseWriter, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		notFound(w)
		return
	}
	delete(f.files, name)
	w.WriteHeader(http.StatusNoContent)
}

func (f *fake) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pages++
	q := r.URL.Query()
	limit := 1000
	if q.Has("limit") {
		limit, _ = strconv.Atoi(q.Get("limit"))
	}
	after, _ := base64.RawURLEncoding.DecodeString(q.Get("cursor"))
	var names []string
	for n := range f.files {
		if strings.HasPrefix(n, q.Get("prefix")) && n > string(after) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	page := map[string]any{"files": []any{}}
	var list []any
	for i, n := range names {
		if i == limit {
			page["next_cursor"] = base64.RawURLEncoding.EncodeToString([]byte(names[i-1]))
			break
		}
		list = append(list, map[string]any{"name": n, "size": len(f.files[n]), "modified": time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)})
	}
	if list != nil {
		page["files"] = list
	}
	_ = json.NewEncoder(w).Encode(page)
}

// names lists the stored names, sorted.
func (f *fake) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n []string
	for k := range f.files {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
