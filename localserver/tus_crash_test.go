package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

// tusDo sends one tus request and returns its answer, body read.
func tusDo(t *testing.T, method, url string, hdr map[string]string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Tus-Resumable", "1.0.0")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	msg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Less(t, resp.StatusCode, 300, "%s %s: %d %s", method, url, resp.StatusCode, msg)
	return resp
}

func tusPatch(t *testing.T, url string, off int64, b []byte) *http.Response {
	t.Helper()
	return tusDo(t, http.MethodPatch, url, map[string]string{
		"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.FormatInt(off, 10),
	}, b)
}

// A server killed while a chunk's bytes are being written resumes, once
// restarted on the same directory, from the last chunk it answered, with
// its running hashes: the bytes of the chunk cut off are not counted, and
// the file it publishes has the whole file's SHA-256.
func TestTusKilledMidPatchResumesFromItsLastChunk(t *testing.T) {
	bin := buildServer(t)
	dir, spoolDir := filepath.Join(t.TempDir(), "uploads"), t.TempDir()
	const chunk = 4 << 20
	f := uploadtest.File{Name: "killed.bin", Size: 3 * chunk, Seed: 17}
	whole := f.Bytes()

	p := startProc(t, bin, dir, spoolDir)
	resp := tusDo(t, http.MethodPost, p.URL+"/tus/", map[string]string{
		"Upload-Length":   strconv.FormatInt(f.Size, 10),
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte(f.Name)),
	}, nil)
	loc, err := resp.Location()
	require.NoError(t, err)
	upload := loc.Path
	url := p.URL + upload
	tusPatch(t, url, 0, whole[:chunk])
	resp = tusPatch(t, url, chunk, whole[chunk:2*chunk])
	require.Equal(t, strconv.Itoa(2*chunk), resp.Header.Get("Upload-Offset"))

	// The third chunk is under way when the server dies: it has answered
	// 100 Continue, so the handler is reading the body, and has been sent
	// half of it.
	conn, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: t\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"+
		"Upload-Offset: %d\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", upload, 2*chunk, chunk)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = conn.Write(whole[2*chunk : 2*chunk+chunk/2])
	require.NoError(t, err)
	p.kill9(t)

	p = startProc(t, bin, dir, spoolDir)
	defer p.stop(t)
	url = p.URL + upload
	resp = tusDo(t, http.MethodHead, url, nil, nil)
	require.Equal(t, strconv.Itoa(2*chunk), resp.Header.Get("Upload-Offset"))
	resp = tusPatch(t, url, 2*chunk, whole[2*chunk:])
	assert.Equal(t, f.SHA256(), resp.Header.Get("Spillway-Sha256"))
	got, err := os.ReadFile(filepath.Join(dir, f.Name))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(whole, got), "the stored file differs from the one sent")
}
