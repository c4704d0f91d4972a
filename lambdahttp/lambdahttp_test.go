package lambdahttp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/apierr"
	"spillway/internal/apitest"
	"spillway/internal/uploadtest"
	"spillway/lambdahttp"
	"spillway/spool"
	"spillway/wire"
)

type env struct {
	adapter  *lambdahttp.Adapter
	dir      string
	spoolDir string
	logs     *bytes.Buffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with obs observing the handler.
func newEnvWith(t testing.TB, obs api.Observer) *env {
	t.Helper()
	e := &env{logs: &bytes.Buffer{}}
	h := apitest.New(t, spool.DefaultConfig(), api.Config{Observer: obs, Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	e.dir, e.spoolDir, e.adapter = h.Dir, h.SpoolDir, lambdahttp.New(h)
	return e
}

func (e *env) invoke(t testing.TB, payload []byte) events.LambdaFunctionURLResponse {
	t.Helper()
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "aws-req-7"})
	out, err := e.adapter.Invoke(ctx, payload)
	require.NoError(t, err)
	var resp events.LambdaFunctionURLResponse
	require.NoError(t, json.Unmarshal(out, &resp))
	return resp
}

func requireAPIError(t *testing.T, resp events.LambdaFunctionURLResponse, status int, code string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, resp.Body)
	assert.False(t, resp.IsBase64Encoded, "JSON must be plain text")
	assert.Equal(t, "application/json", resp.Headers["content-type"])
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &e))
	assert.Equal(t, wire.Code(code), e.Error.Code, resp.Body)
	for _, p := range []string{"store:", "spool:", "formdata:", "lambdahttp:"} {
		assert.NotContains(t, e.Error.Message, p)
	}
	assert.NotEmpty(t, e.Error.RequestID)
	assert.Equal(t, resp.Headers["x-request-id"], e.Error.RequestID)
}

// TestThresholdTable runs the shared table through Lambda events: every
// case that fits in an event, in both dialects, base64 and plain.
func TestThresholdTable(t *testing.T) {
	e := newEnv(t)
	for _, d := range []uploadtest.Dialect{uploadtest.FunctionURL, uploadtest.StartAPI} {
		for _, b64 := range []bool{true, false} {
			for _, c := range uploadtest.Cases(spool.DefaultThreshold, uploadtest.MaxEventPayload) {
				if c.Mode == uploadtest.RawChunked {
					continue // an event body always has a known length
				}
				name := string(d) + "/" + map[bool]string{true: "base64", false: "plain"}[b64] + "/" + c.Name
				t.Run(name, func(t *testing.T) {
					files := make([]uploadtest.File, len(c.Files))
					for i, f := range c.Files {
						f.Name = name + "/" + f.Name
						if c.Mode != uploadtest.RawLength {
							f.Name = strings.ReplaceAll(f.Name, "/", "_")
						}
						f.Text = !b64 // a plain event body carries text only
						files[i] = f
					}
					var payload []byte
					if c.Mode == uploadtest.RawLength {
						f := files[0]
						payload = uploadtest.Event(t, d, http.MethodPut, "/files/"+f.Name, map[string]string{
							"content-type": "application/octet-stream", "content-length": strconv.FormatInt(f.Size, 10),
						}, f.Bytes(), b64)
					} else {
						ct, body, _ := uploadtest.Multipart(files)
						raw, err := io.ReadAll(body)
						require.NoError(t, err)
						payload = uploadtest.Event(t, d, http.MethodPost, "/files", map[string]string{"content-type": ct}, raw, b64)
					}
					require.Less(t, len(payload), 6_291_456, "the event must fit a Function URL request")

					resp := e.invoke(t, payload)
					require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
					assert.False(t, resp.IsBase64Encoded)
					var got wire.UploadResponse
					require.NoError(t, json.Unmarshal([]byte(resp.Body), &got))
					require.Len(t, got.Files, len(files))
					for i, f := range files {
						assert.Equal(t, f.Name, got.Files[i].Name)
						assert.Equal(t, f.Size, got.Files[i].Size)
						assert.Equal(t, f.SHA256(), got.Files[i].SHA256)
						assert.Equal(t, uploadtest.WantSpool(f, spool.DefaultThreshold), got.Files[i].Spool, f.Name)
						uploadtest.RequireFile(t, f, filepath.Join(e.dir, f.Name))
					}
					uploadtest.RequireEmptyDir(t, e.spoolDir)
				})
			}
		}
	}
	assert.Contains(t, e.logs.String(), `"request_id":"aws-req-7"`)
}

