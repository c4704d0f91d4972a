package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.Addr)
	assert.Equal(t, "./uploads", c.Directory)
	assert.Equal(t, int64(2<<20), c.Threshold)
	assert.Equal(t, int64(64<<20), c.MemoryBudget)
	assert.Zero(t, c.MaxUploadSize)
	assert.False(t, c.Overwrite)
	assert.Equal(t, os.FileMode(0o644), c.FileMode)
	assert.True(t, c.Fsync)
	assert.False(t, c.CaseSensitiveNames, "names that differ only in case are refused by default")
	assert.Equal(t, slog.LevelInfo, c.LogLevel)
	assert.Equal(t, 60*time.Second, c.ReadTimeout)
	assert.Equal(t, 64, c.MaxUploads)
	assert.Zero(t, c.MaxConnections, "derived from the open-file limit")
	assert.Empty(t, c.Token)
	assert.Empty(t, c.UploadSecret)
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	vars := env(map[string]string{
		"SPILLWAY_ADDR":                   "127.0.0.1:9000",
		"SPILLWAY_THRESHOLD":              "512k",
		"SPILLWAY_MAX_UPLOAD_SIZE":        "10GB",
		"SPILLWAY_MEMORY_BUDGET":          "16MiB",
		"SPILLWAY_OVERWRITE":              "true",
		"SPILLWAY_FSYNC":                  "false",
		"SPILLWAY_LOG_LEVEL":              "debug",
		"SPILLWAY_DIRECTORY":              "/srv/up",
		"SPILLWAY_SPOOL_DIR":              "/var/tmp",
		"SPILLWAY_READ_TIMEOUT":           "5s",
		"SPILLWAY_TOKEN":                  "t0k",
		"SPILLWAY_CORS_ORIGIN":            "*",
		"SPILLWAY_MAX_CONCURRENT_UPLOADS": "8",
		"SPILLWAY_UPLOAD_SECRET":          "from-the-environment",
		"SPILLWAY_FILE_MODE":              "0640",
		"SPILLWAY_CASE_SENSITIVE_NAMES":   "true",
		"SPILLWAY_MAX_CONNECTIONS":        "300",
	})
	c, err := parseConfig([]string{"--threshold", "1MiB", "--overwrite=false", "--addr=[::1]:0"}, vars, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "[::1]:0", c.Addr, "a flag overrides its variable")
	assert.Equal(t, int64(1<<20), c.Threshold)
	assert.False(t, c.Overwrite)
	assert.Equal(t, int64(10e9), c.MaxUploadSize)
	assert.Equal(t, int64(16<<20), c.MemoryBudget)
	assert.False(t, c.Fsync)
	assert.True(t, c.CaseSensitiveNames)
	assert.Equal(t, slog.LevelDebug, c.LogLevel)
	assert.Equal(t, "/srv/up", c.Directory)
	assert.Equal(t, "/var/tmp", c.SpoolDir)
	assert.Equal(t, 5*time.Second, c.ReadTimeout)
	assert.Equal(t, "t0k", c.Token)
	assert.Equal(t, "*", c.CORSOrigins)
	assert.Equal(t, 8, c.MaxUploads)
	assert.Equal(t, "from-the-environment", c.UploadSecret)
	assert.Equal(t, os.FileMode(0o640), c.FileMode)
	assert.Equal(t, 300, c.MaxConnections)

	c, err = parseConfig([]string{"--upload-secret", "from-the-command-line"}, vars, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "from-the-command-line", c.UploadSecret, "a flag overrides its variable")
}

func TestParseConfigErrorsNameTheSetting(t *testing.T) {
	_, err := parseConfig([]string{"--threshold", "2XB"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "threshold")
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_MEMORY_BUDGET": "lots"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_MEMORY_BUDGET")
	require.ErrorContains(t, err, "--memory-budget")
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_FSYNC": "maybe"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_FSYNC")
	_, err = parseConfig([]string{"stray"}, env(nil), io.Discard)
	require.Error(t, err)
	for _, mode := range []string{"rw-r--r--", "0o1644", "4755", "0888", "-1", "0244", "0077", ""} {
		_, err = parseConfig([]string{"--file-mode=" + mode}, env(nil), io.Discard)
		require.ErrorContains(t, err, "file-mode", "%q", mode)
	}
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_FILE_MODE": "0200"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_FILE_MODE")
	require.ErrorContains(t, err, "the owner must be able to read")
	for mode, want := range map[string]os.FileMode{"0600": 0o600, "640": 0o640, "0o755": 0o755, "0400": 0o400} {
		c, err := parseConfig([]string{"--file-mode", mode}, env(nil), io.Discard)
		require.NoError(t, err, mode)
		assert.Equal(t, want, c.FileMode, mode)
	}
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_UPLOAD_SECRET": "short"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_UPLOAD_SECRET")
	require.ErrorContains(t, err, "--upload-secret")
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_MAX_CONNECTIONS": "-1"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_MAX_CONNECTIONS")
	require.ErrorContains(t, err, "--max-connections")
}

type running struct {
	addr     string
	dir      string
	spoolDir string
	logs     *uploadtest.SyncBuffer
	stop     context.CancelFunc
	done     chan error
}

