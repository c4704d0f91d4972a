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
	"spillway/internal/testservers"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errTestAbort = errors.New("test: shutting down")

// start runs Run with cfg on a free loopback port.
func start(t *testing.T, cfg Config) *testservers.InProcess {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	return testservers.RunInProcess(t, new(strings.Builder), func(ctx context.Context, ready chan<- string) error {
		cfg.Listening = func(l Listening) { ready <- l.Addr.String() }
		return Run(ctx, cfg)
	})
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
	conn, err := net.Dial("tcp", r.Addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
	require.NoError(t, err)
	<-entered
	r.Wait(t)
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
	conn, err := net.Dial("tcp", r.Addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	require.NoError(t, err)
	<-entered
	r.Stop()
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "done", string(body))
	assert.False(t, cut.Load(), "the request was cut within the grace period")
	r.Wait(t)
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
