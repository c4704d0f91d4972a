package api_test

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"spillway/api"
	"spillway/internal/sniff"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
	"spillway/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type server struct {
	URL      string
	Addr     string
	dir      string // the upload directory
	spoolDir string
	spooler  *spool.Spooler
	client   *http.Client
	logs     *uploadtest.SyncBuffer
	served   chan int // one status per finished request
	bearer   string   // what authed requests send
}

type options struct {
	spool       func(*spool.Config)
	store       dirstore.Options
	readTimeout time.Duration
	token       string
	maxUploads  int
	observer    api.Observer
	progress    time.Duration
	maxListings int
	wrapStore   func(store.Store) store.Store // nil: the directory store as it is
	retention   time.Duration
	hooks       api.Hooks
	allowTypes  string
	auth        api.Authenticator
	userQuota   int64
}

func newServer(t *testing.T, o options) *server {
	t.Helper()
	s := &server{
		dir:      filepath.Join(t.TempDir(), "uploads"),
		spoolDir: t.TempDir(),
		logs:     &uploadtest.SyncBuffer{},
		served:   make(chan int, 1024),
		bearer:   cmp.Or(o.token, "t0k"),
	}
	cfg := spool.DefaultConfig()
	cfg.Dir = s.spoolDir
	if o.spool != nil {
		o.spool(&cfg)
	}
	var err error
	s.spooler, err = spool.New(cfg)
	require.NoError(t, err)
	o.store.Fsync = true
	st, _, err := dirstore.Open(s.dir, o.store)
	require.NoError(t, err)
	allow, err := sniff.Parse(o.allowTypes)
	require.NoError(t, err)
	var hst store.Store = st
	if o.wrapStore != nil {
		hst = o.wrapStore(st)
	}
	h := api.New(api.Config{
		Spooler:               s.spooler,
		Store:                 hst,
		MaxConcurrentListings: o.maxListings,
		Logger:                slog.New(slog.NewJSONHandler(s.logs, nil)),
		ReadTimeout:           o.readTimeout,
		Token:                 o.token,
		MaxConcurrentUploads:  o.maxUploads,
		Observer:              o.observer,
		ProgressInterval:      o.progress,
		Retention:             o.retention,
		Hooks:                 o.hooks,
		AllowTypes:            allow,
		Authenticator:         o.auth,
		UserQuota:             o.userQuota,
	})
	t.Cleanup(func() { st.Close() }) // runs after start's cleanup
	s.start(t, h)
	return s
}

// start serves h on loopback, recording each finished request's status,
// and checks when the test ends that the spool is empty and released.
func (s *server) start(t *testing.T, h http.Handler) {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		s.served <- rec.status
	}))
	s.URL, s.Addr = ts.URL, ts.Listener.Addr().String()
	s.client = &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		ts.Close()
		uploadtest.RequireEmptyDir(t, s.spoolDir)
		stats := s.spooler.Stats()
		assert.Zero(t, stats.OpenFiles, "spool files still open")
		assert.Zero(t, stats.MemoryInUse, "memory budget still held")
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// waitServed waits for the handler to finish one request and returns the
// status it wrote (0 when it wrote none).
func (s *server) waitServed(t *testing.T) int {
	t.Helper()
	select {
	case st := <-s.served:
		return st
	case <-time.After(30 * time.Second):
		require.FailNow(t, "handler did not finish")
		return 0
	}
}

// internalPrefixes begin the errors of Spillway's packages: none may reach
// a response.
var internalPrefixes = []string{"store:", "dirstore:", "s3store:", "spool:", "formdata:", "api:"}

func (s *server) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// errorCase is a request without a body and the error it is answered.
type errorCase struct {
	method, path string
	status       int
	code         string
}

// requireErrors sends each case's request and requires its error, with an
// Allow header on a 405.
func (s *server) requireErrors(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		resp, body := s.do(t, s.request(t, tc.method, tc.path, nil, 0))
		requireError(t, resp, body, tc.status, tc.code)
		if tc.status == http.StatusMethodNotAllowed {
			assert.NotEmpty(t, resp.Header.Get("Allow"), "%s %s", tc.method, tc.path)
		}
		s.waitServed(t)
	}
}

