package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"spillway/internal/testservers"
	"spillway/wire"
)

var sweptRE = regexp.MustCompile(`msg=swept expired_removed=(\d+) uploads_removed=0`)

// With --retention, the server sweeps at start and then periodically:
// files older than the retention go (logged and counted), newer ones stay
// with their expiry in the listing, and the sweeper stops with the server.
func TestRetentionSweepsExpiredFiles(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	dir := filepath.Join(t.TempDir(), "uploads")
	old, recent := time.Now().Add(-2*time.Hour).Truncate(time.Second), time.Now().Add(-10*time.Minute).Truncate(time.Second)
	for name, mtime := range map[string]time.Time{"old.txt": old, "sub/old.bin": old, "new.txt": recent} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
		require.NoError(t, os.Chtimes(p, mtime, mtime))
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	logs := &testservers.Log{}
	ready, done, exited := make(chan string, 1), make(chan error, 1), make(chan struct{})
	go func() {
		defer close(exited)
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--directory", dir, "--spool-dir", t.TempDir(), "--retention", "1h"}, env(nil), logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case <-exited:
		require.FailNow(t, "server did not start", "%v\n%s", <-done, logs.String())
	}
	m := logs.WaitFor(t, sweptRE, 30*time.Second, exited)
	assert.Equal(t, "2", m[1])
	assert.NoFileExists(t, filepath.Join(dir, "old.txt"))
	assert.NoDirExists(t, filepath.Join(dir, "sub"), "the folder the sweep emptied goes too")
	assert.FileExists(t, filepath.Join(dir, "new.txt"))

	status, body := get(t, "http://"+addr+"/files", "")
	require.Equal(t, http.StatusOK, status, body)
	var page wire.ListResponse
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Len(t, page.Files, 1)
	assert.Equal(t, "new.txt", page.Files[0].Name)
	assert.Equal(t, recent.Add(time.Hour).UTC(), page.Files[0].Expires)

	status, body = get(t, "http://"+addr+"/metrics", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "spillway_retention_removed_total 2")

	stop()
	require.NoError(t, <-done)
	assert.Regexp(t, `msg=stopped`, logs.String())
}

func TestSweepEvery(t *testing.T) {
	assert.Equal(t, 10*time.Minute, sweepEvery(0))
	assert.Equal(t, 10*time.Minute, sweepEvery(30*24*time.Hour))
	assert.Equal(t, 6*time.Minute, sweepEvery(time.Hour))
	assert.Equal(t, time.Second, sweepEvery(time.Second))
}
