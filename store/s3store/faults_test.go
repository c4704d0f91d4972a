package s3store

import (
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/storetest"
	"spillway/wire"
)

// The S3 gateway dies in the middle of a multipart upload. Nothing in the
// store can be hooked, so the SDK client's transport does it: it stops the
// gateway just before it forwards the n-th UploadPart request, after the
// earlier parts have landed.

type killOnPart struct {
	base  http.RoundTripper
	n     int32
	parts atomic.Int32
	kill  func()
}

func (k *killOnPart) RoundTrip(r *http.Request) (*http.Response, error) {
	q := r.URL.Query()
	if r.Method == http.MethodPut && q.Has("partNumber") && q.Has("uploadId") && k.parts.Add(1) == k.n {
		k.kill()
	}
	return k.base.RoundTrip(r)
}

// killingClient returns a client for gw that stops gw on the n-th
// UploadPart. It keeps the SDK's retries (a dead endpoint is retried as in
// production) without their backoff, so that the test does not wait.
func killingClient(gw *testservers.S3, n int32) (*s3.Client, *killOnPart) {
	k := &killOnPart{base: &http.Transport{}, n: n, kill: gw.Stop}
	c := s3.New(gw.Client().Options(), func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: k}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
	return c, k
}

// restartGateway starts versitygw again on the stopped gw's address and
// directory: the same S3 back after a crash. It is killed when the test
// ends.
func restartGateway(t *testing.T, gw *testservers.S3) {
	t.Helper()
	select {
	case <-gw.Stopped():
	default:
		require.FailNow(t, "the gateway is still running")
	}
	addr := strings.TrimPrefix(gw.Endpoint, "http://")
	cmd := exec.Command(testservers.Tool(t, testservers.VersityGW), "-q", "-p", addr, "-a", gw.AccessKey, "-s", gw.SecretKey, "posix", gw.Dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = testservers.DieWithParent()
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	testservers.WaitListening(t, addr, exited)
}

// openMultipartUploads lists the multipart uploads the gateway holds.
func openMultipartUploads(t *testing.T, gw *testservers.S3) []string {
	t.Helper()
	out, err := gw.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(gw.Bucket)})
	require.NoError(t, err)
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

func requireNoObjectFile(t *testing.T, gw *testservers.S3, key string) {
	t.Helper()
	_, err := os.Stat(gw.ObjectPath(key))
	require.ErrorIs(t, err, fs.ErrNotExist, "no object, not even a partial one, at %s", gw.ObjectPath(key))
}

func TestS3StopsMidMultipartUpload(t *testing.T) {
	const partSize = 5 << 20
	e := newEnv(t, Options{PartSize: partSize})
	client, k := killingClient(e.gw, 2)
	st := New(client, e.gw.Bucket, Options{PartSize: partSize})

	f := uploadtest.File{Name: "dir/big.bin", Seed: 90, Size: 20<<20 + 7}
	b := storetest.Body(t, e.spooler, f)
	start := time.Now()
	err := st.Put(t.Context(), []store.File{{Name: f.Name, Body: b}})
	t.Logf("Put with the gateway stopped at part 2: %s after %s", err, time.Since(start).Round(time.Millisecond))
	require.ErrorIs(t, err, store.ErrBackend)
	require.NotErrorIs(t, err, store.ErrExists)
	select {
	case <-e.gw.Stopped():
	default:
		require.FailNow(t, "the gateway was never stopped: no second part was sent")
	}
	assert.GreaterOrEqual(t, k.parts.Load(), int32(2))

	// The caller's spool body is untouched by the failure and goes on Close.
	require.NoError(t, b.Close())
	uploadtest.RequireEmptyDir(t, e.spoolDir)
	requireNoObjectFile(t, e.gw, f.Name)

	// The same gateway, back on the same directory: no object under the
	// name. The abort could not reach a dead server, so the upload with
	// its first part is still open...
	restartGateway(t, e.gw)
	storetest.RequireAbsent(t, st, f.Name)
	assert.Empty(t, storetest.ListAll(t, st, "", 0))
	open := openMultipartUploads(t, e.gw)
	t.Logf("multipart uploads left open after the crash: %q", open)
	assert.Equal(t, []string{f.Name}, open, "the upload the abort could not reach")

	// ...until the store's next Put, which aborts it first; and the same
	// name goes up in full.
	again := storetest.Body(t, e.spooler, f)
	require.NoError(t, st.Put(t.Context(), []store.File{{Name: f.Name, Body: again}}))
	storetest.RequireStored(t, st, f)
	uploadtest.RequireFile(t, f, e.gw.ObjectPath(f.Name))
	e.gw.RequireNoMultipartUploads(t)
}

// apiServer serves the API over an s3store whose client kills the gateway
// on the n-th UploadPart.
type apiServer struct {
	url    string
	client *http.Client
	logs   *uploadtest.SyncBuffer
	gw     *testservers.S3
}

func newAPIServer(t *testing.T, e *env, st *Store) *apiServer {
	t.Helper()
	s := &apiServer{gw: e.gw, logs: &uploadtest.SyncBuffer{}, client: &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}}
	h := api.New(api.Config{Spooler: e.spooler, Store: st, Logger: slog.New(slog.NewTextHandler(s.logs, nil))})
	ts := httptest.NewServer(h)
	s.url = ts.URL
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		ts.Close()
		if t.Failed() {
			t.Logf("handler log:\n%s", s.logs.String())
		}
	})
	return s
}

// trackedBody records whether the client was asked for the body.
type trackedBody struct {
	r    io.Reader
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.r.Read(p)
}

