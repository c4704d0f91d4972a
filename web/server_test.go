package web_test

// The test server: the real API and page over a directory store, and a
// recorder of what the page asked of it.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store/dirstore"
	"spillway/store/s3store"
	"spillway/wire"
)

// writeStored puts a file named name, holding its name, straight into the
// server's upload directory.
func writeStored(t *testing.T, srv server, name string) {
	t.Helper()
	p := filepath.Join(srv.uploads, filepath.FromSlash(name))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
}

type server struct {
	URL     string
	uploads string          // the upload directory; "" on S3
	spool   string          // the spool directory
	gw      *testservers.S3 // the S3 store's gateway; nil for a directory
}

// stored is where the server keeps the bytes it stored under name.
func (s server) stored(name string) string {
	if s.gw != nil {
		return s.gw.ObjectPath(name)
	}
	return filepath.Join(s.uploads, filepath.FromSlash(name))
}

// assertNoUploadsLeft checks that no multipart upload is left open: the
// directory store's upload area is empty, or the gateway lists none.
func (s server) assertNoUploadsLeft(t *testing.T) {
	t.Helper()
	if s.gw != nil {
		s.gw.RequireNoMultipartUploads(t)
		return
	}
	assertEmpty(t, filepath.Join(s.uploads, ".spillway-uploads"))
}

// startServer serves the API, page included, on 127.0.0.1, through wrap
// (the first wraps the others).
func startServer(t *testing.T, token string, wrap ...func(http.Handler) http.Handler) server {
	t.Helper()
	return startServerOn(t, nil, token, wrap...)
}

// startServerOn is startServer on the listener ln, or on one of httptest's
// when ln is nil.
func startServerOn(t *testing.T, ln net.Listener, token string, wrap ...func(http.Handler) http.Handler) server {
	t.Helper()
	spoolDir := t.TempDir()
	sp, err := spool.New(spool.Config{Dir: spoolDir, Threshold: threshold, MemoryBudget: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	uploads := t.TempDir()
	st, _, err := dirstore.Open(uploads, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &uploadtest.SyncBuffer{}
	var h http.Handler = api.New(api.Config{
		Spooler: sp,
		Store:   st,
		Token:   token,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	})
	for _, w := range slices.Backward(wrap) {
		h = w(h)
	}
	srv := httptest.NewUnstartedServer(h)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if l := logs.String(); t.Failed() && l != "" {
			t.Logf("server log:\n%s", l)
		}
	})
	return server{URL: srv.URL, uploads: uploads, spool: spoolDir}
}

// startS3Server is startServer over the S3 store, on versitygw. The
// gateway answers behind the test server, under /BUCKET/, with the store's
// S3 client pointed at the test server: the part URLs it presigns are
// then on the page's own origin, which the page's CSP lets it reach, as it
// does *.amazonaws.com deployed. The proxy passes the Host on unchanged,
// so the signatures hold; and it lies under wrap, so the test sees, and
// may damage, the part PUTs on their way to S3.
func startS3Server(t *testing.T, wrap ...func(http.Handler) http.Handler) server {
	t.Helper()
	gw := testservers.StartS3(t)
	sp, err := spool.New(spool.Config{Dir: t.TempDir(), Threshold: threshold, MemoryBudget: 64 << 20})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(nil) // listens already: its URL is the S3 endpoint
	front := "http://" + srv.Listener.Addr().String()
	client := s3.New(s3.Options{
		Region:       gw.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(gw.AccessKey, gw.SecretKey, ""),
		BaseEndpoint: aws.String(front),
		UsePathStyle: true,
	})
	logs := &uploadtest.SyncBuffer{}
	h := http.NewServeMux()
	h.Handle("/", api.New(api.Config{
		Spooler: sp,
		Store:   s3store.New(client, gw.Bucket, s3store.Options{}),
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	}))
	target, err := url.Parse(gw.Endpoint)
	require.NoError(t, err)
	h.Handle("/"+gw.Bucket+"/", &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // signed
	}})
	var root http.Handler = h
	for _, w := range slices.Backward(wrap) {
		root = w(root)
	}
	srv.Config.Handler = root
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if l := logs.String(); t.Failed() && l != "" {
			t.Logf("server log:\n%s", l)
		}
	})
	return server{URL: srv.URL, spool: sp.Dir(), gw: gw}
}