func (s *server) request(t *testing.T, method, path string, body io.Reader, length int64) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, body)
	require.NoError(t, err)
	req.ContentLength = length
	if body == nil {
		req.ContentLength = 0
	}
	return req
}

func requireError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, wire.Code(code), e.Error.Code, string(body))
	assert.NotEmpty(t, e.Error.Message)
	for _, p := range internalPrefixes {
		assert.NotContains(t, e.Error.Message, p)
	}
	assert.NotEmpty(t, e.Error.RequestID)
	assert.Equal(t, resp.Header.Get("X-Request-Id"), e.Error.RequestID)
}

// requireLogged checks that the detail of a refusal is in its log line.
func (s *server) requireLogged(t *testing.T, resp *http.Response, detail string) {
	t.Helper()
	assert.Contains(t, s.logLine(t, resp.Header.Get("X-Request-Id"))["error"], detail)
}

// logLine returns the handler's log line for the request with this ID.
func (s *server) logLine(t *testing.T, id string) map[string]any {
	t.Helper()
	require.NotEmpty(t, id)
	for l := range strings.SplitSeq(strings.TrimSpace(s.logs.String()), "\n") {
		var line map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &line), l)
		if line["msg"] == "request" && line["request_id"] == id {
			return line
		}
	}
	require.FailNow(t, "no log line for request "+id, s.logs.String())
	return nil
}

// send uploads a case the way its mode says.
func (s *server) send(t *testing.T, c uploadtest.Case) (*http.Response, []byte) {
	t.Helper()
	var req *http.Request
	switch c.Mode {
	case uploadtest.RawLength:
		f := c.Files[0]
		req = s.request(t, http.MethodPut, "/files/"+f.Name, f.Reader(), f.Size)
	case uploadtest.RawChunked:
		f := c.Files[0]
		req = s.request(t, http.MethodPut, "/files/"+f.Name, io.MultiReader(f.Reader()), -1)
		req.TransferEncoding = []string{"chunked"}
	default:
		ct, body, n := uploadtest.Multipart(c.Files)
		req = s.request(t, http.MethodPost, "/files", body, n)
		req.Header.Set("Content-Type", ct)
	}
	return s.do(t, req)
}

// TestThresholdTable runs the shared table through a real HTTP server.
func TestThresholdTable(t *testing.T) {
	s := newServer(t, options{})
	for _, c := range uploadtest.Cases(spool.DefaultThreshold, 0) {
		t.Run(c.Name, func(t *testing.T) {
			resp, body := s.send(t, c)
			require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
			var got wire.UploadResponse
			require.NoError(t, json.Unmarshal(body, &got))
			require.Len(t, got.Files, len(c.Files))
			for i, f := range c.Files {
				r := got.Files[i]
				assert.Equal(t, f.Name, r.Name)
				assert.Equal(t, f.Size, r.Size)
				assert.Equal(t, f.SHA256(), r.SHA256)
				assert.Equal(t, storetest.CRC64NVME(f), r.CRC64NVME, "every direct upload reports its CRC64NVME")
				assert.Empty(t, r.Declared, "a direct upload's checksums are computed from its bytes")
				assert.Equal(t, uploadtest.WantSpool(f, spool.DefaultThreshold), r.Spool, f.Name)
				uploadtest.RequireFile(t, f, filepath.Join(s.dir, f.Name))
			}
			if len(c.Files) == 1 {
				assert.Equal(t, "/files/"+c.Files[0].Name, resp.Header.Get("Location"))
			} else {
				assert.Empty(t, resp.Header.Get("Location"))
			}
			s.waitServed(t)
			uploadtest.RequireEmptyDir(t, s.spoolDir)
		})
	}
}

// trackingReader records whether anything read it.
type trackingReader struct {
	r    io.Reader
	read atomic.Bool
}

func (tr *trackingReader) Read(p []byte) (int, error) {
	tr.read.Store(true)
	return tr.r.Read(p)
}

