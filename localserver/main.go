// Command localserver is Spillway's development server: the same upload API
// as the deployed function, served with net/http, spooling bodies to a local
// directory and storing files in another.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"spillway/api"
	"spillway/apierr"
	"spillway/internal/buildinfo"
	"spillway/metrics"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/s3store"
)

func main() {
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println("localserver", buildinfo.Read())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localserver:", err)
		os.Exit(1)
	}
}

// run serves until ctx is cancelled. ready, when not nil, receives the
// address the server listens on.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if getenv("GOMEMLIMIT") == "" {
		// Bodies held in memory are capped by the budget; a soft limit a
		// little above it makes the GC return their memory promptly, so
		// the process stays near budget + a fixed overhead under load.
		debug.SetMemoryLimit(cfg.MemoryBudget + memoryOverhead)
	}

	if cfg.Bucket == "" {
		// Before the sweep, and before either directory is made.
		if err := checkDirs(cfg.Directory, cfg.SpoolDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	swept, err := spool.Sweep(cfg.SpoolDir)
	if err != nil {
		log.Warn("sweeping the spool dir failed", "error", err)
	}
	spooler, err := spool.New(spool.Config{
		Dir:          cfg.SpoolDir,
		Threshold:    cfg.Threshold,
		MemoryBudget: cfg.MemoryBudget,
		MaxSize:      spoolLimit(cfg),
	})
	if err != nil {
		return err
	}
	fn, err := startFunction(ctx, cfg, spooler, log, stderr)
	if err != nil {
		return err
	}
	defer fn.Close()
	st, staged, err := openStore(ctx, cfg, getenv)
	if err != nil {
		return err
	}

	soft, hard, limitErr := raiseOpenFileLimit()
	if limitErr != nil && !errors.Is(limitErr, errors.ErrUnsupported) {
		log.Warn("raising the open-file limit failed", "error", limitErr)
	}
	maxConns := cfg.MaxConnections
	if maxConns == 0 {
		maxConns = defaultMaxConnections(soft, cfg.MaxUploads)
	} else if soft > 0 && uint64(maxConns) >= soft {
		log.Warn("--max-connections is not below the open-file limit: uploads can run out of descriptors",
			"max_connections", maxConns, "open_files_soft", soft)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	bi := buildinfo.Read()
	log.Info("spillway local server listening", "url", "http://"+ln.Addr().String(),
		"version", bi.Version, "revision", bi.Revision, "config", cfg, "orphans_swept", swept+staged,
		"open_files_soft", soft, "open_files_hard", hard, "max_connections", maxConns)

	if cfg.Token == "" && !isLoopback(ln.Addr()) {
		log.Warn("listening beyond loopback without --token: anyone who can reach this address can upload and download")
	}
	if _, ok := st.(store.PartWriter); ok && cfg.UploadSecret == "" {
		// api.New makes the random key.
		log.Info("no --upload-secret: part URLs of multipart uploads are signed with a random key and stop working when the server restarts")
	}
	prom := metrics.NewPrometheus(spooler)
	prom.Swept(swept + staged)
	handler := api.New(api.Config{
		Spooler:              spooler,
		Store:                st,
		Logger:               log,
		ReadTimeout:          cfg.ReadTimeout,
		MaxConcurrentUploads: cfg.MaxUploads,
		Token:                cfg.Token,
		Observer:             prom,
		UploadSecret:         []byte(cfg.UploadSecret),
		Version:              bi.Version,
		Revision:             bi.Revision,
	})
	var app http.Handler = withMetrics(handler, prom, cfg.MetricsPublic)
	if fn != nil {
		app = fn
	}
	inflight := &tracker{h: withCORS(app, cfg.CORSOrigins), refuse: handler.Refuse}
	baseCtx, abort := abortable()
	defer abort()
	if fn != nil {
		// Invocations do not end with their clients (see funcurl); once
		// the grace period is over, stopping the emulator ends them.
		context.AfterFunc(baseCtx, func() { fn.Close() })
	}
	srv := &http.Server{
		Handler:           closeAfterChunked(inflight),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if maxConns > 0 {
		// At the cap, idle keep-alive connections give their slots to the
		// connections waiting: turning keep-alives off closes the idle
		// ones, and answers close the others, until the load is down.
		ln = newLimitListener(ln, maxConns,
			func() { srv.SetKeepAlivesEnabled(false) },
			func() { srv.SetKeepAlivesEnabled(true) })
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownTimeout)
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil {
		// Grace is over: cancel the uploads still running and close their
		// connections, so their reads fail and their spool files go.
		log.Warn("grace period over, aborting in-flight uploads", "error", err)
		abort()
		srv.Close()
	}
	inflight.wait()
	stats := spooler.Stats()
	log.Info("stopped", "spool_files_open", stats.OpenFiles, "memory_bodies", stats.MemoryBodies,
		"disk_bodies", stats.DiskBodies, "spool_errors", stats.Errors, "cleanup_failures", stats.CleanupFailures)
	return nil
}

// memoryOverhead is what the server needs beyond the memory budget at its
// upload cap: the runtime, connection buffers and one copy buffer per
// upload spooling to disk.
const memoryOverhead = 48 << 20

// withMetrics serves GET /metrics beside the API. It follows the token rule
// unless public is set.
func withMetrics(h *api.Handler, prom *metrics.Prometheus, public bool) http.Handler {
	metricsHandler := prom.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			h.ServeHTTP(w, r)
			return
		}
		if !public && !h.Authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spillway"`)
			h.Refuse(w, r, apierr.ErrUnauthorized)
			return
		}
		metricsHandler.ServeHTTP(w, r)
	})
}

