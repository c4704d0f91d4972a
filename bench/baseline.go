package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// The reference servers run as child processes of the bench binary itself
// (or of its test binary), so that each has its own peak RSS and CPU time,
// like the real server. The role is passed in the environment.
const (
	roleEnv = "SPILLWAY_BENCH_ROLE" // "reference" in a child
	modeEnv = "SPILLWAY_BENCH_MODE" // one of the mode* constants
	dirEnv  = "SPILLWAY_BENCH_DIR"  // where files are written
)

// Reference server modes.
const (
	// modeCopyBuffer copies the body into a new file with io.CopyBuffer and
	// a pooled 256 KiB buffer: the baseline Spillway is measured against.
	modeCopyBuffer = "copybuffer-256k"
	// modeFloor and modeFloorFsync are the hashing floor (floor.go), without
	// and with fsync.
	modeFloor      = "floor"
	modeFloorFsync = "floor-fsync"
	// modeDiscard reads the body into io.Discard and writes nothing: the
	// ceiling of the client and loopback.
	modeDiscard = "discard"
)

// isChild reports whether this process was started as a reference server.
func isChild() bool { return os.Getenv(roleEnv) == "reference" }

// childMain serves a reference server until SIGTERM and returns the exit
// code. Like localserver it prints "url=http://…" on stderr once it listens.
func childMain() int {
	mode, dir := os.Getenv(modeEnv), os.Getenv(dirEnv)
	h, err := referenceHandler(mode, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reference server:", err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reference server:", err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "reference server listening mode=%s url=http://%s\n", mode, ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "reference server:", err)
		return 1
	}
	<-shut
	return 0
}

// referenceHandler serves PUT /files/{name} (the body is the file) and POST
// /files (multipart/form-data, every file part stored under its base name),
// answering 201, with the least work that stores the bytes.
func referenceHandler(mode, dir string) (http.Handler, error) {
	var copyBody func(dst io.Writer, src io.Reader) (int64, error)
	switch mode {
	case modeCopyBuffer:
		pool := sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
		copyBody = func(dst io.Writer, src io.Reader) (int64, error) {
			bufp := pool.Get().(*[]byte)
			defer pool.Put(bufp)
			return io.CopyBuffer(dst, src, *bufp)
		}
	case modeFloor, modeFloorFsync:
	case modeDiscard:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "{\"size\":%d}\n", n)
		}), nil
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	if dir == "" {
		return nil, errors.New("no directory")
	}
	// store returns the bytes written and, for the floor, their SHA-256.
	store := func(name string, src io.Reader) (int64, string, error) {
		base := filepath.Base(name)
		if base == "." || base == "/" || base == ".." {
			return 0, "", fmt.Errorf("bad name %q", name)
		}
		if copyBody == nil {
			n, sums, err := floorStore(dir, base, src, mode == modeFloorFsync)
			return n, sums.sha256, err
		}
		f, err := os.OpenFile(filepath.Join(dir, base), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return 0, "", err
		}
		n, err := copyBody(f, src)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return n, "", err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var total int64
		var sum string
		switch r.Method {
		case http.MethodPut:
			n, sha, err := store(r.URL.Path, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			total, sum = n, sha
		case http.MethodPost:
			mr, err := r.MultipartReader()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for parts := 0; parts < 1000; parts++ {
				part, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				if part.FileName() == "" {
					continue
				}
				n, sha, err := store(part.FileName(), part)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				total, sum = total+n, sha
			}
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "{\"size\":%d,\"sha256\":%q}\n", total, sum)
	}), nil
}
