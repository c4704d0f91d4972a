package lambdahttp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/apitest"
	"spillway/internal/uploadtest"
	"spillway/lambdahttp"
	"spillway/spool"
	"spillway/wire"
)

// FuzzEvent feeds arbitrary payloads to Adapter.Invoke. It never panics or
// fails, always answers a valid event response with a JSON body for errors
// and a status below 500 unless the payload is no event at all (500
// bad_event), and leaves the spool empty. A raw upload it accepts is stored
// with exactly the body the event carries.
func FuzzEvent(f *testing.F) {
	for _, d := range []uploadtest.Dialect{uploadtest.FunctionURL, uploadtest.StartAPI} {
		for _, b64 := range []bool{false, true} {
			f.Add(uploadtest.Event(f, d, http.MethodPut, "/files/a/b.txt", map[string]string{"content-type": "text/plain"}, []byte("hello"), b64))
			f.Add(uploadtest.Event(f, d, http.MethodPost, "/files", map[string]string{"content-type": mpType},
				[]byte("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"m.txt\"\r\n\r\nmmm\r\n--b--\r\n"), b64))
		}
		f.Add(uploadtest.Event(f, d, http.MethodGet, "/files", nil, nil, false))
		f.Add(uploadtest.Event(f, d, http.MethodGet, "/files/missing.txt", map[string]string{"range": "bytes=0-1"}, nil, false))
		f.Add(uploadtest.Event(f, d, http.MethodDelete, "/files/x", nil, nil, false))
		f.Add(uploadtest.Event(f, d, http.MethodPut, "/files/..%2Fx", nil, []byte("x"), false))
	}
	// Every dialect, with a name that decoding twice would change.
	for _, p := range producers {
		for _, b64 := range []bool{false, true} {
			ev, err := json.Marshal(p.event(http.MethodPut, "/files/a%3Fb%2520c+d.txt", "x=%2F", []byte("hello"), b64))
			require.NoError(f, err)
			f.Add(ev)
		}
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `{"version":`, `{"rawPath":"/files/x","isBase64Encoded":true,"body":"ab!d","requestContext":{"http":{"method":"PUT"}}}`,
		`{"rawPath":"/files/x","body":"a\u0000\ud800b","requestContext":{"http":{"method":"PUT"}}}`,
		`{"rawPath":"/files/x","isBase64Encoded":true,"requestContext":{"http":{"method":"PUT"}}}`,
		`{"rawPath":"/files/x","isBase64Encoded":true,"body":"YQ=\n=","requestContext":{"http":{"method":"PUT"}}}`,
		`{"rawPath":"/files","headers":{"content-type":"multipart/form-data; boundary=b"},"body":"--b\r\n","requestContext":{"http":{"method":"POST"}}}`,
	} {
		f.Add([]byte(s))
	}
	// One adapter for every input (inputs run one at a time in a process),
	// logging nowhere; the upload directory is emptied after each input.
	h := apitest.New(f, spool.Config{Threshold: 64, MemoryBudget: spool.DefaultMemoryBudget}, api.Config{Logger: slog.New(slog.DiscardHandler)})
	e := &env{dir: h.Dir, spoolDir: h.SpoolDir, adapter: lambdahttp.New(h)}

	f.Fuzz(func(t *testing.T, payload []byte) {
		t.Cleanup(func() {
			entries, _ := os.ReadDir(e.dir)
			for _, de := range entries {
				os.RemoveAll(filepath.Join(e.dir, de.Name()))
			}
		})
		out, err := e.adapter.Invoke(context.Background(), payload)
		require.NoError(t, err)
		var resp anyResponse
		require.NoError(t, json.Unmarshal(out, &resp), "%s", out)
		require.GreaterOrEqual(t, resp.StatusCode, 100, "%s", out)
		uploadtest.RequireEmptyDir(t, e.spoolDir)
		if resp.StatusCode >= 400 {
			code := requireFuzzAPIError(t, resp)
			if resp.StatusCode >= 500 {
				require.Equal(t, "bad_event", code, "%s", out)
			}
			uploadtest.RequireEmptyDir(t, e.dir)
			return
		}
		var ev events.LambdaFunctionURLRequest
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(payload, &ev) != nil || ev.RequestContext.HTTP.Method != http.MethodPut {
			return
		}
		want := []byte(ev.Body)
		if ev.IsBase64Encoded {
			want, err = base64.StdEncoding.DecodeString(ev.Body)
			require.NoError(t, err, "stored a body that is not base64")
		}
		name := strings.TrimPrefix(resp.header("location"), "/files/")
		name, err = url.PathUnescape(name)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(e.dir, filepath.FromSlash(name)))
		require.NoError(t, err)
		require.Equal(t, want, got, "stored bytes differ from the event's body")
	})
}

func requireFuzzAPIError(t *testing.T, resp anyResponse) string {
	t.Helper()
	require.False(t, resp.IsBase64Encoded, "an error must be plain JSON")
	require.Equal(t, "application/json", resp.header("content-type"))
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &e), resp.Body)
	require.NotEmpty(t, e.Error.Code, resp.Body)
	return string(e.Error.Code)
}
