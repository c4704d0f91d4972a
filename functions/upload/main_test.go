package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store/s3store"
	"spillway/wire"
)

// buildBootstrap builds the function for this host, as `sam build` builds
// it for Lambda: static, with the lambda.norpc tag.
func buildBootstrap(t *testing.T) string {
	t.Helper()
	return testservers.Build(t, testservers.Function)
}

func TestMissingBucketFailsColdStart(t *testing.T) {
	bin := buildBootstrap(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	var line map[string]any
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(out), &line), string(out))
	assert.Equal(t, "ERROR", line["level"])
	assert.Equal(t, "cold start failed", line["msg"])
	assert.Contains(t, line["error"], "SPILLWAY_BUCKET is not set")
}

// On Lambda the execution role's credentials are in the environment;
// without them the function cannot reach S3, and says so at its cold start
// rather than at the first upload.
func TestMissingCredentialsFailsColdStart(t *testing.T) {
	env := map[string]string{"SPILLWAY_BUCKET": "b", "SPILLWAY_SPOOL_DIR": t.TempDir(), "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "k"}
	_, err := coldStart(t.Context(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, s3store.ErrNoCredentials)
	assert.Contains(t, err.Error(), "AWS_SECRET_ACCESS_KEY")
}

// TestColdStartLogsTheVersion runs the function outside Lambda: its cold
// start succeeds and logs, then the runtime API is missing and it exits.
func TestColdStartLogsTheVersion(t *testing.T) {
	head := testservers.GitHead(t)
	bin := buildBootstrap(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SPILLWAY_BUCKET=b", "SPILLWAY_SPOOL_DIR=" + t.TempDir(),
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=k", "AWS_SECRET_ACCESS_KEY=s", "AWS_EC2_METADATA_DISABLED=true"}
	out, _ := cmd.Output()
	var line map[string]any
	first, _, _ := bytes.Cut(out, []byte("\n"))
	require.NoError(t, json.Unmarshal(first, &line), string(out))
	require.Equal(t, "cold start", line["msg"])
	assert.Equal(t, head, line["revision"])
	assert.NotEmpty(t, line["version"])
	assert.NotEqual(t, "(devel)", line["version"], "go build in a checkout stamps a pseudo-version")
}

// emulator is the function binary running under the Runtime Interface
// Emulator, pointed at versitygw.
type emulator struct {
	url      string
	spoolDir string
	stdout   *testservers.Log
	stderr   *uploadtest.SyncBuffer
	cmd      *exec.Cmd
	exited   chan struct{}
}

// startEmulator starts versitygw and the function under the emulator,
// pointed at it, with an orphan in its spool dir for the cold start to
// sweep.
func startEmulator(t *testing.T) (*emulator, *testservers.S3) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the emulator and versitygw")
	}
	gw := testservers.StartS3(t)
	bootstrap := buildBootstrap(t)
	rie := testservers.Tool(t, testservers.RIE)
	e := &emulator{spoolDir: t.TempDir(), stdout: &testservers.Log{}, stderr: &uploadtest.SyncBuffer{}, exited: make(chan struct{})}
	// /tmp outlives invocations; a crash left this behind.
	require.NoError(t, os.WriteFile(filepath.Join(e.spoolDir, spool.FilePrefix+"ORPHAN.spool"), []byte("x"), 0o600))

	addr := testservers.FreePort(t)
	// The emulator's runtime API port must be explicit: with port 0 it
	// tells the bootstrap ":0".
	runtimeAPI := testservers.FreePort(t)
	e.url = "http://" + addr + "/2015-03-31/functions/function/invocations"
	e.cmd = exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", runtimeAPI, bootstrap)
	e.cmd.Env = append(os.Environ(), gw.Env()...)
	e.cmd.Env = append(e.cmd.Env, "SPILLWAY_BUCKET="+gw.Bucket, "SPILLWAY_SPOOL_DIR="+e.spoolDir, "AWS_LAMBDA_FUNCTION_TIMEOUT=60")
	e.cmd.Stdout, e.cmd.Stderr = e.stdout, e.stderr
	e.cmd.SysProcAttr = testservers.DieWithParent()
	require.NoError(t, e.cmd.Start())
	go func() { e.cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(10 * time.Second):
			e.cmd.Process.Kill()
			<-e.exited
		}
		if t.Failed() {
			t.Logf("emulator stdout:\n%s\nstderr:\n%s", e.stdout, e.stderr)
		}
	})
	testservers.WaitListening(t, addr, e.exited)
	return e, gw
}