func TestRefusedBeforeTheBodyIsSent(t *testing.T) {
	s := newServer(t, options{spool: func(c *spool.Config) { c.MaxSize = 1 << 20 }})
	taken := uploadtest.File{Name: "taken.bin", Size: 10}
	resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{taken}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)

	cases := []struct {
		name, path string
		size       int64
		status     int
		code       string
	}{
		{"over the limit", "/files/big.bin", 1<<20 + 1, http.StatusRequestEntityTooLarge, "too_large"},
		{"existing name", "/files/taken.bin", 100, http.StatusConflict, "exists"},
		{"bad name", "/files/..%2Fescape.bin", 100, http.StatusBadRequest, "invalid_name"},
		{"hidden name", "/files/.env", 100, http.StatusBadRequest, "invalid_name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := &trackingReader{r: uploadtest.File{Size: tc.size}.Reader()}
			req := s.request(t, http.MethodPut, tc.path, body, tc.size)
			req.Header.Set("Expect", "100-continue")
			resp, respBody := s.do(t, req)
			requireError(t, resp, respBody, tc.status, tc.code)
			assert.False(t, body.read.Load(), "the client was asked for the body")
			s.waitServed(t)
			assert.Contains(t, s.logs.String(), fmt.Sprintf(`"status":%d,"bytes":0`, tc.status))
		})
	}
	storeFiles, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	assert.Len(t, storeFiles, 1)
}

func TestNoSpaceIsRefusedBeforeTheBody(t *testing.T) {
	s := newServer(t, options{})
	body := &trackingReader{r: strings.NewReader("")}
	req := s.request(t, http.MethodPut, "/files/huge.bin", body, 1<<60)
	req.Header.Set("Expect", "100-continue")
	resp, respBody := s.do(t, req)
	requireError(t, resp, respBody, http.StatusInsufficientStorage, "insufficient_storage")
	assert.False(t, body.read.Load())
	s.waitServed(t)
}

// rawRequest writes head and then body on a fresh connection, and returns
// the connection with a reader over the server's replies.
func (s *server) rawRequest(t *testing.T, head string, body []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	if len(body) > 0 {
		_, err = conn.Write(body)
		require.NoError(t, err)
	}
	return conn, bufio.NewReader(conn)
}

// readResponse reads a response to a raw request, and its body.
func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// requireNothingLeft requires that s holds no file, stored or spooled.
func (s *server) requireNothingLeft(t *testing.T) {
	t.Helper()
	uploadtest.RequireEmptyDir(t, s.spoolDir)
	uploadtest.RequireEmptyDir(t, s.dir)
}

func TestExpectContinueNeverAsksForARefusedBody(t *testing.T) {
	s := newServer(t, options{spool: func(c *spool.Config) { c.MaxSize = 1000 }})
	_, br := s.rawRequest(t, "PUT /files/x.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n", nil)
	resp, body := readResponse(t, br)
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
	s.waitServed(t)

	// An acceptable one gets its 100 Continue first.
	s.putContinued(t, uploadtest.File{Name: "y.bin", Seed: 1, Size: 5})()
}

// putContinued starts a PUT of f with "Expect: 100-continue" and waits for
// the "100 Continue": the handler has taken an upload slot and waits for
// the body. finish sends the body and requires 201.
func (s *server) putContinued(t *testing.T, f uploadtest.File) (finish func()) {
	t.Helper()
	conn, br := s.rawRequest(t, fmt.Sprintf("PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", f.Name, f.Size), nil)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = br.ReadString('\n')
	require.NoError(t, err)
	return func() {
		t.Helper()
		_, err := io.Copy(conn, f.Reader())
		require.NoError(t, err)
		resp, body := readResponse(t, br)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		s.waitServed(t)
	}
}

func TestOverLimitChunked(t *testing.T) {
	s := newServer(t, options{spool: func(c *spool.Config) { c.MaxSize = 3 << 20 }})
	for _, c := range []uploadtest.Case{
		{Mode: uploadtest.RawChunked, Files: []uploadtest.File{{Name: "big.bin", Size: 3<<20 + 1}}},
		{Mode: uploadtest.MultipartOne, Files: []uploadtest.File{{Name: "big.bin", Size: 3<<20 + 1}}},
		{Mode: uploadtest.MultipartMany, Files: []uploadtest.File{{Name: "ok.bin", Size: 10}, {Name: "big.bin", Size: 4 << 20}}},
	} {
		resp, body := s.send(t, c)
		requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
		s.waitServed(t)
		s.requireNothingLeft(t)
	}
}

