package funcurl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/apierr"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/wire"
)

var (
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	traceRE = regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$`)
)

func TestEventIsAFunctionURLEvent(t *testing.T) {
	inv := &fakeInvoker{}
	e := startEmulator(t, inv, spool.DefaultThreshold)
	u, err := url.Parse(e.url)
	require.NoError(t, err)

	before := time.Now()
	req := newRequest(t, http.MethodGet, e.url+"/files/a%20b/c%2Fd?x=1&x=2&y=%2F&empty=", nil)
	req.Header.Add("X-Custom", "one")
	req.Header.Add("X-Custom", "two")
	req.Header.Add("Cookie", "c1=v1; c2=v2")
	req.Header.Add("Cookie", "c3=v3")
	req.Header.Set("User-Agent", "test-agent/1.0")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, body := do(t, req)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "ok", string(body))

	raw := inv.last(t)
	m, ev := decodeEvent(t, raw)
	assert.Equal(t, "2.0", ev.Version)
	assert.Equal(t, "$default", m["routeKey"])
	assert.Equal(t, "/files/a%20b/c%2Fd", ev.RawPath, "rawPath stays escaped")
	assert.Equal(t, "x=1&x=2&y=%2F&empty=", ev.RawQueryString)
	assert.Equal(t, map[string]string{"x": "1,2", "y": "/", "empty": ""}, ev.QueryStringParameters)
	assert.Equal(t, []string{"c1=v1", "c2=v2", "c3=v3"}, ev.Cookies)

	for k := range ev.Headers {
		assert.Equal(t, strings.ToLower(k), k, "header names are lower-case")
	}
	assert.Equal(t, "c1=v1; c2=v2; c3=v3", ev.Headers["cookie"], "the header stays beside the list")
	assert.Equal(t, "one,two", ev.Headers["x-custom"])
	assert.Equal(t, "test-agent/1.0", ev.Headers["user-agent"])
	assert.Equal(t, u.Host, ev.Headers["host"])
	assert.Equal(t, "203.0.113.9, 127.0.0.1", ev.Headers["x-forwarded-for"])
	assert.Equal(t, "http", ev.Headers["x-forwarded-proto"])
	assert.Equal(t, u.Port(), ev.Headers["x-forwarded-port"])
	assert.Regexp(t, traceRE, ev.Headers["x-amzn-trace-id"])
	assert.Equal(t, ev.Headers["x-amzn-trace-id"], resp.Header.Get("X-Amzn-Trace-Id"))

	rc := ev.RequestContext
	assert.Equal(t, "anonymous", rc.AccountID)
	assert.Equal(t, "127", rc.APIID)
	assert.Equal(t, u.Host, rc.DomainName)
	assert.Equal(t, "127", rc.DomainPrefix)
	assert.Equal(t, http.MethodGet, rc.HTTP.Method)
	assert.Equal(t, "/files/a b/c/d", rc.HTTP.Path)
	assert.Equal(t, "HTTP/1.1", rc.HTTP.Protocol)
	assert.Equal(t, "127.0.0.1", rc.HTTP.SourceIP)
	assert.Equal(t, "test-agent/1.0", rc.HTTP.UserAgent)
	assert.Regexp(t, uuidRE, rc.RequestID)
	assert.Equal(t, rc.RequestID, resp.Header.Get("X-Amzn-Requestid"))
	rcm := m["requestContext"].(map[string]any)
	assert.Equal(t, "$default", rcm["routeKey"])
	assert.Equal(t, "$default", rcm["stage"])
	at, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.Time)
	require.NoError(t, err, rc.Time)
	assert.WithinDuration(t, before, at, 2*time.Second)
	assert.WithinDuration(t, before, time.UnixMilli(rc.TimeEpoch), 2*time.Second)

	assert.NotContains(t, m, "body", "no body, no body field")
	assert.False(t, ev.IsBase64Encoded)
	assert.NotContains(t, m, "pathParameters", "a Function URL has no routes")

	// A second request gets its own IDs.
	resp2, _ := do(t, newRequest(t, http.MethodGet, e.url+"/", nil))
	assert.NotEqual(t, resp.Header.Get("X-Amzn-Requestid"), resp2.Header.Get("X-Amzn-Requestid"))
	assert.Contains(t, e.logs.String(), `msg=request method=GET path=/files/a%20b/c%2Fd status=200`)
}

// TestEventMatchesCapturedAWSEvent replays the request behind an event
// that aws-lambda-go captured from a deployed Function URL
// (lambdaurl/testdata, made by its gen-events.sh) and compares every part
// that does not depend on the account, the URL or the moment: the same
// headers, the Cookie header kept beside the cookies list, the same body,
// path, query and route.
func TestEventMatchesCapturedAWSEvent(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output()
	require.NoError(t, err)
	captured, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)),
		"lambdaurl", "testdata", "function-url-request-with-headers-and-cookies-and-text-body.json"))
	require.NoError(t, err)
	want, wantEv := decodeEvent(t, captured)

	inv := &fakeInvoker{}
	e := startEmulator(t, inv, spool.DefaultThreshold)
	req := newRequest(t, http.MethodPost, e.url+"/hello?hello=world&foo=bar", strings.NewReader(`{"hello": "world"}`))
	for k, v := range map[string]string{
		"Header1": "h1", "Header2": "h1,h2", "Header3": "h3",
		"Cookie":       "foo=bar; hello=hello",
		"Content-Type": "application/json",
		"Accept":       "*/*", "Accept-Encoding": "gzip, deflate",
		"User-Agent": "python-requests/2.28.2",
	} {
		req.Header.Set(k, v)
	}
	resp, body := do(t, req)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	got, gotEv := decodeEvent(t, inv.last(t))

	// What the deployment, the client's address and the moment decide.
	local := func(k string) bool {
		return k == "host" || strings.HasPrefix(k, "x-amz-") || strings.HasPrefix(k, "x-amzn-") || strings.HasPrefix(k, "x-forwarded-")
	}
	for k, v := range wantEv.Headers {
		if !local(k) {
			assert.Equal(t, v, gotEv.Headers[k], "header %s", k)
		}
	}
	for k := range gotEv.Headers {
		assert.True(t, local(k) || wantEv.Headers[k] != "", "header %s is not in the captured event", k)
	}
	assert.Equal(t, wantEv.Cookies, gotEv.Cookies)
	assert.Equal(t, wantEv.Body, gotEv.Body)
	assert.Equal(t, wantEv.IsBase64Encoded, gotEv.IsBase64Encoded)
	assert.Equal(t, wantEv.RawPath, gotEv.RawPath)
	assert.Equal(t, wantEv.RawQueryString, gotEv.RawQueryString)
	assert.Equal(t, wantEv.QueryStringParameters, gotEv.QueryStringParameters)
	assert.Equal(t, want["version"], got["version"])
	assert.Equal(t, want["routeKey"], got["routeKey"])
	wantHTTP, gotHTTP := wantEv.RequestContext.HTTP, gotEv.RequestContext.HTTP
	wantHTTP.SourceIP, gotHTTP.SourceIP = "", ""
	assert.Equal(t, wantHTTP, gotHTTP)
	wantRC, gotRC := want["requestContext"].(map[string]any), got["requestContext"].(map[string]any)
	assert.Equal(t, wantRC["routeKey"], gotRC["routeKey"])
	assert.Equal(t, wantRC["stage"], gotRC["stage"])
}

func TestClientTraceIDIsKept(t *testing.T) {
	inv := &fakeInvoker{}
	e := startEmulator(t, inv, spool.DefaultThreshold)
	req := newRequest(t, http.MethodGet, e.url+"/", nil)
	req.Header.Set("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
	resp, _ := do(t, req)
	_, ev := decodeEvent(t, inv.last(t))
	assert.Equal(t, "Root=1-5759e988-bd862e3fe1be46a994272793", ev.Headers["x-amzn-trace-id"])
	assert.Equal(t, "Root=1-5759e988-bd862e3fe1be46a994272793", resp.Header.Get("X-Amzn-Trace-Id"))
}

// TestBodyEncoding: only text types that are valid UTF-8 travel as text;
// everything else is base64, whether the body sits in memory or on disk.
func TestBodyEncoding(t *testing.T) {
	binary := uploadtest.File{Seed: 1, Size: 100 << 10}.Bytes()
	// Multi-byte runes across every read boundary of the UTF-8 scan.
	runes := strings.Repeat("é€😀 ", 20<<10)
	tricky := "héllo \"quoted\"\n\t\\ \x01\x1f <b>&amp;</b> \u2028 end"
	cases := []struct {
		name, contentType string
		body              []byte
		base64            bool
	}{
		{"text/plain", "text/plain; charset=utf-8", []byte(tricky), false},
		{"text/html", "text/html", []byte("<p>hi</p>"), false},
		{"runes", "text/plain", []byte(runes), false},
		{"json", "application/json", []byte(`{"a":"b\"c"}`), false},
		{"+json", "application/vnd.api+json", []byte(`{"data":[]}`), false},
		{"xml", "application/xml", []byte("<a/>"), false},
		{"+xml", "image/svg+xml", []byte("<svg/>"), false},
		{"javascript", "application/javascript", []byte("alert(1)"), false},
		{"text, not UTF-8", "text/plain", []byte{'a', 0xff, 0xfe, 'b'}, true},
		{"text cut mid-rune", "text/plain", []byte("ab\xe2\x82"), true},
		{"multipart", "multipart/form-data; boundary=x", []byte("--x\r\n\r\nhi\r\n--x--\r\n"), true},
		{"form", "application/x-www-form-urlencoded", []byte("a=b"), true},
		{"octet-stream", "application/octet-stream", binary, true},
		{"no content type", "", []byte("plain words"), true},
		{"malformed content type", "text/", []byte("plain words"), true},
	}
	for _, threshold := range []int64{spool.DefaultThreshold, 16} {
		inv := &fakeInvoker{}
		e := startEmulator(t, inv, threshold)
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/threshold-%d", c.name, threshold), func(t *testing.T) {
				req := newRequest(t, http.MethodPut, e.url+"/files/x", bytes.NewReader(c.body))
				if c.contentType != "" {
					req.Header.Set("Content-Type", c.contentType)
				}
				resp, body := do(t, req)
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				m, ev := decodeEvent(t, inv.last(t))
				assert.Equal(t, c.base64, ev.IsBase64Encoded)
				got := []byte(ev.Body)
				if ev.IsBase64Encoded {
					var err error
					got, err = base64.StdEncoding.DecodeString(ev.Body)
					require.NoError(t, err)
				}
				assert.True(t, bytes.Equal(c.body, got), "the body arrives intact")
				assert.Equal(t, strconv.Itoa(len(c.body)), ev.Headers["content-length"])
				if c.contentType == "" {
					assert.NotContains(t, m["headers"], "content-type")
				}
				uploadtest.RequireEmptyDir(t, e.spoolDir)
			})
		}
	}
}

func TestEmptyBodies(t *testing.T) {
	inv := &fakeInvoker{}
	e := startEmulator(t, inv, spool.DefaultThreshold)
	for name, body := range map[string]io.Reader{
		"length 0": http.NoBody,
		"chunked":  io.MultiReader(), // unknown length, no bytes
	} {
		t.Run(name, func(t *testing.T) {
			req := newRequest(t, http.MethodPost, e.url+"/files", body)
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, _ := do(t, req)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			m, _ := decodeEvent(t, inv.last(t))
			assert.NotContains(t, m, "body")
			assert.Equal(t, false, m["isBase64Encoded"])
		})
	}
}

// put sends n bytes of text or binary, with a Content-Length or chunked.
func put(t *testing.T, e *emulator, contentType string, n int64, chunked bool) (*http.Response, []byte) {
	t.Helper()
	f := uploadtest.File{Seed: 9, Size: n, Text: strings.HasPrefix(contentType, "text/")}
	var body io.Reader = f.Reader()
	if chunked {
		body = io.MultiReader(body) // hides the length
	}
	req := newRequest(t, http.MethodPut, e.url+"/files/x", body)
	if !chunked {
		req.ContentLength = n
	}
	req.Header.Set("Content-Type", contentType)
	return do(t, req)
}

// TestRequestSizeLimitIsExact: an event of exactly MaxRequestSize bytes is
// invoked; one byte more is refused with 413 and never reaches the
// function, for text and base64, with and without a Content-Length.
func TestRequestSizeLimitIsExact(t *testing.T) {
	inv := &fakeInvoker{}
	e := startEmulator(t, inv, spool.DefaultThreshold)
	testExactLimit(t, limitTarget{
		url:      e.url,
		spoolDir: e.spoolDir,
		event: func(t *testing.T, _ *http.Response, _ []byte) eventSize {
			return measureEvent(t, inv.last(t))
		},
		calls: func(*testing.T) int { return int(inv.calls.Load()) },
	})

	// Far over the limit without a length: reading stops at the limit.
	calls := inv.calls.Load()
	resp, body := put(t, e, "application/octet-stream", MaxRequestSize+1<<20, true)
	assertTooLarge(t, resp, body)
	assert.Equal(t, calls, inv.calls.Load())
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

// TestOversizedLengthIsRefusedBeforeTheBody: with Expect: 100-continue, a
// body that cannot fit is refused without "100 Continue", so the client
// never sends it. 5 MB of binary is 6.7 MB of base64.
func TestOversizedLengthIsRefusedBeforeTheBody(t *testing.T) {
	inv := &fakeInvoker{}
	e := startEmulator(t, inv, spool.DefaultThreshold)
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	for _, c := range []struct {
		contentType string
		length      int64
	}{
		{"application/octet-stream", 5_000_000},
		{"text/plain", MaxRequestSize},
		{"text/plain", 1 << 40},
	} {
		conn, err := net.Dial("tcp", u.Host)
		require.NoError(t, err)
		_, err = fmt.Fprintf(conn, "PUT /files/big HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
			u.Host, c.contentType, c.length)
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s: no 100 Continue, a 413", c.contentType)
		assertTooLarge(t, resp, body)
		assert.Regexp(t, uuidRE, resp.Header.Get("X-Amzn-Requestid"))
	}
	assert.Zero(t, inv.calls.Load())
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

func TestResponseMapping(t *testing.T) {
	type reply struct {
		payload []byte
		err     error
	}
	var next atomic.Pointer[reply]
	inv := &fakeInvoker{respond: func([]byte) ([]byte, error) {
		r := next.Load()
		return r.payload, r.err
	}}
	e := startEmulator(t, inv, spool.DefaultThreshold)
	get := func(p any) (*http.Response, []byte) {
		t.Helper()
		switch p := p.(type) {
		case string:
			next.Store(&reply{payload: []byte(p)})
		case error:
			next.Store(&reply{err: p})
		}
		return do(t, newRequest(t, http.MethodGet, e.url+"/", nil))
	}
	requireBadGateway := func(p any) {
		t.Helper()
		resp, body := get(p)
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "%.100v", p)
		assert.JSONEq(t, `{"message":"Internal Server Error"}`, string(body))
		assert.Regexp(t, uuidRE, resp.Header.Get("X-Amzn-Requestid"))
	}

	resp, body := get(`{"statusCode":201,"headers":{"content-type":"application/octet-stream","x-custom":"a,b","x-amzn-requestid":"spoofed"},` +
		`"cookies":["a=1; Path=/","b=2"],"body":"AAEC/w==","isBase64Encoded":true}`)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, []byte{0, 1, 2, 0xff}, body)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "a,b", resp.Header.Get("X-Custom"))
	assert.Equal(t, []string{"a=1; Path=/", "b=2"}, resp.Header.Values("Set-Cookie"))
	assert.Equal(t, "4", resp.Header.Get("Content-Length"))
	_, ev := decodeEvent(t, inv.last(t))
	assert.Equal(t, ev.RequestContext.RequestID, resp.Header.Get("X-Amzn-Requestid"), "the function cannot spoof the request ID")

	// Valid JSON without a statusCode is the body of a 200.
	resp, body = get(`"Hello, world!"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, `"Hello, world!"`, string(body))
	resp, body = get(`{"message":"hi"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"message":"hi"}`, string(body))

	// No type from the function, none in the response (not a sniffed one).
	resp, body = get(`{"statusCode":200,"body":"<html><body>hi</body></html>"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "<html><body>hi</body></html>", string(body))
	assert.NotContains(t, resp.Header, "Content-Type")
	resp, body = get(`{"statusCode":204}`)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Empty(t, body)

	// The largest payload passes; one byte more is a 502, as on Lambda.
	big := `"` + strings.Repeat("x", MaxResponseSize-2) + `"`
	resp, body = get(big)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, body, MaxResponseSize)
	requireBadGateway(`"` + strings.Repeat("x", MaxResponseSize-1) + `"`)

	requireBadGateway(`{"errorMessage":"boom","errorType":"errorString"}`)
	requireBadGateway(`Task timed out after 3.00 seconds`)
	requireBadGateway(``)
	requireBadGateway(`{"statusCode":"201"}`)
	requireBadGateway(`{"statusCode":42}`)
	requireBadGateway(`{"statusCode":200,"body":"not base64!","isBase64Encoded":true}`)
	requireBadGateway(errors.New("the emulator has exited"))
	assert.Contains(t, e.logs.String(), `level=ERROR msg=request method=GET path=/ status=502`)
}

// blockingInvoker holds every invocation until released, and records how
// many ran at once.
type blockingInvoker struct {
	entered  chan struct{}
	release  chan struct{}
	running  atomic.Int32
	most     atomic.Int32
	calls    atomic.Int32
	ctxAlive atomic.Bool // the context was still live when released
}

func (b *blockingInvoker) Invoke(ctx context.Context, inv Invocation) ([]byte, error) {
	b.calls.Add(1)
	n := b.running.Add(1)
	defer b.running.Add(-1)
	for {
		m := b.most.Load()
		if n <= m || b.most.CompareAndSwap(m, n) {
			break
		}
	}
	if _, err := io.Copy(io.Discard, inv.Event); err != nil {
		return nil, err
	}
	b.entered <- struct{}{}
	<-b.release
	b.ctxAlive.Store(ctx.Err() == nil)
	return []byte(`{"statusCode":200,"body":"done"}`), nil
}

// TestInvocationsAreSerialised: the emulator runs one invocation at a
// time, so the others wait in line, with their bodies spooled.
func TestInvocationsAreSerialised(t *testing.T) {
	const n = 4
	inv := &blockingInvoker{entered: make(chan struct{}, n), release: make(chan struct{})}
	queued := make(chan struct{}, n)
	e := startEmulator(t, inv, 16, func(h *Handler) http.Handler {
		h.queued = func() { queued <- struct{}{} }
		return h
	})

	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req := newRequest(t, http.MethodPut, fmt.Sprintf("%s/files/%d", e.url, i), strings.NewReader("a body over the threshold"))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				statuses[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	<-inv.entered
	for range n - 1 {
		<-queued
	}
	assert.Len(t, spoolFiles(t, e.spoolDir), n, "every body is spooled while it waits")
	close(inv.release)
	for range n - 1 {
		<-inv.entered
	}
	wg.Wait()
	assert.Equal(t, []int{200, 200, 200, 200}, statuses)
	assert.EqualValues(t, 1, inv.most.Load(), "one invocation at a time")
	assert.Contains(t, e.logs.String(), "wait=")
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

// TestClientGoneWhileQueued: a request whose client gives up while it
// waits is never invoked, and its spool file goes. A client that gives up
// during its invocation does not cut the function short.
func TestClientGoneWhileQueued(t *testing.T) {
	inv := &blockingInvoker{entered: make(chan struct{}, 2), release: make(chan struct{})}
	queued := make(chan struct{}, 1)
	left := make(chan string, 2) // paths whose request context ended
	e := startEmulator(t, inv, 16, func(h *Handler) http.Handler {
		h.queued = func() { queued <- struct{}{} }
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			stop := context.AfterFunc(r.Context(), func() { left <- r.URL.Path })
			defer stop()
			h.ServeHTTP(w, r)
		})
	})

	firstCtx, cancelFirst := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		req := newRequest(t, http.MethodPut, e.url+"/files/first", strings.NewReader("a body over the threshold"))
		_, err := http.DefaultClient.Do(req.WithContext(firstCtx))
		first <- err
	}()
	<-inv.entered

	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		req := newRequest(t, http.MethodPut, e.url+"/files/second", strings.NewReader("another body over the threshold"))
		_, err := http.DefaultClient.Do(req.WithContext(ctx))
		second <- err
	}()
	<-queued
	cancel()
	require.ErrorIs(t, <-second, context.Canceled)
	assert.Equal(t, "/files/second", <-left)

	// The first client leaves mid-invocation; the server sees it go.
	cancelFirst()
	require.ErrorIs(t, <-first, context.Canceled)
	assert.Equal(t, "/files/first", <-left)
	close(inv.release)
	e.srv.Close() // waits for the handlers

	assert.EqualValues(t, 1, inv.calls.Load(), "the request that left while queued is not invoked")
	assert.True(t, inv.ctxAlive.Load(), "the invocation outlives its client")
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

// TestStalledBodyTimesOut: a body that sends nothing for ReadTimeout gets
// a 400, and its spool file goes.
func TestStalledBodyTimesOut(t *testing.T) {
	inv := &fakeInvoker{}
	e := startEmulator(t, inv, 16, func(h *Handler) http.Handler {
		h.readTimeout = 200 * time.Millisecond
		return h
	})
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "PUT /files/slow HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n%s", u.Host, strings.Repeat("x", 50))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, e.logs.String())
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Zero(t, inv.calls.Load())
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

// A request refused during shutdown gets the API's 503 JSON, not the
// function: the emulator answers as the local server does.
func TestUnavailableAnswersWithoutTheFunction(t *testing.T) {
	inv := &fakeInvoker{}
	var logs uploadtest.SyncBuffer
	h := New(Config{Invoker: inv, Logger: slogTo(&logs)})
	rec := httptest.NewRecorder()
	h.Unavailable(rec, httptest.NewRequest(http.MethodPut, "/files/a.bin", strings.NewReader("x")))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	var e struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	assert.Equal(t, "unavailable", e.Error.Code)
	assert.Equal(t, apierr.Of(wire.CodeUnavailable).Message, e.Error.Message, "the API's own message")
	assert.Equal(t, rec.Header().Get("X-Amzn-Requestid"), e.Error.RequestID)
	assert.Zero(t, inv.calls.Load())
	assert.Contains(t, logs.String(), "status=503")
	assert.Contains(t, logs.String(), "request_id="+e.Error.RequestID)
}
