package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
)

func TestBearerToken(t *testing.T) {
	s := newServer(t, options{token: "s3cret"})
	f := uploadtest.File{Name: "guarded.bin", Size: 5 << 20}
	for _, auth := range []string{"", "Bearer wrong", "Basic s3cret", "Bearer s3cret2", "s3cret"} {
		body := &trackingReader{r: f.Reader()}
		req := s.request(t, http.MethodPut, "/files/guarded.bin", body, f.Size)
		req.Header.Set("Expect", "100-continue")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, respBody := s.do(t, req)
		requireError(t, resp, respBody, http.StatusUnauthorized, "unauthorized")
		assert.Equal(t, `Bearer realm="spillway"`, resp.Header.Get("WWW-Authenticate"))
		assert.False(t, body.read.Load(), "an unauthorized body must not be read")
		s.waitServed(t)
	}
	for _, path := range []string{"/files", "/files/guarded.bin"} {
		resp, body := s.do(t, s.request(t, http.MethodGet, path, nil, 0))
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		s.waitServed(t)
	}
	// Health checks stay open.
	resp, _ := s.do(t, s.request(t, http.MethodGet, "/healthz", nil, 0))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	s.waitServed(t)

	req := s.request(t, http.MethodPut, "/files/guarded.bin", f.Reader(), f.Size)
	req.Header.Set("Authorization", "bearer s3cret")
	resp, body := s.do(t, req)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	uploadtest.RequireEmptyDir(t, s.spoolDir)
}

func TestBusyBeyondMaxConcurrentUploads(t *testing.T) {
	s := newServer(t, options{maxUploads: 1})
	// The first upload holds the only slot: its handler has asked for the
	// body ("100 Continue") and is waiting for it.
	f := uploadtest.File{Name: "slow.bin", Seed: 1, Size: 3 << 20}
	finish := s.putContinued(t, f)

	body := &trackingReader{r: strings.NewReader("x")}
	req := s.request(t, http.MethodPut, "/files/other.bin", body, 1)
	req.Header.Set("Expect", "100-continue")
	resp, respBody := s.do(t, req)
	requireError(t, resp, respBody, http.StatusServiceUnavailable, "busy")
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.False(t, body.read.Load())
	assert.Equal(t, http.StatusServiceUnavailable, s.waitServed(t))

	// Reads are not uploads and are not capped.
	resp, _ = s.do(t, s.request(t, http.MethodGet, "/files", nil, 0))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	s.waitServed(t)

	finish()

	// The slot is free again.
	resp, respBody = s.do(t, s.request(t, http.MethodPut, "/files/other.bin", strings.NewReader("x"), 1))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(respBody))
	s.waitServed(t)
}

func TestRequestIDInHeaderErrorAndLog(t *testing.T) {
	s := newServer(t, options{})
	resp, body := s.do(t, s.request(t, http.MethodGet, "/files/missing.bin", nil, 0))
	requireError(t, resp, body, http.StatusNotFound, "not_found")
	id := resp.Header.Get("X-Request-Id")
	require.NotEmpty(t, id)
	assert.Contains(t, string(body), `"request_id":"`+id+`"`)
	s.waitServed(t)
	assert.Contains(t, s.logs.String(), `"request_id":"`+id+`"`)

	resp, _ = s.do(t, s.request(t, http.MethodGet, "/healthz", nil, 0))
	assert.NotEqual(t, id, resp.Header.Get("X-Request-Id"), "each request gets its own ID")
	s.waitServed(t)
}

// blockingList is a store whose List waits, once it is entered, until
// release is closed.
type blockingList struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingList) List(ctx context.Context, opts store.ListOptions) ([]store.Info, bool, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Store.List(ctx, opts)
}

// TestBusyBeyondMaxConcurrentListings: listings in progress are capped as
// uploads are, since each holds a page in memory: past the cap, 503 busy
// with Retry-After, for GET and HEAD; uploads are not held up, and the
// slots are free again afterwards.
func TestBusyBeyondMaxConcurrentListings(t *testing.T) {
	bl := &blockingList{entered: make(chan struct{}, 8), release: make(chan struct{})}
	s := newServer(t, options{maxListings: 2, wrapStore: func(st store.Store) store.Store { bl.Store = st; return bl }})
	release := sync.OnceFunc(func() { close(bl.release) })
	t.Cleanup(release) // before the server's: a failed test leaves no listing waiting
	results := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := s.client.Do(s.request(t, http.MethodGet, "/files", nil, 0))
			if err != nil {
				results <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
		<-bl.entered
	}

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		// Bounded: without a cap, this listing would wait with the others.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		resp, body := s.do(t, s.request(t, method, "/files", nil, 0).WithContext(ctx))
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "1", resp.Header.Get("Retry-After"))
		if method == http.MethodGet {
			requireError(t, resp, body, http.StatusServiceUnavailable, "busy")
			s.requireLogged(t, resp, "2 listings already in progress")
		}
		assert.Equal(t, http.StatusServiceUnavailable, s.waitServed(t))
	}
	// Uploads and downloads are not listings.
	resp, body := s.do(t, s.request(t, http.MethodPut, "/files/a.txt", strings.NewReader("x"), 1))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	resp, _ = s.do(t, s.request(t, http.MethodGet, "/files/a.txt", nil, 0))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	s.waitServed(t)

	release()
	for range 2 {
		assert.Equal(t, http.StatusOK, <-results)
		s.waitServed(t)
	}
	resp, body = s.do(t, s.request(t, http.MethodGet, "/files", nil, 0))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, string(body), `"a.txt"`)
	s.waitServed(t)
}
