package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// TestLargeUploadsKeepMemoryFlat runs the real binary, as `make run` does,
// and uploads 1 GiB raw and 1 GiB multipart. Both must be stored
// byte-identical while the server's peak RSS (VmHWM) stays under 32 MiB.
func TestLargeUploadsKeepMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 2 GiB; skipped in -short mode")
	}
	const size = 1 << 30
	const maxRSS = 32 << 20
	srv := startBinary(t)

	raw := uploadtest.File{Name: "raw.bin", Seed: 11, Size: size}
	req, err := http.NewRequest(http.MethodPut, srv.url+"/files/raw.bin", raw.Reader())
	require.NoError(t, err)
	req.ContentLength = size
	requireStored(t, req, raw, filepath.Join(srv.dir, raw.Name))

	mp := uploadtest.File{Name: "multipart.bin", Seed: 12, Size: size}
	ct, body, n := uploadtest.Multipart([]uploadtest.File{mp})
	req, err = http.NewRequest(http.MethodPost, srv.url+"/files", body)
	require.NoError(t, err)
	req.ContentLength = n
	req.Header.Set("Content-Type", ct)
	requireStored(t, req, mp, filepath.Join(srv.dir, mp.Name))

	hwm := vmHWM(t, srv.cmd.Process.Pid)
	t.Logf("server peak RSS (VmHWM) after 1 GiB raw + 1 GiB multipart: %.1f MiB", float64(hwm)/(1<<20))
	assert.Less(t, hwm, int64(maxRSS), "peak RSS")
	srv.stop(t)
}

func requireStored(t *testing.T, req *http.Request, f uploadtest.File, path string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var got wire.UploadResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Len(t, got.Files, 1)
	assert.Equal(t, f.Size, got.Files[0].Size)
	assert.Equal(t, wire.SpoolDisk, got.Files[0].Spool)
	assert.Equal(t, f.SHA256(), got.Files[0].SHA256)
	uploadtest.RequireFile(t, f, path)
}

type binaryServer struct {
	cmd      *exec.Cmd
	url      string
	dir      string
	spoolDir string
	exited   chan error
}

// startBinary builds localserver and starts it on a free loopback port.
func startBinary(t *testing.T, args ...string) *binaryServer {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "localserver")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	s := &binaryServer{dir: filepath.Join(t.TempDir(), "uploads"), spoolDir: t.TempDir(), exited: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--directory", s.dir, "--spool-dir", s.spoolDir}, args...)...)
	s.cmd.Env = os.Environ()
	s.cmd.SysProcAttr = testservers.DieWithParent()
	stderr, err := s.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
	lines := bufio.NewScanner(stderr)
	urlRE := regexp.MustCompile(`url=(http://\S+)`)
	for lines.Scan() {
		if m := urlRE.FindStringSubmatch(lines.Text()); m != nil {
			s.url = m[1]
			break
		}
	}
	require.NotEmpty(t, s.url, "no listening line from the server")
	go func() {
		io.Copy(io.Discard, stderr)
		s.exited <- s.cmd.Wait()
	}()
	return s
}

func (s *binaryServer) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-s.exited:
		require.NoError(t, err)
		s.exited <- nil
	case <-time.After(time.Minute):
		require.FailNow(t, "server did not exit after SIGTERM")
	}
	uploadtest.RequireEmptyDir(t, s.spoolDir)
}

// vmHWM reads a process's peak resident set size from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.FailNow(t, "no VmHWM in /proc status")
	return 0
}