func TestClientDisconnectHalfway(t *testing.T) {
	s := newServer(t, options{})
	const total = 10 << 20
	f := uploadtest.File{Size: total / 2}
	for _, tc := range []struct{ name, head string }{
		{"raw with length", fmt.Sprintf("PUT /files/cut.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", total)},
		{"multipart", fmt.Sprintf("POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"+
			"--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"cut.bin\"\r\n\r\n", uploadtest.Boundary, total, uploadtest.Boundary)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := s.rawRequest(t, tc.head, f.Bytes())
			require.NoError(t, conn.Close())
			assert.Equal(t, http.StatusBadRequest, s.waitServed(t))
			s.requireNothingLeft(t)
		})
	}
}

func TestShortBody(t *testing.T) {
	s := newServer(t, options{})
	for _, size := range []int{100, 3 << 20} {
		conn, br := s.rawRequest(t, fmt.Sprintf("PUT /files/short.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", size), make([]byte, size/2))
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
		resp, body := readResponse(t, br)
		requireError(t, resp, body, http.StatusBadRequest, "incomplete_body")
		s.waitServed(t)
		s.requireNothingLeft(t)
	}
}

func TestStalledBodyTimesOut(t *testing.T) {
	s := newServer(t, options{readTimeout: 200 * time.Millisecond})
	_, br := s.rawRequest(t, "PUT /files/stall.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n", make([]byte, 3<<20))
	resp, body := readResponse(t, br)
	requireError(t, resp, body, http.StatusRequestTimeout, "timeout")
	s.waitServed(t)
	s.requireNothingLeft(t)
}

func TestBadNames(t *testing.T) {
	s := newServer(t, options{})
	for _, p := range []string{
		"/files/..%2Fx", "/files/%2e%2e/x", "/files/a/../b", "/files/a//b", "/files/%2Fabs", "/files/a%00b",
		"/files/a%5Cb", "/files/.hidden", "/files/a/.git/config", "/files/a%0Ab", "/files/" + strings.Repeat("a", 256),
		"/files/", "/files/dir/",
	} {
		resp, body := s.do(t, s.request(t, http.MethodPut, p, strings.NewReader("data"), 4))
		requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
		s.waitServed(t)
	}
	uploadtest.RequireEmptyDir(t, s.dir)
}

func TestMalformedMultipart(t *testing.T) {
	s := newServer(t, options{})
	part := func(boundary, name string) string {
		return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"" + name + "\"\r\n\r\ncontent\r\n"
	}
	cases := []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"not multipart", "text/plain", "hello", http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"no content type", "", "hello", http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"no boundary", "multipart/form-data", part("b", "a.txt") + "--b--\r\n", http.StatusBadRequest, "bad_multipart"},
		{"wrong boundary", "multipart/form-data; boundary=other", part("b", "a.txt") + "--b--\r\n", http.StatusBadRequest, "bad_multipart"},
		{"missing closing delimiter", "multipart/form-data; boundary=b", part("b", "a.txt"), http.StatusBadRequest, "bad_multipart"},
		{"truncated part", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nconte", http.StatusBadRequest, "bad_multipart"},
		{"no files", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--b--\r\n", http.StatusBadRequest, "no_files"},
		{"empty body", "multipart/form-data; boundary=b", "", http.StatusBadRequest, "bad_multipart"},
		{"only the closing delimiter", "multipart/form-data; boundary=b", "--b--\r\n", http.StatusBadRequest, "no_files"},
		{"bad filename", "multipart/form-data; boundary=b", part("b", ".htaccess") + "--b--\r\n", http.StatusBadRequest, "invalid_name"},
		{"dot-dot filename", "multipart/form-data; boundary=b", part("b", "..") + "--b--\r\n", http.StatusBadRequest, "invalid_name"},
		{"traversal filename", "multipart/form-data; boundary=b", part("b", "../../etc/passwd") + "--b--\r\n", http.StatusBadRequest, "invalid_name"},
		{"absolute filename", "multipart/form-data; boundary=b", part("b", "/etc/passwd") + "--b--\r\n", http.StatusBadRequest, "invalid_name"},
		{"windows path filename", "multipart/form-data; boundary=b", part("b", `C:\\Users\\me\\a.txt`) + "--b--\r\n", http.StatusBadRequest, "invalid_name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := s.request(t, http.MethodPost, "/files", strings.NewReader(tc.body), int64(len(tc.body)))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, body := s.do(t, req)
			requireError(t, resp, body, tc.status, tc.code)
			s.waitServed(t)
			uploadtest.RequireEmptyDir(t, s.dir)
		})
	}
}

