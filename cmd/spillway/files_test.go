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
)

// store is a test server with the routes ls, get and rm use, and the
// token rule: GET /files in pages, GET and DELETE /files/{name}.
type store struct {
	mu    sync.Mutex
	files map[string][]byte
	pages int
}

func newStore(t *testing.T, files map[string]string) (*store, string) {
	s := &store{files: map[string][]byte{}}
	for k, v := range files {
		s.files[k] = []byte(v)
	}
	notFound := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no file or route has this path; GET /files lists the stored files","request_id":"r2"}}`)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"a valid bearer token is required; send it as Authorization: Bearer <token>","request_id":"r3"}}`)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		name, isFile := strings.CutPrefix(r.URL.Path, "/files/")
		switch {
		case r.URL.Path == "/files":
			s.pages++
			q := r.URL.Query()
			limit := 1000
			if q.Has("limit") {
				limit, _ = strconv.Atoi(q.Get("limit"))
			}
			after, _ := base64.RawURLEncoding.DecodeString(q.Get("cursor"))
			var names []string
			for n := range s.files {
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
				list = append(list, map[string]any{"name": n, "size": len(s.files[n]), "modified": time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)})
			}
			if list != nil {
				page["files"] = list
			}
			_ = json.NewEncoder(w).Encode(page)
		case isFile && r.Method == http.MethodGet:
			body, ok := s.files[name]
			if !ok {
				notFound(w)
				return
			}
			w.Header().Set("ETag", `"e1"`)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		case isFile && r.Method == http.MethodDelete:
			if _, ok := s.files[name]; !ok {
				notFound(w)
				return
			}
			delete(s.files, name)
			w.WriteHeader(http.StatusNoContent)
		default:
			notFound(w)
		}
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func TestLs(t *testing.T) {
	s, url := newStore(t, map[string]string{"a.txt": "a", "logs/1.log": strings.Repeat("x", 1536), "logs/2.log": "", "logs/3.log": "333"})
	var out, errOut bytes.Buffer

	code := ls(t.Context(), []string{"--page-size", "2", "logs/"}, &out, &errOut, env(map[string]string{"SPILLWAY_URL": url, "SPILLWAY_TOKEN": "s3cret"}))
	require.Equal(t, exitOK, code, errOut.String())
	assert.Equal(t, "   1.5 KiB  2026-12-06 01:02:03  logs/1.log\n"+
		"       0 B  2026-12-06 01:02:03  logs/2.log\n"+
		"       3 B  2026-12-06 01:02:03  logs/3.log\n", out.String())
	assert.Equal(t, "3 files, 1.5 KiB\n", errOut.String())
	assert.Equal(t, 2, s.pages, "two pages of at most 2")

	out.Reset()
	errOut.Reset()
	code = ls(t.Context(), []string{"--json", "--url", url}, &out, &errOut, env(map[string]string{"SPILLWAY_TOKEN": "s3cret"}))
	require.Equal(t, exitOK, code, errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4)
	var f struct {
		Name     string    `json:"name"`
		Size     int64     `json:"size"`
		Modified time.Time `json:"modified"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &f))
	assert.Equal(t, "logs/1.log", f.Name)
	assert.Equal(t, int64(1536), f.Size)
	assert.Empty(t, errOut.String(), "--json prints no summary")

	errOut.Reset()
	code = ls(t.Context(), []string{"--url", url}, &out, &errOut, env(nil))
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut.String(), "401 Unauthorized (unauthorized)")

	for _, args := range [][]string{{}, {"a", "b", "--url", url}, {"--page-size", "1001", "--url", url}} {
		errOut.Reset()
		assert.Equal(t, exitUsage, ls(t.Context(), args, &out, &errOut, env(nil)), "%q", args)
	}
	errOut.Reset()
	assert.Equal(t, exitOK, ls(t.Context(), []string{"-h"}, &out, &errOut, env(nil)))
	assert.Contains(t, errOut.String(), "--json")
	assert.NotContains(t, errOut.String(), "page-size", "a flag for tests is not shown")
}

func TestGet(t *testing.T) {
	_, url := newStore(t, map[string]string{"dir/report.txt": "the report"})
	e := env(map[string]string{"SPILLWAY_URL": url, "SPILLWAY_TOKEN": "s3cret"})
	sum := sha256.Sum256([]byte("the report"))
	dir := t.TempDir()
	var errOut bytes.Buffer

	code := get(t.Context(), []string{"dir/report.txt", dir, "--sha256", hex.EncodeToString(sum[:])}, &errOut, e)
	require.Equal(t, exitOK, code, errOut.String())
	b, err := os.ReadFile(filepath.Join(dir, "report.txt"))
	require.NoError(t, err)
	assert.Equal(t, "the report", string(b))
	assert.Contains(t, errOut.String(), "sha256 "+hex.EncodeToString(sum[:])+" (matches --sha256)")

	errOut.Reset()
	code = get(t.Context(), []string{"dir/report.txt", dir}, &errOut, e)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut.String(), "exists; remove it or give --force")

	errOut.Reset()
	other := sha256.Sum256([]byte("other"))
	code = get(t.Context(), []string{"--force", "--sha256", hex.EncodeToString(other[:]), "dir/report.txt", dir}, &errOut, e)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut.String(), "do not match the expected SHA-256")
	b, err = os.ReadFile(filepath.Join(dir, "report.txt"))
	require.NoError(t, err)
	assert.Equal(t, "the report", string(b), "a bad download replaces nothing")

	errOut.Reset()
	code = get(t.Context(), []string{"missing.txt", filepath.Join(dir, "m.txt")}, &errOut, e)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut.String(), "404 Not Found (not_found)")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing left but the first download")

	for _, args := range [][]string{{}, {"a", "b", "c"}, {"a", "--sha256", "xyz"}} {
		assert.Equal(t, exitUsage, get(t.Context(), args, &errOut, e), "%q", args)
	}
}

func TestRm(t *testing.T) {
	s, url := newStore(t, map[string]string{"a.txt": "a", "b/c.txt": "c"})
	e := env(map[string]string{"SPILLWAY_URL": url, "SPILLWAY_TOKEN": "s3cret"})
	var errOut bytes.Buffer

	code := rm(t.Context(), []string{"a.txt", "b/c.txt"}, &errOut, e)
	require.Equal(t, exitOK, code, errOut.String())
	assert.Equal(t, "removed a.txt\nremoved b/c.txt\n", errOut.String())
	assert.Empty(t, s.files)

	errOut.Reset()
	code = rm(t.Context(), []string{"a.txt"}, &errOut, e)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut.String(), "delete a.txt: 404 Not Found (not_found)")

	assert.Equal(t, exitUsage, rm(t.Context(), []string{"--url", url}, &errOut, e))
}

func TestDispatchAndPushURL(t *testing.T) {
	var out bytes.Buffer
	// The commands are reached through run, as main calls it.
	assert.Equal(t, exitUsage, run(t.Context(), []string{"rm"}, &out, env(nil), false))
	assert.Contains(t, out.String(), "spillway rm: want at least one NAME (spillway rm -h for help)")

	s, url := newServer(t)
	root := tree(t)
	out.Reset()
	code := run(t.Context(), []string{"push", filepath.Join(root, "a.txt"), "--url", url}, &out, env(nil), false)
	require.Equal(t, exitOK, code, out.String())
	out.Reset()
	code = run(t.Context(), []string{"push", "--prefix", "env/", filepath.Join(root, "sub")}, &out, env(map[string]string{"SPILLWAY_URL": url}), false)
	require.Equal(t, exitOK, code, out.String())
	assert.Equal(t, []string{"a.txt", "env/b.txt", "env/deep/c.txt"}, s.names())

	for _, args := range [][]string{
		{"push", filepath.Join(root, "a.txt")},                    // no server at all
		{"push", "--url", url, filepath.Join(root, "a.txt"), url}, // the server twice
		{"push", "--url", url},                                    // no file
	} {
		out.Reset()
		assert.Equal(t, exitUsage, run(t.Context(), args, &out, env(nil), false), "%q: %s", args, out.String())
	}
}
