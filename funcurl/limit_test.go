package funcurl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

// eventSize is what a function saw of one event: its size, and the size
// of its body field's value as it stands in the JSON (base64 or escaped
// text, without the quotes).
type eventSize struct {
	Event int64 `json:"event"`
	Body  int64 `json:"body"`
}

// measureEvent measures an event as testdata/testfunc's /size does.
func measureEvent(t *testing.T, event []byte) eventSize {
	t.Helper()
	var ev struct {
		Body json.RawMessage `json:"body"`
	}
	require.NoError(t, json.Unmarshal(event, &ev))
	size := eventSize{Event: int64(len(event))}
	if len(ev.Body) >= 2 {
		size.Body = int64(len(ev.Body)) - 2
	}
	return size
}

// limitTarget is an emulator under a size-limit test: event tells what
// the function saw of the last exchange, calls how often it ran.
type limitTarget struct {
	url      string
	spoolDir string
	event    func(t *testing.T, resp *http.Response, body []byte) eventSize
	calls    func(t *testing.T) int
}

// escapedText returns UTF-8 text that takes exactly n bytes once escaped
// into a JSON string: quotes and newlines (two bytes each) among letters
// and a multi-byte rune.
func escapedText(n int64) []byte {
	const unit = "ab\"é\n" // escaped: ab\"é\n, 8 bytes
	units := n / 8
	b := bytes.Repeat([]byte(unit), int(units))
	return append(b, bytes.Repeat([]byte{'x'}, int(n-units*8))...)
}

// testExactLimit sends, for text and binary bodies with and without a
// Content-Length, a request whose event is exactly MaxRequestSize bytes,
// which the function must receive, and the same request with a header one
// byte longer, which must be refused with 413 without invoking it. The
// event around the body is measured first, with a body of the same
// Content-Length digit count; a padding header then makes a binary
// body's base64 fill the event to the byte.
func testExactLimit(t *testing.T, target limitTarget) {
	send := func(t *testing.T, contentType string, body []byte, chunked bool, pad int) (*http.Response, []byte) {
		t.Helper()
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // hides the length
		}
		req := newRequest(t, http.MethodPut, target.url+"/size", r)
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Pad", strings.Repeat("p", pad))
		return do(t, req)
	}
	for _, c := range []struct {
		name, contentType string
		// body returns a body whose encoded form is at least n bytes,
		// and exactly n when n is a multiple of quantum.
		body    func(n int64) []byte
		quantum int64
	}{
		{"text", "text/plain; charset=utf-8", escapedText, 1},
		{"binary", "application/octet-stream", func(n int64) []byte {
			return uploadtest.File{Seed: 7, Size: (n + 3) / 4 * 3}.Bytes()
		}, 4},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", c.name, chunked), func(t *testing.T) {
				const probe = 2_000_000 // 1.2 MB to 1.5 MB raw: as many digits as at the limit
				pad := 8
				resp, body := send(t, c.contentType, c.body(probe), chunked, pad)
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				m := target.event(t, resp, body)
				require.EqualValues(t, probe, m.Body)
				overhead := m.Event - m.Body

				pad += int((MaxRequestSize - overhead) % c.quantum)
				fits := c.body(MaxRequestSize - overhead - int64(pad-8))
				resp, body = send(t, c.contentType, fits, chunked, pad)
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				assert.Equal(t, eventSize{MaxRequestSize, MaxRequestSize - overhead - int64(pad-8)}, target.event(t, resp, body),
					"the function received the whole event of exactly the limit")

				calls := target.calls(t)
				resp, body = send(t, c.contentType, fits, chunked, pad+1)
				assertTooLarge(t, resp, body)
				assert.Equal(t, calls, target.calls(t), "the function did not run")
				uploadtest.RequireEmptyDir(t, target.spoolDir)
			})
		}
	}
}