func TestMultipartTooManyParts(t *testing.T) {
	s := newServer(t, options{})
	var b strings.Builder
	for range api.DefaultMaxParts + 1 {
		b.WriteString("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n")
	}
	b.WriteString("--b--\r\n")
	req := s.request(t, http.MethodPost, "/files", strings.NewReader(b.String()), int64(b.Len()))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	resp, body := s.do(t, req)
	requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
	s.waitServed(t)
	s.requireLogged(t, resp, "more than 1000 parts")
}

func TestMultipartBasenameAndBoundaryInData(t *testing.T) {
	s := newServer(t, options{})
	// Boundary-like bytes that are not a delimiter line must be stored
	// intact, and a relative path in the filename is reduced to its base
	// name.
	data := "x--b at the start\r\n--bz\r\n--b-x\r\nx--b--\r\n\x00\xff--b"
	body := "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"etc/passwd\"\r\n\r\n" + data + "\r\n--b--\r\n"
	req := s.request(t, http.MethodPost, "/files", strings.NewReader(body), int64(len(body)))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	resp, respBody := s.do(t, req)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(respBody))
	s.waitServed(t)
	got, err := os.ReadFile(filepath.Join(s.dir, "passwd"))
	require.NoError(t, err)
	assert.Equal(t, data, string(got))
	_, err = os.Stat(filepath.Join(filepath.Dir(s.dir), "etc"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestMultipartAllOrNothing(t *testing.T) {
	s := newServer(t, options{})
	taken := uploadtest.File{Name: "three.bin", Seed: 9, Size: 5}
	resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{taken}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)

	files := []uploadtest.File{
		{Name: "one.bin", Seed: 1, Size: 10},
		{Name: "two.bin", Seed: 2, Size: spool.DefaultThreshold + 1},
		{Name: "three.bin", Seed: 3, Size: 10},
	}
	resp, body = s.send(t, uploadtest.Case{Mode: uploadtest.MultipartMany, Files: files})
	requireError(t, resp, body, http.StatusConflict, "exists")
	s.waitServed(t)
	assert.NoFileExists(t, filepath.Join(s.dir, "one.bin"))
	assert.NoFileExists(t, filepath.Join(s.dir, "two.bin"))
	uploadtest.RequireFile(t, taken, filepath.Join(s.dir, "three.bin"))
}

func TestConcurrentSameNameRace(t *testing.T) {
	s := newServer(t, options{})
	const racers = 6
	statuses := make([]int, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			size := int64(100 + i)
			if i%2 == 1 {
				size = spool.DefaultThreshold + int64(i)
			}
			f := uploadtest.File{Name: "same.bin", Seed: uint64(i), Size: size}
			req := s.request(t, http.MethodPut, "/files/same.bin", f.Reader(), f.Size)
			resp, err := s.client.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for range racers {
		s.waitServed(t)
	}
	created := 0
	winner := -1
	for i, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
			winner = i
		case http.StatusConflict:
		default:
			t.Errorf("racer %d got %d", i, st)
		}
	}
	require.Equal(t, 1, created, "%v", statuses)
	size := int64(100 + winner)
	if winner%2 == 1 {
		size = spool.DefaultThreshold + int64(winner)
	}
	uploadtest.RequireFile(t, uploadtest.File{Seed: uint64(winner), Size: size}, filepath.Join(s.dir, "same.bin"))
}

