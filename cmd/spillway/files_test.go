package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLs(t *testing.T) {
	s, url := newFake(t, "s3cret", map[string]string{"a.txt": "a", "logs/1.log": strings.Repeat("x", 1536), "logs/2.log": "", "logs/3.log": "333"})
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
	_, url := newFake(t, "s3cret", map[string]string{"dir/report.txt": "the report"})
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
	s, url := newFake(t, "s3cret", map[string]string{"a.txt": "a", "b/c.txt": "c"})
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

	s, url := newFake(t, "", nil)
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