func TestInvalidBase64StoresNothing(t *testing.T) {
	e := newEnv(t)
	big := base64.StdEncoding.EncodeToString(uploadtest.File{Size: 3 << 20}.Bytes())
	for name, body := range map[string]string{
		"length not a multiple of 4": "abcde",
		"bad character":              "ab!d",
		"bad character on disk path": big[:len(big)/2] + "*" + big[len(big)/2+1:],
		"padding in the middle":      "ab==cdef",
	} {
		t.Run(name, func(t *testing.T) {
			ev := map[string]any{
				"version": "2.0", "rawPath": "/files/x.bin", "isBase64Encoded": true, "body": body,
				"headers":        map[string]string{"content-type": "application/octet-stream"},
				"requestContext": map[string]any{"http": map[string]any{"method": "PUT"}},
			}
			payload, err := json.Marshal(ev)
			require.NoError(t, err)
			requireAPIError(t, e.invoke(t, payload), http.StatusBadRequest, "bad_request")
			uploadtest.RequireEmptyDir(t, e.spoolDir)
			uploadtest.RequireEmptyDir(t, e.dir)
		})
	}
}

func TestBadEvents(t *testing.T) {
	e := newEnv(t)
	requireAPIError(t, e.invoke(t, []byte(`{"version":`)), http.StatusInternalServerError, "bad_event")
	requireAPIError(t, e.invoke(t, []byte(`{"version":"2.0","rawPath":"/files"}`)), http.StatusInternalServerError, "bad_event")
	requireAPIError(t, e.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPatch, "/files/a", nil, nil, false)), http.StatusMethodNotAllowed, "method_not_allowed")
	requireAPIError(t, e.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodGet, "/nowhere", nil, nil, false)), http.StatusNotFound, "not_found")
	// An encoded traversal reaches the handler as it was sent, and is refused.
	requireAPIError(t, e.invoke(t, uploadtest.Event(t, uploadtest.StartAPI, http.MethodPut, "/files/..%2Fx", nil, []byte("x"), false)), http.StatusBadRequest, "invalid_name")
	uploadtest.RequireEmptyDir(t, e.dir)
}

func TestDownloadIsBase64AndListIsText(t *testing.T) {
	e := newEnv(t)
	f := uploadtest.File{Name: "pic.png", Seed: 4, Size: 5000}
	resp := e.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/pic.png", nil, f.Bytes(), true))
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
	assert.Equal(t, "/files/pic.png", resp.Headers["location"])

	resp = e.invoke(t, uploadtest.Event(t, uploadtest.StartAPI, http.MethodGet, "/files/pic.png", map[string]string{"Range": "bytes=0-99"}, nil, false))
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.True(t, resp.IsBase64Encoded)
	got, err := base64.StdEncoding.DecodeString(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, f.Bytes()[:100], got)
	assert.Equal(t, "image/png", resp.Headers["content-type"])

	resp = e.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodGet, "/files", nil, nil, false))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.False(t, resp.IsBase64Encoded)
	assert.Contains(t, resp.Body, `"name":"pic.png"`)
}

