package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// running is the local server's run in a goroutine of the test.
type running struct {
	*testservers.InProcess
	dir      string
	spoolDir string
	logs     *uploadtest.SyncBuffer
}

// start runs the local server on a free loopback port and directories of
// its own, with extra arguments. When the test ends it is stopped, and its
// spool dir must be empty.
func start(t *testing.T, extra ...string) *running {
	t.Helper()
	r := &running{dir: filepath.Join(t.TempDir(), "uploads"), spoolDir: t.TempDir(), logs: &uploadtest.SyncBuffer{}}
	t.Cleanup(func() { uploadtest.RequireEmptyDir(t, r.spoolDir) })
	args := append([]string{"--addr", "127.0.0.1:0", "--directory", r.dir, "--spool-dir", r.spoolDir}, extra...)
	r.InProcess = testservers.RunInProcess(t, r.logs, func(ctx context.Context, ready chan<- string) error {
		return run(ctx, args, env(nil), r.logs, ready)
	})
	return r
}

func TestServeUploadAndStop(t *testing.T) {
	r := start(t)
	f := uploadtest.File{Name: "hello.bin", Seed: 1, Size: 3 << 20}
	req, err := http.NewRequest(http.MethodPut, "http://"+r.Addr+"/files/"+f.Name, f.Reader())
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
	r.Wait(t)
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
	conn, br, f := beginUpload(t, r.Addr, "graceful.bin")
	r.Stop()
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
	r.Wait(t)
	uploadtest.RequireFile(t, f, filepath.Join(r.dir, f.Name))
}

func TestShutdownAbortsUploadsAfterGrace(t *testing.T) {
	r := start(t, "--shutdown-timeout", "100ms")
	beginUpload(t, r.Addr, "aborted.bin")
	r.Wait(t)
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
	req, err := http.NewRequest(http.MethodPut, "http://"+r.Addr+"/files/"+f.Name, f.Reader())
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
	resp, err = client.Get("http://" + r.Addr + "/files/" + f.Name)
	require.NoError(t, err)
	uploadtest.RequireContent(t, f, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, gw.Endpoint[len("http://"):], resp.Request.URL.Host)
	r.Wait(t)
	assert.Contains(t, r.logs.String(), "config.store=s3://spillway-test/dev/")
}
