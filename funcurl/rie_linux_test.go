package funcurl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// TestRealEmulator runs testdata/testfunc under the real Runtime Interface
// Emulator behind the Handler: the event as the function really receives
// it, each way a function can answer or fail, recovery from a crash, and
// concurrent clients against an emulator that serves one at a time.
func TestRealEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function and runs the emulator")
	}
	record := filepath.Join(t.TempDir(), "invocations")
	rie, _ := runRIE(t, buildFunction(t, "./testdata/testfunc"), "AWS_LAMBDA_FUNCTION_TIMEOUT=60", "TESTFUNC_RECORD="+record)
	e := startEmulator(t, rie, 1<<10)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("handler log:\n%s", e.logs)
		}
	})

	t.Run("binary body", func(t *testing.T) {
		f := uploadtest.File{Seed: 3, Size: 64 << 10}
		req := newRequest(t, http.MethodPut, e.url+"/echo?q=1", bytes.NewReader(f.Bytes()))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-Mixed-Case", "Value")
		req.Header.Set("Cookie", "a=1; b=2")
		resp, body := do(t, req)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		m, ev := decodeEvent(t, body)
		assert.Equal(t, "$default", m["routeKey"])
		assert.Equal(t, "/echo", ev.RawPath)
		assert.Equal(t, "q=1", ev.RawQueryString)
		assert.Equal(t, "Value", ev.Headers["x-mixed-case"], "headers arrive lower-cased")
		for k := range ev.Headers {
			assert.Equal(t, strings.ToLower(k), k)
		}
		assert.Equal(t, []string{"a=1", "b=2"}, ev.Cookies)
		assert.Equal(t, resp.Header.Get("X-Amzn-Requestid"), ev.RequestContext.RequestID)
		require.True(t, ev.IsBase64Encoded)
		got, err := base64.StdEncoding.DecodeString(ev.Body)
		require.NoError(t, err)
		uploadtest.RequireContent(t, f, bytes.NewReader(got))
		uploadtest.RequireEmptyDir(t, e.spoolDir)
	})

	t.Run("text body", func(t *testing.T) {
		text := "line one\n\"quoted\" \\ tab\t é€😀"
		req := newRequest(t, http.MethodPost, e.url+"/echo", strings.NewReader(text))
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp, body := do(t, req)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		_, ev := decodeEvent(t, body)
		assert.False(t, ev.IsBase64Encoded)
		assert.Equal(t, text, ev.Body)
	})

	t.Run("response with cookies and a binary body", func(t *testing.T) {
		resp, body := do(t, newRequest(t, http.MethodGet, e.url+"/binary", nil))
		assert.Equal(t, http.StatusCreated, resp.StatusCode)
		assert.Equal(t, []byte{0, 1, 2, 0xff, 0xfe}, body)
		assert.Equal(t, "a,b", resp.Header.Get("X-Custom"))
		assert.Equal(t, []string{"a=1; Path=/", "b=2; Max-Age=60"}, resp.Header.Values("Set-Cookie"))
	})

	t.Run("inferred response", func(t *testing.T) {
		resp, body := do(t, newRequest(t, http.MethodGet, e.url+"/plain", nil))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		assert.Equal(t, `"Hello, world!"`, string(body))
	})

	for _, path := range []string{"/error", "/panic", "/exit", "/big"} {
		t.Run("fails: "+path, func(t *testing.T) {
			resp, body := do(t, newRequest(t, http.MethodGet, e.url+path, nil))
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			assert.JSONEq(t, `{"message":"Internal Server Error"}`, string(body))
			// The next invocation works: after a crash, in a new runtime.
			resp, body = do(t, newRequest(t, http.MethodGet, e.url+"/echo", nil))
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		})
	}

	t.Run("over the limit", func(t *testing.T) {
		f := uploadtest.File{Seed: 4, Size: 5_000_000}
		req := newRequest(t, http.MethodPut, e.url+"/echo", f.Reader())
		req.ContentLength = f.Size
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, body := do(t, req)
		assertTooLarge(t, resp, body)
		uploadtest.RequireEmptyDir(t, e.spoolDir)
	})

	// The emulator itself passes events up to MaxResponseSize and cuts
	// longer ones: the limit is the Handler's, to the byte.
	t.Run("exactly at the limit", func(t *testing.T) {
		testExactLimit(t, limitTarget{
			url:      e.url,
			spoolDir: e.spoolDir,
			event: func(t *testing.T, resp *http.Response, body []byte) eventSize {
				t.Helper()
				var size eventSize
				require.NoError(t, json.Unmarshal(body, &size), "%s", body)
				return size
			},
			calls: func(t *testing.T) int {
				t.Helper()
				b, err := os.ReadFile(record)
				require.NoError(t, err)
				return bytes.Count(b, []byte("\n"))
			},
		})
	})

	// Unserialised, the emulator would refuse all but one of these.
	t.Run("concurrent clients", func(t *testing.T) {
		var wg sync.WaitGroup
		statuses := make([]int, 8)
		for i := range statuses {
			wg.Go(func() {
				body := strings.Repeat(fmt.Sprint(i), 4<<10)
				req, err := http.NewRequest(http.MethodPut, e.url+"/echo", strings.NewReader(body))
				if err != nil {
					return
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			})
		}
		wg.Wait()
		for i, s := range statuses {
			assert.Equal(t, http.StatusOK, s, "client %d", i)
		}
		uploadtest.RequireEmptyDir(t, e.spoolDir)
	})

	t.Run("close stops the emulator and the function", func(t *testing.T) {
		resp, body := do(t, newRequest(t, http.MethodGet, e.url+"/pid", nil))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var fnPid int
		_, err := fmt.Sscan(string(body), &fnPid)
		require.NoError(t, err)
		fn := testservers.PidFD(t, fnPid)

		require.NoError(t, rie.Close())
		<-rie.Exited()
		testservers.WaitGone(t, fn)
		resp, body = do(t, newRequest(t, http.MethodGet, e.url+"/echo", nil))
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode, string(body))
	})
}

// TestRIEStartFailures: a missing binary, and an emulator that exits at
// once, are errors from StartRIE, not hangs.
func TestRIEStartFailures(t *testing.T) {
	_, err := StartRIE(t.Context(), RIEConfig{Path: "/nonexistent/aws-lambda-rie", Bootstrap: "/bin/true"})
	require.ErrorContains(t, err, "start the emulator")
	_, err = StartRIE(t.Context(), RIEConfig{Path: "/bin/false", Bootstrap: "/bin/true"})
	require.ErrorIs(t, err, errExitedEarly)
}

var _ Invoker = (*RIE)(nil)