func TestRequestMapping(t *testing.T) {
	var seen *http.Request
	var body []byte
	a := lambdahttp.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		body, _ = io.ReadAll(r.Body)
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
		http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
		w.Header().Add("X-Multi", "x")
		w.Header().Add("X-Multi", "y")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "hi")
	}))
	raw := map[string]any{
		"version": "2.0", "rawPath": "/files/a%20b/c", "rawQueryString": "x=1&y=%2F",
		"cookies":         []string{"s=1", "t=2"},
		"headers":         map[string]string{"X-Custom": "v1,v2", "content-length": "999", "host": "h.example"},
		"isBase64Encoded": true, "body": base64.StdEncoding.EncodeToString([]byte("hello")),
		"requestContext": map[string]any{"http": map[string]any{"method": "POST", "sourceIp": "203.0.113.9"}},
	}
	payload, err := json.Marshal(raw)
	require.NoError(t, err)
	out, err := a.Invoke(context.Background(), payload)
	require.NoError(t, err)
	var resp events.LambdaFunctionURLResponse
	require.NoError(t, json.Unmarshal(out, &resp))

	require.NotNil(t, seen)
	assert.Equal(t, "/files/a%20b/c", seen.URL.EscapedPath())
	assert.Equal(t, "/files/a b/c", seen.URL.Path)
	assert.Equal(t, "1", seen.URL.Query().Get("x"))
	assert.Equal(t, "/", seen.URL.Query().Get("y"))
	assert.Equal(t, "v1,v2", seen.Header.Get("x-custom"))
	assert.Equal(t, "s=1; t=2", seen.Header.Get("Cookie"))
	assert.Equal(t, int64(5), seen.ContentLength, "the decoded length, not the event's header")
	assert.Equal(t, "h.example", seen.Host)
	assert.Equal(t, "203.0.113.9", seen.RemoteAddr)
	assert.Equal(t, "hello", string(body))

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hi", resp.Body)
	assert.False(t, resp.IsBase64Encoded)
	assert.Equal(t, []string{"a=1", "b=2"}, resp.Cookies)
	assert.Equal(t, "x,y", resp.Headers["x-multi"])
}

func TestDecodedLen(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 100, 1 << 20} {
		s := base64.StdEncoding.EncodeToString(make([]byte, n))
		got, err := lambdahttp.DecodedLen(s)
		require.NoError(t, err)
		assert.Equal(t, int64(n), got)
	}
	_, err := lambdahttp.DecodedLen("abc")
	require.ErrorIs(t, err, apierr.ErrBadRequest)
}

