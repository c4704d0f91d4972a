package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errTestAbort = errors.New("test: shutting down")

// running is Run in a goroutine, with its address.
type running struct {
	addr string
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	r := &running{stop: stop, done: make(chan error, 1)}
	ready := make(chan string, 1)
	cfg.Addr = "127.0.0.1:0"
	cfg.Listening = func(l Listening) { ready <- l.Addr.String() }
	go func() { r.done <- Run(ctx, cfg) }()
	select {
	case r.addr = <-ready:
	case err := <-r.done:
		require.FailNow(t, "Run did not start", "%v", err)
	}
	t.Cleanup(func() {
		stop()
		<-r.done
		r.done <- nil
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
		require.FailNow(t, "Run did not return")
	}
}

// A request still running when the grace period ends has its context
// cancelled with AbortCause, OnAbort runs, and Run returns only once the
// handler has.
func TestRunAbortsAfterGrace(t *testing.T) {
	entered := make(chan struct{})
	var cause atomic.Value
	var returned, aborted atomic.Bool
	r := start(t, Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
			cause.Store(context.Cause(r.Context()))
			returned.Store(true)
		}),
		AbortCause:      errTestAbort,
		OnAbort:         func() { aborted.Store(true) },
		ShutdownTimeout: 50 * time.Millisecond,
	})
	conn, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
	require.NoError(t, err)
	<-entered
	r.wait(t)
	assert.True(t, returned.Load(), "Run returned before the handler")
	assert.True(t, aborted.Load())
	assert.ErrorIs(t, cause.Load().(error), errTestAbort)
}

// Within the grace period a request finishes as if nothing happened.
func TestRunLetsRequestsFinishInGrace(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var cut atomic.Bool
	r := start(t, Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			cut.Store(r.Context().Err() != nil)
			fmt.Fprint(w, "done")
		}),
		AbortCause:      errTestAbort,
		ShutdownTimeout: 30 * time.Second,
	})
	conn, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	require.NoError(t, err)
	<-entered
	r.stop()
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "done", string(body))
	assert.False(t, cut.Load(), "the request was cut within the grace period")
	r.wait(t)
}

func TestRunRefusesAnAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	err = Run(t.Context(), Config{Addr: ln.Addr().String(), Handler: http.NotFoundHandler()})
	require.ErrorContains(t, err, "address already in use")
}

// Once Wait has begun, the tracker answers with refuse, and says the
// connection closes.
func TestTrackerRefusesOnceClosing(t *testing.T) {
	tr := NewTracker(http.NotFoundHandler(), func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusNotFound, rec.Code)
	tr.Wait()
	rec = httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "close", rec.Header().Get("Connection"))
}

func TestCloseAfterChunked(t *testing.T) {
	h := CloseAfterChunked(http.NotFoundHandler())
	req := httptest.NewRequest(http.MethodPut, "/files/a", strings.NewReader("x"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Empty(t, rec.Header().Get("Connection"))
	req.TransferEncoding = []string{"chunked"}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, "close", rec.Header().Get("Connection"))
}
