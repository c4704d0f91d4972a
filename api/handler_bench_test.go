package api_test

import (
	"bytes"
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
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store/dirstore"
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
	dir := filepath.Join(b.TempDir(), "uploads")
	cfg := spool.DefaultConfig()
	cfg.Dir = b.TempDir()
	sp, err := spool.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	st, _, err := dirstore.Open(dir, dirstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	h := api.New(api.Config{
		Spooler:     sp,
		Store:       st,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		ReadTimeout: readTimeout,
	})
	return h, dir
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

// emptyDir removes what the benchmarked handler stored, so that the disk
// holds at most a batch of uploads.
func emptyDir(b *testing.B, dir string) {
	b.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
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
						emptyDir(b, dir)
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
	for _, tc := range []struct {
		name      string
		multipart bool
		new       func(*testing.B) (http.Handler, string)
	}{
		{"raw/spillway", false, benchHandler},
		{"raw/baseline", false, benchBaseline},
		{"multipart/spillway", true, benchHandler},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, dir := tc.new(b)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				var req *http.Request
				if tc.multipart {
					ct, body, n := uploadtest.StreamedMultipart("large.bin", &uploadtest.PatternReader{P: pattern, N: size})
					req = httptest.NewRequest(http.MethodPost, "/files", body)
					req.ContentLength = n
					req.Header.Set("Content-Type", ct)
				} else {
					req = httptest.NewRequest(http.MethodPut, "/files/large.bin", &uploadtest.PatternReader{P: pattern, N: size})
					req.ContentLength = size
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					b.Fatalf("upload %d: status %d: %s", i, rec.Code, rec.Body)
				}
				b.StopTimer()
				emptyDir(b, dir)
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
	for _, tc := range []struct {
		name      string
		multipart bool
		new       func(*testing.B) (http.Handler, string)
	}{
		{"raw/spillway", false, func(b *testing.B) (http.Handler, string) { return benchHandlerTimeout(b, time.Minute) }},
		{"raw/baseline", false, benchBaseline},
		{"multipart/spillway", true, func(b *testing.B) (http.Handler, string) { return benchHandlerTimeout(b, time.Minute) }},
	} {
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
				var req *http.Request
				var err error
				if tc.multipart {
					ct, body, n := uploadtest.StreamedMultipart("large.bin", &uploadtest.PatternReader{P: pattern, N: size})
					req, err = http.NewRequest(http.MethodPost, srv.URL+"/files", body)
					if err == nil {
						req.ContentLength = n
						req.Header.Set("Content-Type", ct)
					}
				} else {
					req, err = http.NewRequest(http.MethodPut, srv.URL+"/files/large.bin", &uploadtest.PatternReader{P: pattern, N: size})
					if err == nil {
						req.ContentLength = size
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("upload %d: status %d: %s", i, resp.StatusCode, msg)
				}
				b.StopTimer()
				emptyDir(b, dir)
				b.StartTimer()
			}
		})
	}
}
