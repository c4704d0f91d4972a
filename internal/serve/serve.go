// Package serve is the serving machinery of Spillway's net/http programs,
// the local server and the Function URL emulator: the listener with its
// connection cap, graceful shutdown that waits for every handler's
// cleanup, CORS, and the framing rule for chunked requests. It knows
// nothing of the API or the function it serves.
package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// Config is what Run serves, and how.
type Config struct {
	Addr    string
	Handler http.Handler
	Logger  *slog.Logger // nil: slog.Default()

	// Refuse answers a request that arrives once shutdown has begun, on a
	// connection the server has not closed yet.
	Refuse func(http.ResponseWriter, *http.Request)
	// AbortCause is the cause of the requests' contexts when the grace
	// period is over and the requests still running are cut, so that a
	// handler can tell them from requests whose client went away.
	AbortCause error
	// OnAbort, when set, runs in a goroutine of its own when the grace
	// period is over, beside the cancelling of the requests' contexts;
	// Run returns only once it has.
	OnAbort func()

	// CORSOrigins is a comma-separated list of origins, or "*"; empty
	// turns CORS off.
	CORSOrigins string
	// MaxConnections caps the connections open at once; zero derives the
	// cap from the open-file limit and MaxUploads.
	MaxConnections int
	MaxUploads     int
	// ShutdownTimeout is the grace period for requests in flight once ctx
	// is done.
	ShutdownTimeout time.Duration

	// Listening, when set, is called once the listener is up and before
	// the first request is served: the program logs its start-up line
	// there.
	Listening func(Listening)
}

// Listening describes a listener that Run has opened.
type Listening struct {
	Addr net.Addr
	// The open-file limits after the raise (zero where there are none)
	// and the connection cap in force (zero: none).
	OpenFilesSoft, OpenFilesHard uint64
	MaxConnections               int
}

// Run serves cfg.Handler on cfg.Addr until ctx is done, then shuts down:
// requests in flight get cfg.ShutdownTimeout to finish, then their
// contexts are cancelled and their connections closed. It returns once
// every handler has returned, so that their cleanup is over.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	soft, hard, err := raiseOpenFileLimit()
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		log.Warn("raising the open-file limit failed", "error", err)
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
	if cfg.Listening != nil {
		cfg.Listening(Listening{Addr: ln.Addr(), OpenFilesSoft: soft, OpenFilesHard: hard, MaxConnections: maxConns})
	}

	inflight := NewTracker(CORS(cfg.Handler, cfg.CORSOrigins), cfg.Refuse)
	baseCtx, abort := Abortable(cfg.AbortCause)
	defer abort()
	if cfg.OnAbort != nil {
		done := make(chan struct{})
		stop := context.AfterFunc(baseCtx, func() {
			defer close(done)
			cfg.OnAbort()
		})
		// Registered after abort's defer, so it runs first: an OnAbort
		// that has not started by then never will.
		defer func() {
			if !stop() {
				<-done
			}
		}()
	}
	srv := &http.Server{
		Handler:           CloseAfterChunked(inflight),
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
	inflight.Wait()
	return nil
}

// Abortable returns the base context of every request and the function
// that cancels it, with cause, when the grace period is over.
func Abortable(cause error) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	return ctx, func() { cancel(cause) }
}

// Tracker counts running handlers so that shutdown can wait for their
// cleanup, even for connections that http.Server.Close cut.
type Tracker struct {
	h       http.Handler
	refuse  func(http.ResponseWriter, *http.Request)
	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

// NewTracker returns a Tracker that serves h, and answers with refuse the
// requests that arrive once Wait has been called.
func NewTracker(h http.Handler, refuse func(http.ResponseWriter, *http.Request)) *Tracker {
	return &Tracker{h: h, refuse: refuse}
}

func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		w.Header().Set("Connection", "close")
		if t.refuse != nil {
			t.refuse(w, r)
		} else {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		}
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	t.h.ServeHTTP(w, r)
}

// Wait refuses new requests and waits for the running ones to return.
func (t *Tracker) Wait() {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	t.wg.Wait()
}

// CloseAfterChunked closes the connection after every request that came
// with a Transfer-Encoding. RFC 9112 §6.1 asks that of a request with both
// Transfer-Encoding and Content-Length: a front end that framed it by its
// length, while this server reads it as chunked, would see bytes after the
// last chunk as that request's body, and this server would run them as the
// next request. net/http removes the Content-Length of a chunked request
// before any handler runs, so the two cannot be told apart here; a chunked
// request is one of unknown length, an upload, for which a new connection
// costs little.
func CloseAfterChunked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// IsLoopback reports whether addr is a loopback address: a server
// listening anywhere else without a token serves whoever can reach it.
func IsLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// MemoryOverhead is what a server needs beyond its memory budget at its
// upload cap: the binary and the runtime, connection buffers, and the
// small working buffers of uploads that the budget refused a large one
// (spool.SmallBufferSize each, one per body being spooled and one per
// multipart reader).
const MemoryOverhead = 48 << 20

// LimitMemory sets the soft memory limit to budget plus MemoryOverhead,
// unless GOMEMLIMIT sets one. Bodies held in memory are capped by the
// budget; a soft limit a little above it makes the GC return their memory
// promptly, so the process stays near budget + a fixed overhead under
// load.
func LimitMemory(getenv func(string) string, budget int64) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(budget + MemoryOverhead)
	}
}
