package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/wire"
)

// companion calls an /s3/ route as @uppy/aws-s3 does, with the token.
func (s *server) companion(t *testing.T, method, path string, in any) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	var n int64
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(t, err)
		body, n = bytes.NewReader(b), int64(len(b))
	}
	req := s.request(t, method, path, body, n)
	req.Header.Set("Authorization", "Bearer "+s.bearer)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return s.do(t, req)
}

// TestCompanionMultipart runs @uppy/aws-s3's multipart calls in its order:
// create, sign and PUT each part, list, complete; and the refusals on the
// way, each of which leaves the upload as it was.
func TestCompanionMultipart(t *testing.T) {
	s := newServer(t, options{token: "t0k"})
	data := bytes.Repeat([]byte("uppy"), (5<<20)/4+1000) // two parts: 5 MiB and 4000 bytes
	sum := sha256.Sum256(data)

	resp, body := s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": "../x", "type": "text/plain", "metadata": map[string]any{"size": len(data)}})
	requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
	resp, body = s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": "u.bin", "type": "text/plain", "metadata": map[string]any{}})
	requireError(t, resp, body, http.StatusBadRequest, "bad_request")
	s.requireLogged(t, resp, "metadata has no size")
	req := s.request(t, http.MethodPost, "/s3/multipart", strings.NewReader(`{"filename":"u.bin","metadata":{"size":1}}`), -1)
	resp, body = s.do(t, req)
	requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")

	resp, body = s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": "u.bin", "type": "text/plain", "metadata": map[string]any{"name": "u.bin", "size": float64(len(data))}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var created wire.S3CreateResponse
	require.NoError(t, json.Unmarshal(body, &created))
	assert.Equal(t, "u.bin", created.Key)
	q := "?" + url.Values{"key": {created.Key}}.Encode()
	up := "/s3/multipart/" + created.UploadID

	// A key other than the upload's name is an unknown upload.
	resp, body = s.companion(t, http.MethodGet, up+"/1?key=other.bin", nil)
	requireError(t, resp, body, http.StatusNotFound, "upload_not_found")
	resp, body = s.companion(t, http.MethodGet, up+"/3"+q, nil)
	requireError(t, resp, body, http.StatusBadRequest, "upload_mismatch")

	var parts []wire.S3CompletePart
	for i, chunk := range [][]byte{data[:5<<20], data[5<<20:]} {
		resp, body = s.companion(t, http.MethodGet, up+"/"+string(rune('1'+i))+q, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var signed wire.S3SignedPart
		require.NoError(t, json.Unmarshal(body, &signed))
		assert.Positive(t, signed.Expires)
		put, err := http.NewRequest(http.MethodPut, signed.URL, bytes.NewReader(chunk))
		require.NoError(t, err)
		resp, body = s.do(t, put)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		parts = append(parts, wire.S3CompletePart{PartNumber: i + 1, ETag: resp.Header.Get("ETag")})
	}
	resp, body = s.companion(t, http.MethodGet, up+q, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var listed []wire.S3Part
	require.NoError(t, json.Unmarshal(body, &listed))
	require.Len(t, listed, 2)
	assert.Equal(t, wire.S3Part{PartNumber: 2, Size: 4000, ETag: parts[1].ETag}, listed[1])

	resp, body = s.companion(t, http.MethodPost, up+"/complete"+q, wire.S3CompleteRequest{Parts: parts[:1]})
	requireError(t, resp, body, http.StatusBadRequest, "upload_mismatch")
	resp, body = s.companion(t, http.MethodPost, up+"/complete"+q, wire.S3CompleteRequest{Parts: parts})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var done wire.S3CompleteResponse
	require.NoError(t, json.Unmarshal(body, &done))
	assert.Equal(t, wire.S3CompleteResponse{Location: s.URL + "/files/u.bin", Key: "u.bin", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, done)
	got, err := os.ReadFile(filepath.Join(s.dir, "u.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got))

	// The name is taken now: a new upload of it is refused before it is made.
	resp, body = s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": "u.bin", "metadata": map[string]any{"size": "10"}})
	requireError(t, resp, body, http.StatusConflict, "exists")
}

func TestCompanionAbort(t *testing.T) {
	s := newServer(t, options{})
	resp, body := s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": "a.bin", "metadata": map[string]any{"size": "10"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var created wire.S3CreateResponse
	require.NoError(t, json.Unmarshal(body, &created))
	resp, body = s.companion(t, http.MethodDelete, "/s3/multipart/"+created.UploadID+"?key=b.bin", nil)
	requireError(t, resp, body, http.StatusNotFound, "upload_not_found")
	resp, _ = s.companion(t, http.MethodDelete, "/s3/multipart/"+created.UploadID+"?key=a.bin", nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, body = s.companion(t, http.MethodGet, "/s3/multipart/"+created.UploadID+"?key=a.bin", nil)
	requireError(t, resp, body, http.StatusNotFound, "upload_not_found")
	entries, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.True(t, strings.HasPrefix(e.Name(), ".spillway"), "left behind: %s", e.Name())
	}
}

// postForm sends data as @uppy/aws-s3 sends a file whole: the params'
// fields, then the file, as a form POST to the params' URL, with no token.
func postForm(t *testing.T, s *server, p wire.S3Params, data []byte) (*http.Response, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range p.Fields {
		require.NoError(t, mw.WriteField(k, v))
	}
	fw, err := mw.CreateFormFile("file", "whatever-the-browser-calls-it.bin")
	require.NoError(t, err)
	fw.Write(data)
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(p.Method, p.URL, &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return s.do(t, req)
}

func TestCompanionParams(t *testing.T) {
	s := newServer(t, options{token: "t0k"})
	resp, body := s.companion(t, http.MethodGet, "/s3/params?filename=..%2Fx&type=text%2Fplain", nil)
	requireError(t, resp, body, http.StatusBadRequest, "invalid_name")

	resp, body = s.companion(t, http.MethodGet, "/s3/params?filename=small.txt&type=text%2Fplain&metadata%5Bsize%5D=5", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var p wire.S3Params
	require.NoError(t, json.Unmarshal(body, &p))
	assert.Equal(t, http.MethodPost, p.Method)
	assert.Equal(t, map[string]string{"key": "small.txt"}, p.Fields)

	// The signature covers the key: another name is refused, unread.
	forged := p
	forged.URL = strings.Replace(p.URL, "key=small.txt", "key=other.txt", 1)
	resp, body = postForm(t, s, forged, []byte("hello"))
	requireError(t, resp, body, http.StatusForbidden, "bad_signature")

	resp, body = postForm(t, s, p, []byte("hello"))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, "/files/small.txt", resp.Header.Get("Location"))
	got, err := os.ReadFile(filepath.Join(s.dir, "small.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))

	// Where @uppy/aws-s3 says the file is (the form URL, without its query,
	// and the key) serves it, under the token.
	resp, body = s.companion(t, http.MethodGet, "/s3/objects/small.txt", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "hello", string(body))
	resp, body = s.do(t, s.request(t, http.MethodGet, "/s3/objects/small.txt", nil, 0))
	requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")

	// No overwrite: the same URL again is 409, and the file stays.
	resp, body = postForm(t, s, p, []byte("HELLO"))
	requireError(t, resp, body, http.StatusConflict, "exists")
	got, err = os.ReadFile(filepath.Join(s.dir, "small.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))
	_, err = os.Stat(filepath.Join(s.dir, "other.txt"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// A size over the limit is refused when the params are asked for, before
// the browser sends a byte; so is a multipart upload over it.
func TestCompanionTooLarge(t *testing.T) {
	s := newServer(t, options{spool: func(c *spool.Config) { c.MaxSize = 1000 }})
	resp, body := s.companion(t, http.MethodGet, "/s3/params?filename=big.bin&metadata%5Bsize%5D=1001", nil)
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
	resp, body = s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": "big.bin", "metadata": map[string]any{"size": 1001}})
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
	resp, body = s.companion(t, http.MethodGet, "/s3/params?filename=ok.bin&metadata%5Bsize%5D=12x", nil)
	requireError(t, resp, body, http.StatusBadRequest, "bad_request")
	resp, _ = s.companion(t, http.MethodGet, "/s3/params?filename=ok.bin&metadata%5Bsize%5D=1000", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	uploadtest.RequireEmptyDir(t, s.dir)
}

// A whole upload's form that cannot fit is refused before its body, as a
// POST /files is: a client sending Expect: 100-continue sends nothing.
func TestCompanionFormNoSpace(t *testing.T) {
	s := newServer(t, options{})
	body := &trackingReader{r: strings.NewReader("")}
	req := s.request(t, http.MethodPost, "/s3/objects?key=huge.bin", body, 1<<60)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	req.Header.Set("Expect", "100-continue")
	resp, respBody := s.do(t, req)
	requireError(t, resp, respBody, http.StatusInsufficientStorage, "insufficient_storage")
	s.waitServed(t)
	assert.False(t, body.read.Load(), "the body was read")
	uploadtest.RequireEmptyDir(t, s.dir)
}

// Every hostile name is refused as Uppy's filename, in the create body and
// in the params' query, and nothing is made.
func TestCompanionHostileNames(t *testing.T) {
	s := newServer(t, options{})
	for _, h := range uploadtest.HostileNames(t) {
		create := map[string]any{"filename": h.Name, "metadata": map[string]any{"size": 10}}
		resp, body := s.companion(t, http.MethodPost, "/s3/multipart", create)
		if encoded, err := json.Marshal(create); assert.NoError(t, err) && len(encoded) > 256<<10 {
			// Over the JSON body's limit, as POST /uploads has it.
			requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
		} else {
			requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
		}
		resp, body = s.companion(t, http.MethodGet, "/s3/params?"+url.Values{"filename": {h.Name}, "metadata[size]": {"10"}}.Encode(), nil)
		requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
		resp, body = s.do(t, s.request(t, http.MethodPost, "/s3/objects?"+url.Values{"key": {h.Name}}.Encode(), strings.NewReader("x"), 1))
		requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
	}
	uploadtest.RequireEmptyDir(t, s.dir)
}
