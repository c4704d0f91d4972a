package lambdahttp_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

// badEvent builds a Function URL event from parts; fields left empty are
// left out, and extra fields override.
func badEvent(t testing.TB, method, rawPath string, b64 bool, body any, extra map[string]any) []byte {
	t.Helper()
	ev := map[string]any{
		"version": "2.0", "rawPath": rawPath, "isBase64Encoded": b64,
		"headers":        map[string]string{"content-type": "application/octet-stream"},
		"requestContext": map[string]any{"http": map[string]any{"method": method, "path": rawPath}},
	}
	if body != nil {
		ev["body"] = body
	}
	for k, v := range extra {
		ev[k] = v
	}
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	return payload
}

// requireNothingLeft checks that the upload and spool directories are empty.
func (e *env) requireNothingLeft(t *testing.T) {
	t.Helper()
	uploadtest.RequireEmptyDir(t, e.spoolDir)
	uploadtest.RequireEmptyDir(t, e.dir)
}

// takeStored returns a stored file's bytes and removes it.
func (e *env) takeStored(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, name))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(e.dir, name)))
	return b
}

const mpType = "multipart/form-data; boundary=b"

func TestBadEventBase64(t *testing.T) {
	e := newEnv(t)
	good := base64.StdEncoding.EncodeToString([]byte("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"m.txt\"\r\n\r\n" + strings.Repeat("m", 3000) + "\r\n--b--\r\n"))
	for _, tc := range []struct {
		name, method, path, ctype, body string
	}{
		{"URL-safe alphabet", "PUT", "/files/x.bin", "", base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 0xfb})},
		{"unpadded", "PUT", "/files/x.bin", "", base64.RawStdEncoding.EncodeToString([]byte("hello"))},
		{"a space inside", "PUT", "/files/x.bin", "", "aGVs bG8h"},
		{"a tab inside", "PUT", "/files/x.bin", "", "aGVs\tbG8"},
		{"only padding", "PUT", "/files/x.bin", "", "===="},
		{"three pads", "PUT", "/files/x.bin", "", "A==="},
		{"data after padding", "PUT", "/files/x.bin", "", "YQ==YQ=="},
		{"non-ASCII", "PUT", "/files/x.bin", "", "aGVsbG8é"},
		{"NUL", "PUT", "/files/x.bin", "", "aGVs\x00G8h"},
		{"corrupt multipart body", "POST", "/files", mpType, good[:2000] + "!" + good[2001:]},
		{"corrupt at the end of a multipart body", "POST", "/files", mpType, good[:len(good)-5] + "*" + good[len(good)-4:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra map[string]any
			if tc.ctype != "" {
				extra = map[string]any{"headers": map[string]string{"content-type": tc.ctype}}
			}
			resp := e.invoke(t, badEvent(t, tc.method, tc.path, true, tc.body, extra))
			if tc.name == "data after padding" {
				// Read in small pieces, Go's base64 stream decoder stops
				// at the first padding and says EOF; the body is then
				// shorter than its decoded length.
				requireAPIError(t, resp, http.StatusBadRequest, "incomplete_body")
			} else {
				requireAPIError(t, resp, http.StatusBadRequest, "bad_request")
			}
			e.requireNothingLeft(t)
		})
	}

	// Line breaks are skipped, as the decoder skips them.
	resp := e.invoke(t, badEvent(t, "PUT", "/files/wrapped.bin", true, "aGVs\r\nbG8h\n", nil))
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
	assert.Equal(t, "hello!", string(e.takeStored(t, "wrapped.bin")))
	e.requireNothingLeft(t)
}

// TestBadEventMissingBody: with isBase64Encoded and no body (absent or
// null), the body is empty. An empty raw upload is an empty file; an empty
// multipart body is malformed.
func TestBadEventMissingBody(t *testing.T) {
	e := newEnv(t)
	for _, body := range []any{nil, json.RawMessage("null"), ""} {
		resp := e.invoke(t, badEvent(t, "PUT", "/files/empty.bin", true, body, nil))
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
		assert.Empty(t, e.takeStored(t, "empty.bin"))

		requireAPIError(t, e.invoke(t, badEvent(t, "POST", "/files", true, body, map[string]any{"headers": map[string]string{"content-type": mpType}})),
			http.StatusBadRequest, "bad_multipart")
		e.requireNothingLeft(t)
	}
}

// TestBadEventTextBodies: a body that is not base64 arrives as a JSON
// string, which can carry NUL (stored as it is) but not invalid UTF-8: a
// lone surrogate escape is decoded by encoding/json as U+FFFD before the
// adapter sees it, so that is what is stored.
func TestBadEventTextBodies(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, jsonBody, want string }{
		{"NUL", `"a\u0000b"`, "a\x00b"},
		{"only NULs", `"\u0000\u0000"`, "\x00\x00"},
		{"lone high surrogate", `"a\ud800b"`, "a\ufffdb"},
		{"lone low surrogate", `"\udc00"`, "\ufffd"},
		{"reversed pair", `"\udc00\ud800"`, "\ufffd\ufffd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.invoke(t, badEvent(t, "PUT", "/files/text.bin", false, json.RawMessage(tc.jsonBody), nil))
			require.Equal(t, http.StatusCreated, resp.StatusCode, resp.Body)
			assert.Equal(t, tc.want, string(e.takeStored(t, "text.bin")))
			e.requireNothingLeft(t)
		})
	}

	// In a multipart part header, NUL is refused by the MIME parser.
	body := `"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\u0000b\"\r\n\r\nx\r\n--b--\r\n"`
	requireAPIError(t, e.invoke(t, badEvent(t, "POST", "/files", false, json.RawMessage(body), map[string]any{"headers": map[string]string{"content-type": mpType}})),
		http.StatusBadRequest, "bad_multipart")
	e.requireNothingLeft(t)
}

