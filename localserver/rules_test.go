package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/hook"
	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// The hooks and content rules as a deployment meets them: settings given
// as flags, a hook receiver on loopback, on the local server with a
// directory and on the real function under the emulator with S3.

var (
	pdfBytes = []byte("%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n")
	txtBytes = []byte("plain words, whatever the name says\n")
)

func rulesFlags(hr *uploadtest.HookReceiver) []string {
	return []string{"--hook-url", hr.URL, "--hook-secret", uploadtest.HookSecret, "--allow-types", "image/*,application/pdf"}
}

type rulesClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newRulesClient(t *testing.T, addr string) *rulesClient {
	c := &http.Client{Transport: &http.Transport{}, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	return &rulesClient{t: t, base: "http://" + addr, c: c}
}

func (rc *rulesClient) send(method, url string, body []byte, hdr ...string) (*http.Response, []byte) {
	rc.t.Helper()
	if url[0] == '/' {
		url = rc.base + url
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(rc.t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rc.c.Do(req)
	require.NoError(rc.t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(rc.t, err)
	return resp, got
}

func requireCode(t *testing.T, resp *http.Response, body []byte, status int, code wire.Code) wire.Error {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, string(body))
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, code, e.Error.Code)
	return e.Error
}

// checkRules runs what both entrypoints must do; exists tells whether a
// name is stored.
func checkRules(t *testing.T, rc *rulesClient, hr *uploadtest.HookReceiver, exists func(string) bool) {
	sum := sha256.Sum256(pdfBytes)

	// A PDF under a .txt name: stored, both events, signed (the receiver
	// verifies each), and served as a PDF.
	resp, body := rc.send(http.MethodPut, "/files/report.txt", pdfBytes)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	evs := hr.Events()
	require.Len(t, evs, 2)
	assert.Equal(t, hook.Event{Type: hook.PreCreate, RequestID: resp.Header.Get("X-Request-Id"), Route: "put", Name: "report.txt",
		Size: int64(len(pdfBytes)), Time: evs[0].Time}, evs[0])
	assert.Equal(t, hook.PostFinish, evs[1].Type)
	assert.Equal(t, hex.EncodeToString(sum[:]), evs[1].SHA256)
	assert.Equal(t, "application/pdf", evs[1].ContentType)
	assert.True(t, exists("report.txt"))
	resp, body = rc.send(http.MethodGet, "/files/report.txt", nil)
	if resp.StatusCode == http.StatusTemporaryRedirect {
		resp, body = rc.send(http.MethodGet, resp.Header.Get("Location"), nil)
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/pdf", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
	assert.Equal(t, pdfBytes, body)

	// The hook refuses: 403 with its message, nothing stored.
	resp, body = rc.send(http.MethodPut, "/files/deny.pdf", pdfBytes)
	e := requireCode(t, resp, body, http.StatusForbidden, wire.CodeHookRefused)
	assert.Equal(t, uploadtest.RefusalMessage, e.Message)
	assert.False(t, exists("deny.pdf"))
	require.Len(t, hr.Events(), 1)

	// Text under a .png name: 415, nothing stored, no post-finish.
	resp, body = rc.send(http.MethodPut, "/files/photo.png", txtBytes)
	requireCode(t, resp, body, http.StatusUnsupportedMediaType, wire.CodeTypeNotAllowed)
	assert.False(t, exists("photo.png"))
	require.Len(t, hr.Events(), 1)

	// The same through tus, whose first chunk is sniffed.
	resp, body = rc.send(http.MethodPost, "/tus/", txtBytes, "Tus-Resumable", "1.0.0",
		"Upload-Length", strconv.Itoa(len(txtBytes)), "Content-Type", "application/offset+octet-stream",
		"Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("tus.png")))
	requireCode(t, resp, body, http.StatusUnsupportedMediaType, wire.CodeTypeNotAllowed)
	assert.False(t, exists("tus.png"))
	hr.Events()

	// A post-finish the hook fails: retried, and the upload is stored and
	// answered all the same.
	hr.SetPostFinishStatus(http.StatusBadGateway)
	defer hr.SetPostFinishStatus(0)
	resp, body = rc.send(http.MethodPut, "/files/kept.pdf", pdfBytes)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Len(t, hr.Events(), 1+hook.DefaultAttempts)
	assert.True(t, exists("kept.pdf"))
}

// checkHookDown takes the receiver down: an upload is then refused with
// 503, and nothing is stored.
func checkHookDown(t *testing.T, rc *rulesClient, hr *uploadtest.HookReceiver, exists func(string) bool) {
	hr.Close()
	resp, body := rc.send(http.MethodPut, "/files/while-down.pdf", pdfBytes)
	requireCode(t, resp, body, http.StatusServiceUnavailable, wire.CodeHookUnavailable)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.False(t, exists("while-down.pdf"))
}

func TestHooksAndTypesOnTheLocalServer(t *testing.T) {
	hr := uploadtest.NewHookReceiver(t)
	r := start(t, rulesFlags(hr)...)
	rc := newRulesClient(t, r.Addr)
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(r.dir, name))
		return err == nil
	}
	checkRules(t, rc, hr, exists)
	checkHookDown(t, rc, hr, exists)
}

func TestHookURLNeedsASecret(t *testing.T) {
	err := run(t.Context(), []string{"--addr", "127.0.0.1:0", "--hook-url", "http://127.0.0.1:1/hook"}, env(nil), io.Discard, nil)
	require.ErrorContains(t, err, "needs a --hook-secret")
}

func TestHooksAndTypesOnTheFunction(t *testing.T) {
	bootstrap, rie, gw := testservers.FunctionParts(t)
	hr := uploadtest.NewHookReceiver(t)
	r := start(t, append([]string{"--function", bootstrap, "--rie", rie, "--bucket", gw.Bucket}, rulesFlags(hr)...)...)
	rc := newRulesClient(t, r.Addr)
	exists := func(name string) bool {
		_, err := os.Stat(gw.ObjectPath(name))
		return err == nil
	}
	checkRules(t, rc, hr, exists)

	// The object keeps the sniffed type.
	head, err := gw.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(gw.Bucket), Key: aws.String("report.txt")})
	require.NoError(t, err)
	assert.Equal(t, "application/pdf", aws.ToString(head.ContentType))

	// Parts go straight to S3: the type is checked once the upload is
	// complete, and a refused file is deleted before the answer.
	multipart := func(name string, data []byte) (*http.Response, []byte) {
		t.Helper()
		cr, _ := json.Marshal(wire.CreateUploadRequest{Name: name, Size: int64(len(data))})
		resp, body := rc.send(http.MethodPost, "/uploads", cr)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		var created wire.CreatedUpload
		require.NoError(t, json.Unmarshal(body, &created))
		require.Len(t, created.Parts, 1)
		pu := created.Parts[0]
		var hdr []string
		for k, v := range pu.Headers {
			hdr = append(hdr, k, v)
		}
		resp, body = rc.send(pu.Method, pu.URL, data, hdr...)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		done, _ := json.Marshal(wire.CompleteRequest{Parts: []wire.CompletePart{{Number: 1, ETag: resp.Header.Get("ETag")}}})
		return rc.send(http.MethodPost, "/uploads/"+created.ID+"/complete", done)
	}
	resp, body := multipart("parts.png", txtBytes)
	requireCode(t, resp, body, http.StatusUnsupportedMediaType, wire.CodeTypeNotAllowed)
	assert.False(t, exists("parts.png"))
	evs := hr.Events()
	require.Len(t, evs, 1, "a pre-create and no post-finish")
	assert.Equal(t, "multipart", evs[0].Route)

	resp, body = multipart("parts.pdf", pdfBytes)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.True(t, exists("parts.pdf"))
	evs = hr.Events()
	require.Len(t, evs, 2)
	assert.Equal(t, hook.PostFinish, evs[1].Type)
	assert.Equal(t, "application/pdf", evs[1].ContentType)
	gw.RequireNoMultipartUploads(t)

	checkHookDown(t, rc, hr, exists)
}