func TestSymlinkEscape(t *testing.T) {
	s := newServer(t, options{})
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(s.dir, "out")))
	for _, size := range []int64{10, spool.DefaultThreshold + 1} {
		resp, body := s.do(t, s.request(t, http.MethodPut, "/files/out/pwned.bin", uploadtest.File{Size: size}.Reader(), size))
		requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
		s.waitServed(t)
	}
	uploadtest.RequireEmptyDir(t, outside)
	resp, body := s.do(t, s.request(t, http.MethodGet, "/files/out/anything", nil, 0))
	requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
	s.waitServed(t)
}

func TestListDownloadAndHealth(t *testing.T) {
	s := newServer(t, options{})
	resp, body := s.do(t, s.request(t, http.MethodGet, "/files", nil, 0))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"files":[]}`, string(body))
	s.waitServed(t)

	files := []uploadtest.File{{Name: "b/page.html", Seed: 1, Size: 1000}, {Name: "a.txt", Seed: 2, Size: 3}}
	for _, f := range files {
		resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		s.waitServed(t)
	}
	// A staging-like hidden file is never listed.
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, ".spillway-x.tmp"), nil, 0o644))

	resp, body = s.do(t, s.request(t, http.MethodGet, "/files", nil, 0))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list wire.ListResponse
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Files, 2)
	assert.Equal(t, "a.txt", list.Files[0].Name)
	assert.Equal(t, "b/page.html", list.Files[1].Name)
	assert.Equal(t, int64(1000), list.Files[1].Size)
	assert.WithinDuration(t, time.Now(), list.Files[1].Modified, time.Minute)
	s.waitServed(t)

	resp, body = s.do(t, s.request(t, http.MethodGet, "/files/b/page.html", nil, 0))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, files[0].Bytes(), body)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"), "a page is never served as one")
	assert.Equal(t, `attachment; filename="page.html"; filename*=UTF-8''page.html`, resp.Header.Get("Content-Disposition"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	etag := resp.Header.Get("ETag")
	assert.NotEmpty(t, etag)
	assert.NotEmpty(t, resp.Header.Get("Last-Modified"))
	s.waitServed(t)

	req := s.request(t, http.MethodGet, "/files/b/page.html", nil, 0)
	req.Header.Set("Range", "bytes=10-19")
	resp, body = s.do(t, req)
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, files[0].Bytes()[10:20], body)
	s.waitServed(t)

	req = s.request(t, http.MethodGet, "/files/b/page.html", nil, 0)
	req.Header.Set("If-None-Match", etag)
	resp, _ = s.do(t, req)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	s.waitServed(t)

	resp, body = s.do(t, s.request(t, http.MethodHead, "/files/a.txt", nil, 0))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, "3", resp.Header.Get("Content-Length"))
	assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	s.waitServed(t)

	s.requireErrors(t, []errorCase{
		{http.MethodGet, "/files/missing.bin", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/files/b", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/nope", http.StatusNotFound, "not_found"},
		{http.MethodPatch, "/files/a.txt", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPut, "/files", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "method_not_allowed"},
	})

	resp, body = s.do(t, s.request(t, http.MethodGet, "/healthz", nil, 0))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"status":"ok"}`, string(body))
	s.waitServed(t)
}

func TestLogLine(t *testing.T) {
	s := newServer(t, options{})
	f := uploadtest.File{Name: "logged.bin", Size: spool.DefaultThreshold + 1}
	resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(s.logs.String())), &line))
	assert.Equal(t, "request", line["msg"])
	assert.Equal(t, "PUT", line["method"])
	assert.Equal(t, "/files/logged.bin", line["path"])
	assert.EqualValues(t, 201, line["status"])
	assert.EqualValues(t, f.Size, line["bytes"])
	assert.Equal(t, "disk", line["spool"])
	assert.Contains(t, line, "duration")
}

func TestOverwriteOption(t *testing.T) {
	s := newServer(t, options{store: dirstore.Options{Overwrite: true}})
	for seed := range uint64(2) {
		f := uploadtest.File{Name: "again.bin", Seed: seed, Size: 100}
		resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		s.waitServed(t)
		uploadtest.RequireFile(t, f, filepath.Join(s.dir, f.Name))
	}
}