// invoke sends one event and decodes the function's response. The emulator
// serves one invocation at a time, so callers never overlap.
func (e *emulator) invoke(t *testing.T, payload []byte) events.LambdaFunctionURLResponse {
	t.Helper()
	body := e.post(t, payload)
	out := decode[events.LambdaFunctionURLResponse](t, body)
	require.NotZero(t, out.StatusCode, "not a function response: %s", body)
	return out
}

func (e *emulator) initDurationMs(t *testing.T) float64 {
	t.Helper()
	m := regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`).FindStringSubmatch(e.stderr.String())
	require.NotNil(t, m, "no INIT REPORT from the emulator")
	ms, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return ms
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// TestEndToEnd runs the real bootstrap under the real emulator against a
// real S3 gateway.
func TestEndToEnd(t *testing.T) {
	em, gw := startEmulator(t)
	th := int64(spool.DefaultThreshold)

	sizes := []int64{0, 1 << 10, th - 1, th, th + 1, 3 << 20, uploadtest.MaxEventPayload}
	for i, size := range sizes {
		f := uploadtest.File{Name: "e2e/raw-" + strconv.FormatInt(size, 10) + ".bin", Seed: uint64(i), Size: size}
		payload := uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/"+f.Name,
			map[string]string{"content-type": "application/octet-stream"}, f.Bytes(), true)
		resp := em.invoke(t, payload)
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
		got := decode[wire.UploadResponse](t, resp.Body)
		require.Len(t, got.Files, 1)
		assert.Equal(t, f.Size, got.Files[0].Size)
		assert.Equal(t, f.SHA256(), got.Files[0].SHA256)
		assert.Equal(t, uploadtest.WantSpool(f, th), got.Files[0].Spool, "size %d", size)
		uploadtest.RequireFile(t, f, gw.ObjectPath(f.Name))
		uploadtest.RequireEmptyDir(t, em.spoolDir) // the cold start swept the orphan too
	}
	t.Logf("cold start (INIT REPORT under the emulator): %.1f ms", em.initDurationMs(t))

	// Multipart through the start-api dialect, files on both sides of the
	// threshold, plain text and base64.
	files := []uploadtest.File{{Name: "m1.txt", Seed: 20, Size: 100, Text: true}, {Name: "m2.txt", Seed: 21, Size: th + 1, Text: true}}
	ct, body, _ := uploadtest.Multipart(files)
	raw, err := io.ReadAll(body)
	require.NoError(t, err)
	for i, b64 := range []bool{false, true} {
		if i == 1 {
			for j := range files {
				files[j].Name = "b64-" + files[j].Name
			}
			ct, body, _ = uploadtest.Multipart(files)
			raw, err = io.ReadAll(body)
			require.NoError(t, err)
		}
		resp := em.invoke(t, uploadtest.Event(t, uploadtest.StartAPI, http.MethodPost, "/files", map[string]string{"Content-Type": ct}, raw, b64))
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
		got := decode[wire.UploadResponse](t, resp.Body)
		require.Len(t, got.Files, 2)
		assert.Equal(t, wire.SpoolMemory, got.Files[0].Spool)
		assert.Equal(t, wire.SpoolDisk, got.Files[1].Spool)
		for _, f := range files {
			uploadtest.RequireFile(t, f, gw.ObjectPath(f.Name))
		}
		uploadtest.RequireEmptyDir(t, em.spoolDir)
	}

	// The same name again: 409, and the first object is untouched.
	first := uploadtest.File{Name: "e2e/raw-1024.bin", Seed: 1, Size: 1 << 10}
	again := uploadtest.File{Seed: 99, Size: th + 10}
	resp := em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/"+first.Name, nil, again.Bytes(), true))
	require.Equal(t, http.StatusConflict, resp.StatusCode, resp.Body)
	assert.Equal(t, wire.CodeExists, decode[wire.ErrorResponse](t, resp.Body).Error.Code)
	uploadtest.RequireFile(t, first, gw.ObjectPath(first.Name))
	uploadtest.RequireEmptyDir(t, em.spoolDir)

	// Downloads redirect to a presigned URL that serves the object.
	resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodGet, "/files/"+first.Name, nil, nil, false))
	require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, resp.Body)
	loc := resp.Headers["location"]
	require.True(t, strings.HasPrefix(loc, gw.Endpoint+"/"), loc)
	assert.Equal(t, "text/plain; charset=utf-8", resp.Headers["content-type"])
	assert.Contains(t, resp.Body, loc, "the redirect's body says where the file is")
	dl, err := http.Get(loc)
	require.NoError(t, err)
	uploadtest.RequireContent(t, first, dl.Body)
	dl.Body.Close()

	// HEAD is answered by the function from the object's metadata (a URL
	// presigned for GET is refused for HEAD), without a body.
	resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodHead, "/files/"+first.Name, nil, nil, false))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Empty(t, resp.Body)
	assert.Equal(t, strconv.FormatInt(first.Size, 10), resp.Headers["content-length"])
	assert.NotEmpty(t, resp.Headers["etag"])
	resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodHead, "/files/missing.bin", nil, nil, false))
	require.Equal(t, http.StatusNotFound, resp.StatusCode, resp.Body)

	// An uploaded page downloads as an attachment from the bucket's
	// origin, never renders there.
	page := uploadtest.Downloads()[0]
	resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/"+page.File.Name, nil, page.File.Bytes(), true))
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
	resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodGet, "/files/"+page.File.Name, nil, nil, false))
	require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, resp.Body)
	dl, err = http.Get(resp.Headers["location"])
	require.NoError(t, err)
	uploadtest.RequireDownloadHeaders(t, page, dl.Header)
	uploadtest.RequireContent(t, page.File, dl.Body)
	dl.Body.Close()

	resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodGet, "/files", nil, nil, false))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	list := decode[wire.ListResponse](t, resp.Body)
	assert.Len(t, list.Files, len(sizes)+5)

	// Invalid base64 is refused, and nothing is stored.
	bad := uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/bad.bin", nil, []byte("x"), false)
	bad = bytes.Replace(bad, []byte(`"isBase64Encoded":false`), []byte(`"isBase64Encoded":true`), 1)
	resp = em.invoke(t, bad)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.Body)
	assert.NoFileExists(t, gw.ObjectPath("bad.bin"))
	// The emulator passes the function's output on as it comes: the
	// lines of the last request may follow its answer.
	em.waitLines(t, decode[wire.ErrorResponse](t, resp.Body).Error.RequestID, "bad_request")

	// Logs are JSON, one line per request, with the Lambda request ID.
	// Each request also emits an Embedded Metric Format line, and the cold
	// start one more.
	var requests, emfUploads, emfColdStarts int
	lines := bufio.NewScanner(strings.NewReader(em.stdout.String()))
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		var l map[string]any
		if json.Unmarshal(lines.Bytes(), &l) != nil {
			continue
		}
		if _, ok := l["_aws"]; ok {
			if l["Route"] == "upload" && l["Result"] == "ok" {
				emfUploads++
			}
			if l["Event"] == "cold_start" {
				emfColdStarts++
				assert.EqualValues(t, 1, l["OrphansSwept"])
			}
			continue
		}
		if l["msg"] != "request" {
			continue
		}
		requests++
		assert.NotEmpty(t, l["request_id"], lines.Text())
	}
	assert.GreaterOrEqual(t, requests, len(sizes)+5)
	assert.Equal(t, len(sizes)+3, emfUploads)
	assert.Equal(t, 1, emfColdStarts)

	// S3 goes away: a clean 502, and the spool is still empty.
	gw.Stop()
	big := uploadtest.File{Seed: 7, Size: th + 1}
	resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/down.bin", nil, big.Bytes(), true))
	require.Equal(t, http.StatusBadGateway, resp.StatusCode, resp.Body)
	assert.Equal(t, wire.CodeStorageError, decode[wire.ErrorResponse](t, resp.Body).Error.Code)
	uploadtest.RequireEmptyDir(t, em.spoolDir)
}

// TestDialectsEndToEnd: under the real emulator against a real S3 gateway,
// the events other producers send store names as they are meant, and an
// event that is no HTTP event is a logged, counted 500.
func TestDialectsEndToEnd(t *testing.T) {
	em, gw := startEmulator(t)
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "lambdahttp", "testdata", name))
		require.NoError(t, err)
		return b
	}

	// sam local start-api's HttpApi event carries the path decoded; the
	// name is stored as the client meant it.
	const hostile = "dir ü/report#v=2#1 100% a+b.txt"
	resp := em.invoke(t, fixture("sam-local-httpapi-hostile.json"))
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
	assert.Equal(t, hostile, decode[wire.UploadResponse](t, resp.Body).Files[0].Name)
	assert.Equal(t, "/files/dir%20%C3%BC/report%23v=2%231%20100%25%20a+b.txt", resp.Headers["location"])
	got, err := os.ReadFile(gw.ObjectPath(hostile))
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(got))

	// Its REST (payload 1.0) event names the same file: taken.
	out := em.invokeRaw(t, fixture("sam-local-rest-hostile.json"))
	require.EqualValues(t, http.StatusConflict, out["statusCode"], out)
	assert.Contains(t, out, "multiValueHeaders", "a payload 1.0 response")

	// An ALB passes the path on encoded.
	alb := `{"requestContext":{"elb":{"targetGroupArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1"}},` +
		`"httpMethod":"PUT","path":"/files/100%25%20%2541.txt","headers":{"content-type":"text/plain"},"body":"alb","isBase64Encoded":false}`
	out = em.invokeRaw(t, []byte(alb))
	require.EqualValues(t, http.StatusCreated, out["statusCode"], out)
	assert.Equal(t, "201 Created", out["statusDescription"])
	got, err = os.ReadFile(gw.ObjectPath("100% %41.txt"))
	require.NoError(t, err)
	assert.Equal(t, "alb", string(got))

	// An S3 notification is no HTTP event: 500 bad_event, logged and
	// counted under the Lambda request ID.
	resp = em.invoke(t, []byte(`{"Records":[{"eventSource":"aws:s3"}]}`))
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, resp.Body)
	e := decode[wire.ErrorResponse](t, resp.Body).Error
	assert.Equal(t, wire.CodeBadEvent, e.Code)
	require.NotEmpty(t, e.RequestID)
	em.waitLines(t, e.RequestID, "bad_event")
	var logged, counted bool
	for l := range strings.Lines(em.stdout.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["msg"] == "request" && m["request_id"] == e.RequestID {
			logged = assert.Equal(t, "ERROR", m["level"]) && assert.Equal(t, "bad_event", m["code"])
		}
		if _, ok := m["_aws"]; ok && m["Result"] == "bad_event" {
			counted = assert.EqualValues(t, 500, m["Status"])
		}
	}
	assert.True(t, logged, "an error line under the request ID")
	assert.True(t, counted, "an EMF line")
	uploadtest.RequireEmptyDir(t, em.spoolDir)
}

// waitLines waits until the function's output holds the log line of the
// request id and an Embedded Metric Format line with the result code.
func (e *emulator) waitLines(t *testing.T, id string, code wire.Code) {
	t.Helper()
	e.stdout.WaitFor(t, regexp.MustCompile(`"request_id":"`+regexp.QuoteMeta(id)+`"`), 10*time.Second, e.exited)
	e.stdout.WaitFor(t, regexp.MustCompile(`"Result":"`+regexp.QuoteMeta(string(code))+`"`), 10*time.Second, e.exited)
}

// invokeRaw sends one event and returns the function's response as JSON.
func (e *emulator) invokeRaw(t *testing.T, payload []byte) map[string]any {
	t.Helper()
	return decode[map[string]any](t, e.post(t, payload))
}

// post sends one event to the emulator and returns its answer: the
// function's response.
func (e *emulator) post(t *testing.T, payload []byte) string {
	t.Helper()
	resp, err := http.Post(e.url, "application/json", bytes.NewReader(payload))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	return string(body)
}

// TestDeleteEndToEnd: under the real emulator against a real S3 gateway,
// DELETE removes the object, a second DELETE is 404, and the name can be
// stored again.
func TestDeleteEndToEnd(t *testing.T) {
	em, gw := startEmulator(t)
	f := uploadtest.File{Name: "del/report.pdf", Seed: 1, Size: 100}
	put := func(f uploadtest.File) {
		t.Helper()
		resp := em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodPut, "/files/"+f.Name, nil, f.Bytes(), true))
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
		uploadtest.RequireFile(t, f, gw.ObjectPath(f.Name))
	}
	put(f)
	resp := em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, http.MethodDelete, "/files/"+f.Name, nil, nil, false))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, resp.Body)
	assert.Empty(t, resp.Body)
	assert.NoFileExists(t, gw.ObjectPath(f.Name))
	for _, method := range []string{http.MethodDelete, http.MethodGet} {
		resp = em.invoke(t, uploadtest.Event(t, uploadtest.FunctionURL, method, "/files/"+f.Name, nil, nil, false))
		require.Equal(t, http.StatusNotFound, resp.StatusCode, resp.Body)
		assert.Equal(t, wire.CodeNotFound, decode[wire.ErrorResponse](t, resp.Body).Error.Code)
	}
	put(uploadtest.File{Name: f.Name, Seed: 2, Size: 50})
}
