package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/apierr"
	"spillway/internal/serve"
	"spillway/internal/uploadtest"
	"spillway/metrics/prom"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/wire"
)

// holdingStore holds each completion until its request's context ends,
// then completes with that context, as a completion cut halfway would.
type holdingStore struct {
	*dirstore.Store
	entered chan struct{}
}

// Capabilities passes the store's on, with the completions held here.
func (s *holdingStore) Capabilities() store.Caps {
	c := s.Store.Capabilities()
	c.Multipart = s
	return c
}

func (s *holdingStore) Complete(ctx context.Context, id string, parts []store.Part) (store.Completed, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return s.Store.Complete(ctx, id, parts)
}

// heldServer is the local server's request path (tracker, base context,
// API handler, metrics) over a store that holds completions.
type heldServer struct {
	url    string
	st     *holdingStore
	logs   *uploadtest.SyncBuffer
	prom   *prom.Metrics
	abort  context.CancelFunc
	served chan struct{}
	client *http.Client
}

func newHeldServer(t *testing.T) *heldServer {
	t.Helper()
	ds, _, err := dirstore.Open(filepath.Join(t.TempDir(), "uploads"), dirstore.Options{})
	require.NoError(t, err)
	spoolDir := t.TempDir()
	sp, err := spool.New(spool.Config{Dir: spoolDir, Threshold: spool.DefaultThreshold, MemoryBudget: 64 << 20})
	require.NoError(t, err)
	s := &heldServer{
		st:     &holdingStore{Store: ds, entered: make(chan struct{}, 1)},
		logs:   &uploadtest.SyncBuffer{},
		prom:   prom.New(sp),
		served: make(chan struct{}, 16),
		client: &http.Client{Transport: &http.Transport{}},
	}
	h := api.New(api.Config{Spooler: sp, Store: s.st, Logger: slog.New(slog.NewTextHandler(s.logs, nil)), Observer: s.prom,
		Metrics: s.prom.Handler(), MetricsPublic: true})
	app := h
	inflight := serve.NewTracker(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app.ServeHTTP(w, r)
		s.served <- struct{}{}
	}), func(w http.ResponseWriter, r *http.Request) { h.Refuse(w, r, apierr.ErrUnavailable) })
	baseCtx, abort := serve.Abortable(apierr.ErrUnavailable)
	s.abort = abort
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.url = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: inflight, BaseContext: func(net.Listener) context.Context { return baseCtx }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		abort()
		srv.Close()
		<-served
		inflight.Wait()
		ds.Close()
		uploadtest.RequireEmptyDir(t, spoolDir)
	})
	return s
}

func (s *heldServer) waitServed(t *testing.T) {
	t.Helper()
	select {
	case <-s.served:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the handler did not finish")
	}
}

func (s *heldServer) do(t *testing.T, method, path string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, bytes.NewReader(body))
	require.NoError(t, err)
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	s.waitServed(t)
	return resp, data
}

// upload creates a one-part upload, sends its part and returns the raw
// completion request for it.
func (s *heldServer) upload(t *testing.T, f uploadtest.File) (id, completion string) {
	t.Helper()
	resp, body := s.do(t, http.MethodPost, "/uploads", fmt.Appendf(nil, `{"name":%q,"size":%d}`, f.Name, f.Size))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	var up wire.CreatedUpload
	require.NoError(t, json.Unmarshal(body, &up))
	require.Len(t, up.Parts, 1)
	req, err := http.NewRequestWithContext(t.Context(), up.Parts[0].Method, up.Parts[0].URL, bytes.NewReader(f.Bytes()))
	require.NoError(t, err)
	presp, err := s.client.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, presp.Body)
	presp.Body.Close()
	s.waitServed(t)
	require.Equal(t, http.StatusOK, presp.StatusCode)
	body = fmt.Appendf(nil, `{"parts":[{"n":1,"etag":%q}]}`, presp.Header.Get("ETag"))
	return up.ID, fmt.Sprintf("POST /uploads/%s/complete HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		up.ID, len(body), body)
}