func (s *apiServer) do(t *testing.T, method, path string, body io.Reader, length int64, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, body)
	require.NoError(t, err)
	req.ContentLength = length
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode >= 400 {
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, out
}

// requireStorageError checks a 502 storage_error: the fixed message, with
// nothing of S3's own error (endpoint, bucket, request and host IDs), which
// is in the log line under the request ID the client sees instead.
func (s *apiServer) requireStorageError(t *testing.T, status int, body []byte) {
	t.Helper()
	require.Equal(t, http.StatusBadGateway, status, string(body))
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, wire.CodeStorageError, e.Error.Code)
	assert.Equal(t, api.ErrorFor(store.ErrBackend).Message, e.Error.Message)
	host := strings.TrimPrefix(s.gw.Endpoint, "http://")
	for _, leak := range []string{host, s.gw.Bucket, "RequestID", "HostID", "s3store:", "store:", "operation error"} {
		assert.NotContains(t, string(body), leak)
	}
	require.NotEmpty(t, e.Error.RequestID)
	var line string
	for l := range strings.SplitSeq(s.logs.String(), "\n") {
		if strings.Contains(l, "msg=request ") && strings.Contains(l, "request_id="+e.Error.RequestID+" ") {
			line = l
		}
	}
	require.NotEmpty(t, line, "no log line for request %s:\n%s", e.Error.RequestID, s.logs.String())
	assert.Contains(t, line, "level=ERROR")
	assert.Contains(t, line, "code=storage_error")
	assert.Contains(t, line, "error=", "the detail is logged")
	assert.Contains(t, line, "s3store:")
}

// A bucket that refuses the credentials is a 502 whose message says only
// that storage failed; S3's answer, with its request ID, is in the log.
func TestAPIWithRefusedCredentials(t *testing.T) {
	e := newEnv(t, Options{})
	client := s3.New(e.gw.Client().Options(), func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(e.gw.AccessKey, "not-the-secret", "")
		o.RetryMaxAttempts = 1
	})
	s := newAPIServer(t, e, New(client, e.gw.Bucket, Options{}))
	f := uploadtest.File{Name: "refused.bin", Seed: 94, Size: 100}
	status, body := s.do(t, http.MethodPut, "/files/"+f.Name, f.Reader(), f.Size, nil)
	s.requireStorageError(t, status, body)
	assert.Contains(t, s.logs.String(), "RequestID", "S3's request ID is logged")
	status, body = s.do(t, http.MethodGet, "/files", nil, 0, nil)
	s.requireStorageError(t, status, body)
	requireNoObjectFile(t, e.gw, f.Name)
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

// TestAPIWithS3Down runs the API handler over the S3 store while the
// gateway dies mid-upload and stays down, then comes back.
func TestAPIWithS3Down(t *testing.T) {
	const partSize = 5 << 20
	e := newEnv(t, Options{PartSize: partSize})
	client, _ := killingClient(e.gw, 2)
	st := New(client, e.gw.Bucket, Options{PartSize: partSize})
	s := newAPIServer(t, e, st)
	requireClean := func(t *testing.T) {
		t.Helper()
		uploadtest.RequireEmptyDir(t, e.spoolDir)
		stats := e.spooler.Stats()
		assert.Zero(t, stats.OpenFiles)
		assert.Zero(t, stats.MemoryInUse)
	}

	t.Run("dies mid multipart upload", func(t *testing.T) {
		f := uploadtest.File{Name: "big.bin", Seed: 91, Size: 20 << 20}
		status, body := s.do(t, http.MethodPut, "/files/"+f.Name, f.Reader(), f.Size, nil)
		s.requireStorageError(t, status, body)
		requireClean(t)
		requireNoObjectFile(t, e.gw, f.Name)
	})

	t.Run("down before the body", func(t *testing.T) {
		body := &trackedBody{r: uploadtest.File{Size: 1 << 20}.Reader()}
		status, resp := s.do(t, http.MethodPut, "/files/refused.bin", body, 1<<20, map[string]string{"Expect": "100-continue"})
		s.requireStorageError(t, status, resp)
		assert.False(t, body.read.Load(), "the client was asked for a body that S3 cannot take")
		requireClean(t)
	})

	t.Run("down for multipart and list", func(t *testing.T) {
		ct, body, n := uploadtest.Multipart([]uploadtest.File{{Name: "mp.bin", Seed: 92, Size: 100}})
		status, resp := s.do(t, http.MethodPost, "/files", body, n, map[string]string{"Content-Type": ct})
		s.requireStorageError(t, status, resp)
		requireClean(t)
		status, resp = s.do(t, http.MethodGet, "/files", nil, 0, nil)
		s.requireStorageError(t, status, resp)
		status, resp = s.do(t, http.MethodGet, "/files/big.bin", nil, 0, nil)
		s.requireStorageError(t, status, resp)
	})
	assert.Contains(t, s.logs.String(), "code=storage_error")

	t.Run("back up", func(t *testing.T) {
		restartGateway(t, e.gw)
		assert.Equal(t, []string{"big.bin"}, openMultipartUploads(t, e.gw), "the upload the abort could not reach")
		// The next upload aborts it before its own work.
		f := uploadtest.File{Name: "big.bin", Seed: 93, Size: 12 << 20}
		status, body := s.do(t, http.MethodPut, "/files/"+f.Name, f.Reader(), f.Size, nil)
		require.Equal(t, http.StatusCreated, status, string(body))
		uploadtest.RequireFile(t, f, e.gw.ObjectPath(f.Name))
		requireClean(t)
		e.gw.RequireNoMultipartUploads(t)
	})
}