// writeFile writes size deterministic bytes, from seed, to dir/name.
func writeFile(t *testing.T, dir, name string, size int, seed byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	uploadtest.File{Seed: uint64(seed), Size: int64(size)}.WriteFile(t, p)
	return p
}

// request is what a test server saw of one request; Status is 0 until the
// handler has answered it.
type request struct {
	Method, Path, Query, Auth string
	Status                    int
	Created                   string // the body of a POST /uploads
	CRC64NVME                 string // the x-amz-checksum-crc64nvme header
}

var (
	partURLPath = regexp.MustCompile(`^/uploads/[A-Za-z0-9._~-]+/parts/([0-9]+)$`)
	uploadPath  = regexp.MustCompile(`^/uploads/[A-Za-z0-9._~-]+(/parts|/complete)?$`)
)

// partOf returns the number of the part a request sends: a local part
// URL's, or an S3 UploadPart's (?partNumber=N&uploadId=…).
func partOf(method, path, rawQuery string) (string, bool) {
	if method != http.MethodPut {
		return "", false
	}
	if m := partURLPath.FindStringSubmatch(path); m != nil {
		return m[1], true
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil || q.Get("uploadId") == "" || q.Get("partNumber") == "" {
		return "", false
	}
	return q.Get("partNumber"), true
}

// route names r without its upload ID: "PUT part 2", "POST
// /uploads/{id}/complete", "PUT /files/big.bin".
// create is the body of a POST /uploads, decoded.
func (r request) create(t *testing.T) wire.CreateUploadRequest {
	t.Helper()
	var cr wire.CreateUploadRequest
	require.NoError(t, json.Unmarshal([]byte(r.Created), &cr), r.Created)
	return cr
}

func (r request) route() string {
	if n, ok := partOf(r.Method, r.Path, r.Query); ok {
		return "PUT part " + n
	}
	if m := uploadPath.FindStringSubmatch(r.Path); m != nil {
		return r.Method + " /uploads/{id}" + m[1]
	}
	return r.Method + " " + r.Path
}

// recorder notes every request as it arrives, and its status once served.
type recorder struct {
	mu      sync.Mutex
	seen    []request
	changed chan struct{} // closed, and replaced, at each answer
}

func (rec *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var created []byte
		if r.Method == http.MethodPost && r.URL.Path == "/uploads" {
			// A create is a small JSON body; read it whole and hand it on.
			created, _ = io.ReadAll(io.LimitReader(r.Body, 256<<10))
			r.Body = io.NopCloser(bytes.NewReader(created))
		}
		rec.mu.Lock()
		i := len(rec.seen)
		rec.seen = append(rec.seen, request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Created: string(created),
			CRC64NVME: r.Header.Get("X-Amz-Checksum-Crc64nvme")})
		rec.mu.Unlock()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		rec.mu.Lock()
		rec.seen[i].Status = cmp.Or(sw.status, http.StatusOK)
		if rec.changed != nil {
			close(rec.changed)
			rec.changed = nil
		}
		rec.mu.Unlock()
	})
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.seen)
}

// uploadRoutes counts the requests that upload: the /uploads routes, the
// part PUTs and PUT /files/{name}.
func (rec *recorder) uploadRoutes() map[string]int {
	n := map[string]int{}
	for _, r := range rec.requests() {
		_, part := partOf(r.Method, r.Path, r.Query)
		if part || strings.HasPrefix(r.Path, "/uploads") || r.Method == http.MethodPut && strings.HasPrefix(r.Path, "/files/") {
			n[r.route()]++
		}
	}
	return n
}

// waitFor waits until a request on route has been answered, and returns it.
func (rec *recorder) waitFor(t *testing.T, ctx context.Context, route string) request {
	t.Helper()
	for {
		rec.mu.Lock()
		for _, r := range rec.seen {
			if r.Status != 0 && r.route() == route {
				rec.mu.Unlock()
				return r
			}
		}
		if rec.changed == nil {
			rec.changed = make(chan struct{})
		}
		changed := rec.changed
		rec.mu.Unlock()
		receive(t, ctx, changed, route)
	}
}

// statusWriter notes the status a handler answers with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// assertEmpty checks that dir holds nothing (or is not there at all).
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "left in %s", dir)
}
