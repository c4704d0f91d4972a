package funcurl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/wire"
)

// fakeInvoker stands in for the emulator: it reads the whole event,
// checks its announced size, records it, and answers with respond.
type fakeInvoker struct {
	respond func(event []byte) ([]byte, error)

	mu     sync.Mutex
	events [][]byte
	calls  atomic.Int32
}

func (f *fakeInvoker) Invoke(ctx context.Context, inv Invocation) ([]byte, error) {
	f.calls.Add(1)
	ev, err := io.ReadAll(inv.Event)
	if err != nil {
		return nil, err
	}
	if int64(len(ev)) != inv.Size {
		return nil, fmt.Errorf("the event is %d bytes, announced as %d", len(ev), inv.Size)
	}
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
	if f.respond == nil {
		return []byte(`{"statusCode":200,"body":"ok"}`), nil
	}
	return f.respond(ev)
}

func (f *fakeInvoker) last(t *testing.T) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.events, "the function was not invoked")
	return f.events[len(f.events)-1]
}

// emulator is a Handler served over real HTTP on loopback, with its own
// spool dir.
type emulator struct {
	url      string
	spoolDir string
	srv      *httptest.Server
	logs     *uploadtest.SyncBuffer
}

// startEmulator serves a Handler for inv. setup, if given, adjusts the
// Handler before it serves and returns what to serve.
func startEmulator(t *testing.T, inv Invoker, threshold int64, setup ...func(*Handler) http.Handler) *emulator {
	t.Helper()
	e := &emulator{spoolDir: t.TempDir(), logs: &uploadtest.SyncBuffer{}}
	sp, err := spool.New(spool.Config{Dir: e.spoolDir, Threshold: threshold, MemoryBudget: spool.DefaultMemoryBudget})
	require.NoError(t, err)
	h := New(Config{Spooler: sp, Invoker: inv, Logger: slogTo(e.logs)})
	var served http.Handler = h
	for _, s := range setup {
		served = s(h)
	}
	e.srv = httptest.NewServer(served)
	t.Cleanup(e.srv.Close)
	e.url = e.srv.URL
	return e
}

// spoolFiles lists the spool files in dir.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, spool.FilePrefix+"*"))
	require.NoError(t, err)
	return m
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	return req
}

// decodeEvent reads an event both as the generic JSON it is and as the
// struct functions decode it into.
func decodeEvent(t *testing.T, raw []byte) (map[string]any, events.LambdaFunctionURLRequest) {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "%s", raw)
	var ev events.LambdaFunctionURLRequest
	require.NoError(t, json.Unmarshal(raw, &ev))
	return m, ev
}

// buildFunction builds a function for this host, as `sam build` does for
// Lambda: static, with the lambda.norpc tag.
func buildFunction(t *testing.T, pkg string) string {
	t.Helper()
	return testservers.Build(t, testservers.Program{Name: "bootstrap", Pkg: pkg, Tags: "lambda.norpc"})
}

// runRIE runs bootstrap under the real emulator, stopped when the test
// ends; its output is logged if the test fails.
func runRIE(t *testing.T, bootstrap string, env ...string) (*RIE, *uploadtest.SyncBuffer) {
	t.Helper()
	out := &uploadtest.SyncBuffer{}
	r, err := StartRIE(context.Background(), RIEConfig{
		Path:      testservers.Tool(t, testservers.RIE),
		Bootstrap: bootstrap,
		Env:       append(os.Environ(), env...),
		Output:    out,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		r.Close()
		if t.Failed() {
			t.Logf("emulator output:\n%s", out)
		}
	})
	return r, out
}

// assertTooLarge checks the 413 for an event over MaxRequestSize:
// Spillway's error JSON, with the request ID the response carries.
func assertTooLarge(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var got wire.ErrorResponse
	if assert.NoError(t, json.Unmarshal(body, &got), "%s", body) {
		assert.Equal(t, wire.CodeTooLarge, got.Error.Code)
		assert.Equal(t, msgTooLarge, got.Error.Message)
		assert.Equal(t, resp.Header.Get("X-Amzn-Requestid"), got.Error.RequestID)
		assert.NotEmpty(t, got.Error.RequestID)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