func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// openStore opens the directory store, or the S3 store with --bucket. It
// returns how many orphaned staging files it removed.
func openStore(ctx context.Context, cfg config, getenv func(string) string) (store.Store, int, error) {
	if cfg.Bucket == "" {
		st, staged, err := dirstore.Open(cfg.Directory, dirstore.Options{Overwrite: cfg.Overwrite, Fsync: cfg.Fsync, FileMode: cfg.FileMode,
			CaseSensitiveNames: cfg.CaseSensitiveNames})
		if err != nil {
			return nil, 0, err
		}
		// The root stays open for the life of the process.
		return st, staged, nil
	}
	client, err := s3store.NewClient(ctx, s3store.EndpointSet(getenv))
	if err != nil {
		return nil, 0, err
	}
	return s3store.New(client, cfg.Bucket, s3store.Options{Prefix: cfg.Prefix, Overwrite: cfg.Overwrite}), 0, nil
}

// abortable returns the base context of every request and the function
// that cancels it when the grace period is over. Its cause, ErrUnavailable,
// is how the handler tells requests cut by the shutdown (503 unavailable)
// from those whose client went away (net/http cancels those without one).
func abortable() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	return ctx, func() { cancel(apierr.ErrUnavailable) }
}

// tracker counts running handlers so that shutdown can wait for their
// cleanup, even for connections that srv.Close cut.
type tracker struct {
	h       http.Handler
	refuse  func(http.ResponseWriter, *http.Request, error)
	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

func (t *tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		w.Header().Set("Connection", "close")
		t.refuse(w, r, apierr.ErrUnavailable)
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	t.h.ServeHTTP(w, r)
}

// closeAfterChunked closes the connection after every request that came
// with a Transfer-Encoding. RFC 9112 §6.1 asks that of a request with both
// Transfer-Encoding and Content-Length: a front end that framed it by its
// length, while this server reads it as chunked, would see bytes after the
// last chunk as that request's body, and this server would run them as the
// next request. net/http removes the Content-Length of a chunked request
// before any handler runs, so the two cannot be told apart here; a chunked
// request is one of unknown length, an upload, for which a new connection
// costs little.
func closeAfterChunked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

func (t *tracker) wait() {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	t.wg.Wait()
}
