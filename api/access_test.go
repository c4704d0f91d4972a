package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
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
	conn, br := s.rawRequest(t, fmt.Sprintf("PUT /files/slow.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", f.Size), nil)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = br.ReadString('\n')
	require.NoError(t, err)

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

	_, err = io.Copy(conn, f.Reader())
	require.NoError(t, err)
	final, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	final.Body.Close()
	require.Equal(t, http.StatusCreated, final.StatusCode)
	s.waitServed(t)

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