// startCompletion sends a completion on its own connection and returns
// once the store holds it.
func (s *heldServer) startCompletion(t *testing.T, completion string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.url[len("http://"):])
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = io.WriteString(conn, completion)
	require.NoError(t, err)
	select {
	case <-s.st.entered:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the completion never reached the store")
	}
	return conn
}

func (s *heldServer) metric(t *testing.T, re string) bool {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/metrics", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return regexp.MustCompile(re).Match(body)
}

// A client that goes away while its completion runs is logged as what it
// is, client_gone at info level, and counted as no 5xx; the upload stays
// for a retry. A completion that the shutdown cuts is 503 unavailable.
func TestClientGoneIsNotAShutdown(t *testing.T) {
	s := newHeldServer(t)

	t.Run("client gone", func(t *testing.T) {
		f := uploadtest.File{Name: "gone.bin", Seed: 7, Size: 1000}
		id, completion := s.upload(t, f)
		conn := s.startCompletion(t, completion)
		require.NoError(t, conn.Close())
		s.waitServed(t)

		line := regexp.MustCompile(`(?m)^.*path=/uploads/` + id + `/complete .*$`).FindString(s.logs.String())
		assert.Contains(t, line, "level=INFO")
		assert.Contains(t, line, fmt.Sprintf("status=%d", apierr.StatusClientClosedRequest))
		assert.Contains(t, line, "code=client_gone")
		assert.Contains(t, line, "context canceled", "the detail is logged")
		assert.NotContains(t, s.logs.String(), "code=unavailable")
		assert.True(t, s.metric(t, `(?m)^spillway_rejected_requests_total\{code="client_gone"\} 1$`), "counted as client_gone")
		assert.True(t, s.metric(t, `(?m)^spillway_uploads_total\{result="client_gone",spool="none"\} 1$`))
		assert.False(t, s.metric(t, `code="unavailable"`), "not counted as a shutdown")

		// The upload is still there to complete again.
		resp, body := s.do(t, http.MethodGet, "/uploads/"+id, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	})

	t.Run("shutdown", func(t *testing.T) {
		f := uploadtest.File{Name: "cut.bin", Seed: 8, Size: 1000}
		id, completion := s.upload(t, f)
		conn := s.startCompletion(t, completion)
		s.abort() // what run does when the grace period is over
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		s.waitServed(t)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
		var e wire.ErrorResponse
		require.NoError(t, json.Unmarshal(body, &e), string(body))
		assert.Equal(t, wire.CodeUnavailable, e.Error.Code)
		assert.Equal(t, resp.Header.Get("X-Request-Id"), e.Error.RequestID)
		line := regexp.MustCompile(`(?m)^.*path=/uploads/` + id + `/complete .*$`).FindString(s.logs.String())
		assert.Contains(t, line, "level=ERROR")
		assert.Contains(t, line, "status=503")
		assert.Contains(t, line, "code=unavailable")
		assert.Contains(t, line, "request_id="+e.Error.RequestID)
	})
}

// A request that the local server refuses itself, before the API handler
// (GET /metrics without the token), is answered and logged as the
// handler's own refusals are: fixed message, request ID in the header, the
// JSON and the log line.
func TestEntrypointRefusalsCarryTheRequestID(t *testing.T) {
	r := start(t, "--token", "tok")
	resp, err := http.Get("http://" + r.Addr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, string(body))
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, wire.CodeUnauthorized, e.Error.Code)
	assert.Equal(t, api.ErrorFor(apierr.ErrUnauthorized).Message, e.Error.Message)
	require.NotEmpty(t, e.Error.RequestID)
	assert.Equal(t, e.Error.RequestID, resp.Header.Get("X-Request-Id"))
	http.DefaultClient.CloseIdleConnections()
	r.Wait(t)
	assert.Regexp(t, `level=INFO msg=request method=GET path=/metrics status=401 .*request_id=`+e.Error.RequestID+` code=unauthorized`, r.logs.String())
}
