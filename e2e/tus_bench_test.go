package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// TestTusBenchmark measures tus against a raw PUT of the same file, by
// hand (docs/BENCHMARKS.md says with which command):
//
//	SPILLWAY_TUS_BENCH=1 go test -count=1 -v -run TestTusBenchmark -timeout 30m ./e2e/
//
// It is not part of make test: it writes 1 GiB several times over.
func TestTusBenchmark(t *testing.T) {
	if os.Getenv("SPILLWAY_TUS_BENCH") == "" {
		t.Skip("set SPILLWAY_TUS_BENCH=1 to measure tus against a raw PUT (1 GiB, several minutes)")
	}
	size := int64(1 << 30)
	if v := os.Getenv("SPILLWAY_TUS_BENCH_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err)
		size = n << 20
	}
	f := uploadtest.File{Name: "bench.bin", Size: size, Seed: 1}
	src := filepath.Join(t.TempDir(), "bench.bin")
	sum := f.WriteFile(t, src)

	// The local server: a raw PUT, then tus in one PATCH and in 64 MiB
	// PATCHes, each against a fresh server so that each peak RSS is its own.
	for _, run := range []struct {
		name  string
		chunk int64 // 0: a raw PUT
	}{{"raw PUT", 0}, {"tus, one PATCH", size}, {"tus, 64 MiB PATCHes", 64 << 20}, {"raw PUT again", 0}} {
		tg := startDirTarget(t)
		start := time.Now()
		var requests int
		if run.chunk == 0 {
			requests = 1
			fh, err := os.Open(src)
			require.NoError(t, err)
			req, err := http.NewRequest(http.MethodPut, tg.srv.URL+"/files/"+f.Name, fh)
			require.NoError(t, err)
			req.ContentLength = size
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := tg.api.hc.Do(req)
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fh.Close()
			require.Equal(t, http.StatusCreated, resp.StatusCode)
		} else {
			requests = tusSend(t, tg, src, f.Name, size, run.chunk, sum)
		}
		elapsed := time.Since(start)
		rss := testservers.PeakRSS(t, tg.srv.Pid())
		t.Logf("SUMMARY local %-22s %d requests, %.2f s, %.0f MiB/s, server peak RSS %.1f MiB",
			run.name, requests, elapsed.Seconds(), mib(size)/elapsed.Seconds(), mib(rss))
		tg.finish(t, f.Name)
	}

	if os.Getenv("SPILLWAY_TUS_BENCH_LOCAL") != "" {
		return
	}
	// The function under the Function URL emulator, S3 (versitygw) behind
	// a proxy that counts its requests, in 4 MiB chunks.
	gw := testservers.StartS3(t)
	counter := &countingProxy{counts: map[string]int{}}
	gwURL, err := url.Parse(gw.Endpoint)
	require.NoError(t, err)
	counter.proxy = httputil.NewSingleHostReverseProxy(gwURL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: counter}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tg := &target{kind: "function", gw: gw, spoolDir: t.TempDir(), bootstrap: bootstrapBin(t)}
	env := append(testservers.CleanEnv(), gw.Env()...)
	env = append(env, "AWS_ENDPOINT_URL_S3=http://"+ln.Addr().String())
	tg.srv = startServer(t, env, "--function", tg.bootstrap, "--rie", testservers.Tool(t, testservers.RIE),
		"--bucket", gw.Bucket, "--spool-dir", tg.spoolDir, "--token", token)
	tg.api = newAPIClient(t, tg.srv.URL, token)
	counter.reset()
	start := time.Now()
	requests := tusSend(t, tg, src, f.Name, size, tusChunk, sum)
	elapsed := time.Since(start)
	total, byMethod := counter.snapshot()
	t.Logf("SUMMARY function tus, 4 MiB PATCHes: %d requests, %.2f s, %.1f MiB/s, %d S3 requests (%.2f per MiB: %s), function peak RSS %.1f MiB",
		requests, elapsed.Seconds(), mib(size)/elapsed.Seconds(), total, float64(total)/mib(size), byMethod,
		mib(testservers.PeakRSS(t, descendantRunning(t, tg.bootstrap, tg.srv.Pid()))))
	tg.finish(t, f.Name)
}

// tusSend uploads src with tus in chunks of chunk bytes and returns how
// many requests it took.
func tusSend(t *testing.T, tg *target, src, name string, size, chunk int64, sum string) int {
	t.Helper()
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte(name))
	resp := tusReq(t, tg, http.MethodPost, "/tus/", nil, 0, "Upload-Length", strconv.FormatInt(size, 10), "Upload-Metadata", meta)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := resp.Header.Get("Location")
	fh, err := os.Open(src)
	require.NoError(t, err)
	defer fh.Close()
	requests := 1
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		// A LimitedReader over the file, so that the client sends it with
		// sendfile, as it sends the raw PUT's *os.File: the comparison is
		// of the servers, not of two ways of copying in the client.
		_, err := fh.Seek(off, io.SeekStart)
		require.NoError(t, err)
		resp = tusReq(t, tg, http.MethodPatch, loc, io.LimitReader(fh, n), n,
			"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.FormatInt(off, 10))
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "PATCH at %d", off)
		requests++
	}
	require.Equal(t, sum, resp.Header.Get("Spillway-Sha256"))
	return requests
}

type countingProxy struct {
	proxy  *httputil.ReverseProxy
	mu     sync.Mutex
	counts map[string]int
}

func (c *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.Method
	switch q := r.URL.Query(); {
	case q.Has("partNumber"):
		op = "UploadPart"
	case q.Has("uploads"):
		op = "CreateMultipartUpload"
	case q.Has("uploadId") && r.Method == http.MethodPost:
		op = "CompleteMultipartUpload"
	case r.Header.Get("X-Amz-Copy-Source") != "":
		op = "Copy"
	}
	c.mu.Lock()
	c.counts[op]++
	c.mu.Unlock()
	c.proxy.ServeHTTP(w, r)
}

func (c *countingProxy) reset() {
	c.mu.Lock()
	clear(c.counts)
	c.mu.Unlock()
}

func (c *countingProxy) snapshot() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	var parts []string
	for k, v := range c.counts {
		total += v
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	return total, strings.Join(parts, ", ")
}
