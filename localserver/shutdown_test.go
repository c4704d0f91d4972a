package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

// main_test.go covers shutdown in-process, for one upload, by cancelling
// run's context. These send a real SIGTERM to the real binary while three
// uploads are in flight.

var shuttingDownRE = regexp.MustCompile(`msg="shutting down"`)

// openThree starts three 10 MiB raw uploads, each with its first MiB sent
// and its spool file open.
func openThree(t *testing.T, p *proc) ([]uploadtest.File, []net.Conn, []*bufio.Reader, []io.Reader) {
	t.Helper()
	const n = 3
	files := make([]uploadtest.File, n)
	conns := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	rests := make([]io.Reader, n)
	for i := range n {
		files[i] = uploadtest.File{Name: fmt.Sprintf("inflight-%d.bin", i), Seed: uint64(80 + i), Size: 10 << 20}
		conns[i], brs[i], rests[i] = openUpload(t, p.Addr, files[i], 1<<20)
	}
	require.Len(t, spoolFiles(t, p.spoolDir), n)
	return files, conns, brs, rests
}

func TestSigtermGraceLetsConcurrentUploadsFinish(t *testing.T) {
	bin := buildServer(t)
	p := startProc(t, bin, filepath.Join(t.TempDir(), "uploads"), t.TempDir(), "--shutdown-timeout", "30s")
	files, conns, brs, rests := openThree(t, p)

	start := time.Now()
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
	// The rest of each body goes only once the server is shutting down.
	p.Log.WaitFor(t, shuttingDownRE, 10*time.Second, p.Exited())

	statuses := make([]int, len(files))
	bodies := make([][]byte, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i := range files {
		wg.Go(func() {
			if _, err := io.Copy(conns[i], rests[i]); err != nil {
				errs[i] = err
				return
			}
			conns[i].SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(brs[i], nil)
			if err != nil {
				errs[i] = err
				return
			}
			bodies[i], errs[i] = io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i := range files {
		require.NoError(t, errs[i], files[i].Name)
		require.Equal(t, http.StatusCreated, statuses[i], "%s: %s", files[i].Name, bodies[i])
	}
	p.waitExit(t, 30*time.Second)
	require.NoError(t, p.Err(), "exit status; log:\n%s", p.Log.String())
	t.Logf("SIGTERM with 3 uploads in flight: all 201, exited %s after the signal", time.Since(start).Round(time.Millisecond))

	for _, f := range files {
		uploadtest.RequireFile(t, f, filepath.Join(p.dir, f.Name))
	}
	uploadtest.RequireDirHolds(t, p.dir, files[0].Name, files[1].Name, files[2].Name)
	uploadtest.RequireEmptyDir(t, p.spoolDir)
	logs := p.Log.String()
	assert.Contains(t, logs, "spool_files_open=0")
	assert.NotContains(t, logs, "aborting in-flight uploads")
}

func TestSigtermAfterTinyGraceAbortsConcurrentUploads(t *testing.T) {
	bin := buildServer(t)
	p := startProc(t, bin, filepath.Join(t.TempDir(), "uploads"), t.TempDir(), "--shutdown-timeout", "200ms")
	files, conns, brs, _ := openThree(t, p)

	start := time.Now()
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGTERM))
	// The clients stall: the grace runs out and the server must cut them.
	p.waitExit(t, 30*time.Second)
	require.NoError(t, p.Err(), "exit status; log:\n%s", p.Log.String())
	t.Logf("SIGTERM with 3 stalled uploads and a 200ms grace: exited %s after the signal", time.Since(start).Round(time.Millisecond))

	for i := range files {
		// Whatever the client sees (a cut connection, or an error answer),
		// it is never a 201.
		conns[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(brs[i], nil)
		if err == nil {
			resp.Body.Close()
			assert.NotEqual(t, http.StatusCreated, resp.StatusCode, files[i].Name)
			t.Logf("%s: answered %d", files[i].Name, resp.StatusCode)
		} else {
			t.Logf("%s: connection cut (%v)", files[i].Name, err)
		}
	}
	uploadtest.RequireEmptyDir(t, p.spoolDir)
	uploadtest.RequireDirHolds(t, p.dir)
	logs := p.Log.String()
	assert.Contains(t, logs, "aborting in-flight uploads")
	assert.Contains(t, logs, "spool_files_open=0")
	assert.Contains(t, logs, "cleanup_failures=0")
}