// TestBase64EventAllocatesLittle checks that a 4 MB base64 event is decoded
// as a stream: the handler allocates far less than the body's size.
func TestBase64EventAllocatesLittle(t *testing.T) {
	e := newEnv(t)
	f := uploadtest.File{Seed: 8, Size: 4 << 20}
	build := func(i int) *events.LambdaFunctionURLRequest {
		payload := uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/alloc-"+strconv.Itoa(i)+".bin", nil, f.Bytes(), true)
		var ev events.LambdaFunctionURLRequest
		require.NoError(t, json.Unmarshal(payload, &ev))
		return &ev
	}
	const calls = 3
	evs := make([]*events.LambdaFunctionURLRequest, calls+1)
	for i := range evs {
		evs[i] = build(i)
	}
	// A collection empties sync.Pools, and refilling them would be counted
	// against the handler: with the collector off, the warmed pools stay.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	require.Equal(t, http.StatusCreated, e.adapter.Serve(context.Background(), evs[0]).StatusCode)

	// The least of a few calls: under the race detector sync.Pool drops
	// one in four of the buffers given back, and the next call allocates
	// its own; a call's last buffers may also come back just after it
	// answers. Decoding the body whole would show in every call.
	alloc := uint64(math.MaxUint64)
	for _, ev := range evs[1:] {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		resp := e.adapter.Serve(context.Background(), ev)
		runtime.ReadMemStats(&after)
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
		alloc = min(alloc, after.TotalAlloc-before.TotalAlloc)
	}
	t.Logf("handler allocated %d bytes for a %d-byte body (%d-byte base64 event body), the least of %d calls", alloc, f.Size, len(evs[1].Body), calls)
	assert.Less(t, alloc, uint64(1<<20), "allocations must stay far below the body size")
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

// TestSizeLimitAppliesBeforeDecoding: the decoded length is known from the
// encoded one, so an event over the limit is refused without decoding it.
func TestSizeLimitAppliesBeforeDecoding(t *testing.T) {
	logs := &uploadtest.SyncBuffer{}
	sc := spool.DefaultConfig()
	sc.MaxSize = 1 << 20
	h := apitest.New(t, sc, api.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	a := lambdahttp.New(h)

	f := uploadtest.File{Size: 1<<20 + 1}
	var ev events.LambdaFunctionURLRequest
	require.NoError(t, json.Unmarshal(uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/big.bin", nil, f.Bytes(), true), &ev))
	resp := a.Serve(context.Background(), &ev)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, resp.Body)
	assert.Contains(t, resp.Body, `"too_large"`)
	assert.Contains(t, resp.Body, `"limit":1048576`)
	assert.Contains(t, logs.String(), "1048577 bytes", "the decoded size is logged")
	st := h.Spooler.Stats()
	assert.Zero(t, st.DiskBodies+st.MemoryBodies)
	uploadtest.RequireEmptyDir(t, h.SpoolDir)
	uploadtest.RequireEmptyDir(t, h.Dir)
}

// TestTokenThroughEvents: the bearer token works the same through Lambda
// events, in both header dialects.
func TestTokenThroughEvents(t *testing.T) {
	h := apitest.New(t, spool.DefaultConfig(), api.Config{Logger: slog.New(slog.DiscardHandler), Token: "t0k"})
	a := lambdahttp.New(h)
	invoke := func(payload []byte) events.LambdaFunctionURLResponse {
		out, err := a.Invoke(context.Background(), payload)
		require.NoError(t, err)
		var resp events.LambdaFunctionURLResponse
		require.NoError(t, json.Unmarshal(out, &resp))
		return resp
	}
	resp := invoke(uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/t.txt", nil, []byte("hi"), false))
	requireAPIError(t, resp, http.StatusUnauthorized, "unauthorized")
	uploadtest.RequireEmptyDir(t, h.Dir)
	for i, d := range []uploadtest.Dialect{uploadtest.FunctionURL, uploadtest.StartAPI} {
		name := "/files/t" + strconv.Itoa(i) + ".txt"
		resp = invoke(uploadtest.Event(t, d, http.MethodPut, name, map[string]string{"authorization": "Bearer t0k"}, []byte("hi"), false))
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
	}
}

// A HEAD response carries no body in any dialect: not the file's, and not
// an error's, though its status and headers are GET's.
func TestHeadHasNoBody(t *testing.T) {
	e := newEnv(t)
	for _, d := range []uploadtest.Dialect{uploadtest.FunctionURL, uploadtest.StartAPI} {
		resp := e.invoke(t, uploadtest.Event(t, d, http.MethodPut, "/files/h.txt", map[string]string{"content-type": "text/plain"}, []byte("hello"), false))
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)

		resp = e.invoke(t, uploadtest.Event(t, d, http.MethodHead, "/files/h.txt", nil, nil, false))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "5", resp.Headers["content-length"])
		assert.Empty(t, resp.Body)

		resp = e.invoke(t, uploadtest.Event(t, d, http.MethodHead, "/files/missing.txt", nil, nil, false))
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		assert.Equal(t, "application/json", resp.Headers["content-type"])
		assert.Empty(t, resp.Body, "a HEAD 404 with the error's JSON")
		require.NoError(t, os.Remove(filepath.Join(e.dir, "h.txt")))
	}
}
