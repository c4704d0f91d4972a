package api_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"spillway/api"
	"spillway/internal/apitest"
	"spillway/internal/uploadtest"
	"spillway/spool"
)

// benchHandler is the handler as the local server builds it (default spool
// settings, a directory store without fsync, a text logger that formats
// every line), writing to a directory the benchmark empties as it goes.
func benchHandler(b *testing.B) (http.Handler, string) {
	return benchHandlerTimeout(b, 0)
}

// benchHandlerTimeout is benchHandler with a read timeout, which the local
// server sets (60 s by default) and which costs a deadline per read.
func benchHandlerTimeout(b *testing.B, readTimeout time.Duration) (http.Handler, string) {
	b.Helper()
	h := apitest.New(b, spool.DefaultConfig(), api.Config{
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		ReadTimeout: readTimeout,
	})
	return h, h.Dir
}

// benchBaseline is the reference for small uploads: a handler that copies
// the body straight into a new file with a pooled 256 KiB buffer.
func benchBaseline(b *testing.B) (http.Handler, string) {
	b.Helper()
	dir := b.TempDir()
	pool := sync.Pool{New: func() any { buf := make([]byte, 256<<10); return &buf }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.OpenFile(filepath.Join(dir, filepath.Base(r.URL.Path)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		bufp := pool.Get().(*[]byte)
		_, err = io.CopyBuffer(f, r.Body, *bufp)
		pool.Put(bufp)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}), dir
}

// BenchmarkHandlerPut sends small raw PUTs (1 KiB, 64 KiB: both stay in
// memory) through the whole handler in process, each under a new name, and
// the same through the baseline that writes straight to a file. allocs/op
// is the figure to watch; the stored files are removed every 1024 uploads,
// outside the timer.
func BenchmarkHandlerPut(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		data := uploadtest.File{Seed: 3, Size: int64(size)}.Bytes()
		for _, target := range []struct {
			name string
			new  func(*testing.B) (http.Handler, string)
		}{
			{"spillway", benchHandler},
			{"baseline", benchBaseline},
		} {
			b.Run(strconv.Itoa(size>>10)+"KiB/"+target.name, func(b *testing.B) {
				h, dir := target.new(b)
				body := bytes.NewReader(data)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if i > 0 && i%1024 == 0 {
						b.StopTimer()
						uploadtest.EmptyDir(b, dir)
						b.StartTimer()
					}
					body.Reset(data)
					req := httptest.NewRequest(http.MethodPut, "/files/put-"+strconv.Itoa(i)+".bin", body)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusCreated {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}

// BenchmarkHandlerLarge streams 64 MiB bodies, past the threshold so they
// spool to disk, through the handler in process: a raw PUT with a known
// length and a one-file multipart POST, and the baseline's raw copy. The
// body repeats a 1 MiB pattern (a ChaCha8 stream would cost as much CPU as
// the handler) and comes from memory, not the network, so a CPU profile of
// this benchmark shows the handler's own cost per byte:
//
//	go test -run '^$' -bench 'HandlerLarge' -cpuprofile cpu.out ./api
//	go tool pprof -top api.test cpu.out
func BenchmarkHandlerLarge(b *testing.B) {
	const size = 64 << 20
	pattern := uploadtest.File{Seed: 4, Size: 1 << 20}.Bytes()
	for _, tc := range largeCases(0) {
		b.Run(tc.name, func(b *testing.B) {
			h, dir := tc.new(b)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				req := largeRequest(b, "", tc.multipart, pattern, size)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					b.Fatalf("upload %d: status %d: %s", i, rec.Code, rec.Body)
				}
				b.StopTimer()
				uploadtest.EmptyDir(b, dir)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkHandlerLoopback is BenchmarkHandlerLarge over a real loopback
// connection (httptest.NewServer, the local server's 60 s read timeout), so
// that a CPU profile also shows the transport: the size of each read from
// the socket, the per-read deadline, multipart's buffering.
//
//	go test -run '^$' -bench 'HandlerLoopback' -cpuprofile cpu.out ./api
func BenchmarkHandlerLoopback(b *testing.B) {
	const size = 64 << 20
	pattern := uploadtest.File{Seed: 5, Size: 1 << 20}.Bytes()
	for _, tc := range largeCases(time.Minute) {
		b.Run(tc.name, func(b *testing.B) {
			h, dir := tc.new(b)
			srv := httptest.NewServer(h)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				resp, err := client.Do(largeRequest(b, srv.URL, tc.multipart, pattern, size))
				if err != nil {
					b.Fatal(err)
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("upload %d: status %d: %s", i, resp.StatusCode, msg)
				}
				b.StopTimer()
				uploadtest.EmptyDir(b, dir)
				b.StartTimer()
			}
		})
	}
}

type largeCase struct {
	name      string
	multipart bool
	new       func(*testing.B) (http.Handler, string)
}

// largeCases are the targets of the large-body benchmarks: the handler,
// with readTimeout, by a raw PUT and by a multipart POST, and the
// baseline by a raw PUT.
func largeCases(readTimeout time.Duration) []largeCase {
	handler := func(b *testing.B) (http.Handler, string) { return benchHandlerTimeout(b, readTimeout) }
	return []largeCase{
		{"raw/spillway", false, handler},
		{"raw/baseline", false, benchBaseline},
		{"multipart/spillway", true, handler},
	}
}

// largeRequest streams size bytes of pattern as large.bin, by a raw PUT or
// a one-file multipart POST: to the server at base, or, with base empty, as
// an incoming request for a handler in process.
func largeRequest(b *testing.B, base string, multipart bool, pattern []byte, size int64) *http.Request {
	b.Helper()
	body := &uploadtest.PatternReader{P: pattern, N: size}
	method, path, contentType, length := http.MethodPut, "/files/large.bin", "", size
	var r io.Reader = body
	if multipart {
		method, path = http.MethodPost, "/files"
		contentType, r, length = uploadtest.StreamedMultipart("large.bin", body)
	}
	var req *http.Request
	if base == "" {
		req = httptest.NewRequest(method, path, r)
	} else {
		var err error
		if req, err = http.NewRequest(method, base+path, r); err != nil {
			b.Fatal(err)
		}
	}
	req.ContentLength = length
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// BenchmarkHandlerTusPatch sends 1 KiB tus PATCHes, each the next chunk of
// one upload of deferred length, through the handler in process: the cost
// of a chunk beside its bytes (finding the upload, its lock, its state,
// its progress record), which small chunks make the whole cost.
func BenchmarkHandlerTusPatch(b *testing.B) {
	const chunk = 1 << 10
	data := uploadtest.File{Seed: 6, Size: chunk}.Bytes()
	h, _ := benchHandler(b)
	req := httptest.NewRequest(http.MethodPost, "/tus/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Defer-Length", "1")
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("patched.bin")))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		b.Fatalf("create: status %d: %s", rec.Code, rec.Body)
	}
	loc := rec.Header().Get("Location")
	body := bytes.NewReader(data)
	b.SetBytes(chunk)
	b.ReportAllocs()
	var offset int64
	for b.Loop() {
		body.Reset(data)
		req := httptest.NewRequest(http.MethodPatch, loc, body)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("PATCH at %d: status %d: %s", offset, rec.Code, rec.Body)
		}
		offset += chunk
	}
}