// TestBadEventShapes: payloads that are not events, or events with fields
// of the wrong type, are 500 bad_event: the function is wired to something
// it does not speak, which is no client's fault.
func TestBadEventShapes(t *testing.T) {
	e := newEnv(t)
	for _, payload := range []string{
		``, ` `, `null`, `[]`, `"event"`, `42`, `{}`, `{"version":"2.0"}`, `{"rawPath":"/files/x"}`,
		`{"rawPath":"/files/x","body":42,"requestContext":{"http":{"method":"PUT"}}}`,
		`{"rawPath":"/files/x","isBase64Encoded":"yes","requestContext":{"http":{"method":"PUT"}}}`,
		`{"rawPath":"/files/x","headers":["a"],"requestContext":{"http":{"method":"PUT"}}}`,
		`{"rawPath":"/files/x","requestContext":"PUT"}`,
		`{"rawPath":"/files/x","requestContext":{"http":{"method":"PUT"}}`,
		`{"rawPath":"/files/x","requestContext":{"http":{"method":"PUT"}}} trailing`,
		strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		`{"rawPath":"/files/x","body":"` + strings.Repeat(`\`, 3) + `","requestContext":{"http":{"method":"PUT"}}}`,
	} {
		requireAPIError(t, e.invoke(t, []byte(payload)), http.StatusInternalServerError, "bad_event")
	}
	e.requireNothingLeft(t)
}

// TestBadEventMethodsAndPaths: unknown methods and paths get JSON errors.
func TestBadEventMethodsAndPaths(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"PATCH", "/files/a.txt", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"PATCH", "/files/a.txt", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"OPTIONS", "/files", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"put", "/files/a.txt", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"BREW", "/files/a.txt", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"POST", "/files/a.txt", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"PUT", "/healthz", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"", "/files/a.txt", http.StatusInternalServerError, "bad_event"},
		{"P UT", "/files/a.txt", http.StatusBadRequest, "bad_request"},
		{"PUT\r\n", "/files/a.txt", http.StatusBadRequest, "bad_request"},
		{"GET", "/index", http.StatusNotFound, "not_found"},
		{"POST", "/", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"PUT", "/nowhere", http.StatusNotFound, "not_found"},
		{"PUT", "/FILES/a.txt", http.StatusNotFound, "not_found"},
		{"PUT", "/files%2Fa.txt", http.StatusNotFound, "not_found"},
		{"PUT", "//files/a.txt", http.StatusNotFound, "not_found"},
		{"GET", "*", http.StatusBadRequest, "bad_request"},
		{"PUT", "http://evil.example/files/abs.txt", http.StatusBadRequest, "bad_request"},
		{"PUT", "/files/../a.txt", http.StatusBadRequest, "invalid_name"},
		{"PUT", "/files/a%zz", http.StatusBadRequest, "bad_request"},
		{"PUT", "/files/a\x00b", http.StatusBadRequest, "bad_request"},
		{"PUT", "/files/a\nb", http.StatusBadRequest, "bad_request"},
		{"PUT", "files/a.txt", http.StatusBadRequest, "bad_request"},
		{"PUT", "", http.StatusInternalServerError, "bad_event"},
	} {
		resp := e.invoke(t, badEvent(t, tc.method, tc.path, false, "data", nil))
		requireAPIError(t, resp, tc.status, tc.code)
		if tc.status == http.StatusMethodNotAllowed {
			assert.NotEmpty(t, resp.Headers["allow"], "%s %s", tc.method, tc.path)
		}
	}
	e.requireNothingLeft(t)
}

// TestBadEventHostileNames runs the shared corpus of hostile names through
// events, escaped per segment, in both dialects.
func TestBadEventHostileNames(t *testing.T) {
	e := newEnv(t)
	for i, h := range uploadtest.HostileNames(t) {
		segs := strings.Split(h.Name, "/")
		for j, s := range segs {
			segs[j] = url.PathEscape(s)
		}
		d := []uploadtest.Dialect{uploadtest.FunctionURL, uploadtest.StartAPI}[i%2]
		resp := e.invoke(t, uploadtest.Event(t, d, http.MethodPut, "/files/"+strings.Join(segs, "/"), nil, []byte("data"), i%3 == 0))
		requireAPIError(t, resp, http.StatusBadRequest, "invalid_name")
	}
	e.requireNothingLeft(t)
}

// An event that makes no request is refused as the handler refuses a
// request: the fixed message, the Lambda request ID in the answer, and the
// detail in the log line under that ID.
func TestBadEventIsLoggedUnderTheLambdaRequestID(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		payload []byte
		status  int
		code    string
	}{
		{[]byte(`{"version":`), http.StatusInternalServerError, "bad_event"}, // no event at all: the trigger's fault
		{badEvent(t, "PUT", "files/x.bin", false, "data", nil), http.StatusBadRequest, "bad_request"},
	} {
		resp := e.invoke(t, c.payload)
		requireAPIError(t, resp, c.status, c.code)
		assert.Equal(t, "aws-req-7", resp.Headers["x-request-id"])
		assert.Contains(t, resp.Body, `"request_id":"aws-req-7"`)
	}
	logs := e.logs.String()
	assert.Contains(t, logs, `"request_id":"aws-req-7"`)
	assert.Contains(t, logs, "not an HTTP event")
	assert.Contains(t, logs, "does not begin with /")
}