func start(t *testing.T, extra ...string) *running {
	t.Helper()
	r := &running{dir: filepath.Join(t.TempDir(), "uploads"), spoolDir: t.TempDir(), logs: &uploadtest.SyncBuffer{}, done: make(chan error, 1)}
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	ready := make(chan string, 1)
	args := append([]string{"--addr", "127.0.0.1:0", "--directory", r.dir, "--spool-dir", r.spoolDir}, extra...)
	go func() { r.done <- run(ctx, args, env(nil), r.logs, ready) }()
	select {
	case r.addr = <-ready:
	case err := <-r.done:
		require.FailNow(t, "server did not start", "%v\n%s", err, r.logs.String())
	}
	t.Cleanup(func() {
		stop()
		<-r.done
		uploadtest.RequireEmptyDir(t, r.spoolDir)
	})
	return r
}

func (r *running) wait(t *testing.T) {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		require.NoError(t, err)
		r.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		require.FailNow(t, "server did not stop")
	}
}

func TestServeUploadAndStop(t *testing.T) {
	r := start(t)
	f := uploadtest.File{Name: "hello.bin", Seed: 1, Size: 3 << 20}
	req, err := http.NewRequest(http.MethodPut, "http://"+r.addr+"/files/"+f.Name, f.Reader())
	require.NoError(t, err)
	req.ContentLength = f.Size
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var got wire.UploadResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, wire.SpoolDisk, got.Files[0].Spool)
	uploadtest.RequireFile(t, f, filepath.Join(r.dir, f.Name))
	http.DefaultClient.CloseIdleConnections()
	r.wait(t)
	logs := r.logs.String()
	assert.Contains(t, logs, "config.threshold=2MiB")
	assert.Contains(t, logs, "method=PUT path=/files/hello.bin status=201")
	assert.Contains(t, logs, "spool_files_open=0")
}

// beginUpload starts a 10 MiB raw upload, waits for the server's
// "100 Continue" (proof that the handler is reading the body into a spool
// file), and sends the first MiB.
func beginUpload(t *testing.T, addr, name string) (net.Conn, *bufio.Reader, uploadtest.File) {
	t.Helper()
	f := uploadtest.File{Name: name, Seed: 5, Size: 10 << 20}
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", name, f.Size)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = br.ReadString('\n')
	require.NoError(t, err)
	_, err = io.CopyN(conn, f.Reader(), 1<<20)
	require.NoError(t, err)
	return conn, br, f
}

func TestShutdownGraceLetsUploadsFinish(t *testing.T) {
	r := start(t, "--shutdown-timeout", "30s")
	conn, br, f := beginUpload(t, r.addr, "graceful.bin")
	r.stop()
	// The rest of the body still arrives and is stored.
	rest := f.Reader()
	_, err := io.CopyN(io.Discard, rest, 1<<20)
	require.NoError(t, err)
	_, err = io.Copy(conn, rest)
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	r.wait(t)
	uploadtest.RequireFile(t, f, filepath.Join(r.dir, f.Name))
}

func TestShutdownAbortsUploadsAfterGrace(t *testing.T) {
	r := start(t, "--shutdown-timeout", "100ms")
	beginUpload(t, r.addr, "aborted.bin")
	r.wait(t)
	uploadtest.RequireEmptyDir(t, r.spoolDir)
	uploadtest.RequireEmptyDir(t, r.dir)
	assert.Contains(t, r.logs.String(), "aborting in-flight uploads")
}

func TestStartupSweepsOrphans(t *testing.T) {
	spoolDir := t.TempDir()
	orphan := filepath.Join(spoolDir, "spillway-DEAD.spool")
	require.NoError(t, writeFile(orphan))
	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	logs := &uploadtest.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--directory", t.TempDir(), "--spool-dir", spoolDir}, env(nil), logs, ready)
	}()
	<-ready
	stop()
	require.NoError(t, <-done)
	uploadtest.RequireEmptyDir(t, spoolDir)
	assert.Contains(t, logs.String(), "orphans_swept=1")
}

func writeFile(path string) error {
	return os.WriteFile(path, []byte("left by a crash"), 0o600)
}

func TestServeToS3Bucket(t *testing.T) {
	if testing.Short() {
		t.Skip("runs versitygw")
	}
	gw := testservers.StartS3(t)
	for _, kv := range gw.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // the SDK reads its configuration from the process
	}
	r := start(t, "--bucket", gw.Bucket, "--prefix", "dev/")
	f := uploadtest.File{Name: "to-s3.bin", Seed: 3, Size: 3 << 20}
	req, err := http.NewRequest(http.MethodPut, "http://"+r.addr+"/files/"+f.Name, f.Reader())
	require.NoError(t, err)
	req.ContentLength = f.Size
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	uploadtest.RequireFile(t, f, gw.ObjectPath("dev/"+f.Name))

	// Downloads are redirected to the bucket, as on the deployed function.
	resp, err = client.Get("http://" + r.addr + "/files/" + f.Name)
	require.NoError(t, err)
	uploadtest.RequireContent(t, f, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, gw.Endpoint[len("http://"):], resp.Request.URL.Host)
	r.wait(t)
	assert.Contains(t, r.logs.String(), "config.store=s3://spillway-test/dev/")
}
