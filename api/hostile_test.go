package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/formdata"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/wire"
)

// hostileEscapeSegments percent-encodes each segment of name, keeping its slashes,
// as a careful client builds a URL: the handler's one decoding gives back
// the name exactly.
func hostileEscapeSegments(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// hostileEscapeAll percent-encodes every byte of name, slashes and dots included.
func hostileEscapeAll(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		fmt.Fprintf(&b, "%%%02X", name[i])
	}
	return b.String()
}

// hostileFilenameStar is name as an RFC 2231 extended parameter value, which can
// carry any byte, NUL and CR LF included, through a part header.
func hostileFilenameStar(name string) string {
	var b strings.Builder
	b.WriteString("UTF-8''")
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// hostileQuotedFilename is name as the quoted string a browser or mime/multipart's
// writer sends, when a part header can carry it as one.
func hostileQuotedFilename(name string) (string, bool) {
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return "", false
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`, true
}

// requireHostileNameIntact checks that the refusal's log line quotes the
// name the client meant: proof that it reached the name rules undamaged.
// The response itself carries only the fixed message, never the name.
func requireHostileNameIntact(t *testing.T, s *server, resp *http.Response, body []byte, name string) {
	t.Helper()
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e))
	assert.Equal(t, api.ErrorFor(store.ErrInvalidName).Message, e.Error.Message)
	line := s.logLine(t, resp.Header.Get("X-Request-Id"))
	detail, _ := line["error"].(string)
	if len(name) > store.MaxNameLen {
		assert.Contains(t, detail, fmt.Sprintf("is %d bytes", len(name)))
		return
	}
	assert.Contains(t, detail, strconv.Quote(name))
}

// TestHostileNamesPut sends every corpus name as PUT /files/{name}: escaped
// per segment, with every byte escaped, and raw where the Go client can
// send it; and as GET. Each is refused with 400 invalid_name before the
// body is read, and leaves nothing behind.
func TestHostileNamesPut(t *testing.T) {
	s := newServer(t, options{})
	rawSent := 0
	for _, h := range uploadtest.HostileNames(t) {
		t.Run(h.Why, func(t *testing.T) {
			type form struct{ label, target string }
			forms := []form{
				{"escaped per segment", "/files/" + hostileEscapeSegments(h.Name)},
				{"every byte escaped", "/files/" + hostileEscapeAll(h.Name)},
			}
			// Raw, when the URL parses and the query or fragment does not
			// swallow part of the name. The handler then decodes what it
			// gets, so a literal "%2f" arrives as a slash: still hostile.
			if u, err := url.Parse(s.URL + "/files/" + h.Name); err == nil && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery {
				forms = append(forms, form{"raw", "/files/" + h.Name})
				rawSent++
			}
			for _, f := range forms {
				resp, body := s.do(t, s.request(t, http.MethodPut, f.target, strings.NewReader("data"), 4))
				requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
				assert.Equal(t, http.StatusBadRequest, s.waitServed(t), f.label)
				if f.label != "raw" {
					requireHostileNameIntact(t, s, resp, body, h.Name)
				}
				s.requireNothingLeft(t)
			}
			resp, body := s.do(t, s.request(t, http.MethodGet, forms[0].target, nil, 0))
			requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
			s.waitServed(t)
		})
	}
	t.Logf("%d names also sent raw", rawSent)
	assert.Contains(t, s.logs.String(), `"bytes":0`, "refused before the body")
	assert.NotContains(t, s.logs.String(), `"status":201`)
}

// TestHostileWireForms sends request targets whose literal text is a
// harmless name but whose one decoding, in the handler, is hostile.
func TestHostileWireForms(t *testing.T) {
	s := newServer(t, options{})
	for _, p := range []string{
		"%2e%2e/x", "%2E%2E%2Fx", "x/%2e%2e/%2e%2e/y", "%2e", "%2F", "%2Fetc%2Fpasswd", "a%5Cb", "%ff%fe", "%c0%ae%c0%ae/x",
		"a%00b", "a%0d%0ab", "a%E2%80%AEb", "a%E2%80%A5b", "C%3A%5Cx", "CON%3A", "%20", "a%2F%2Fb",
	} {
		resp, body := s.do(t, s.request(t, http.MethodPut, "/files/"+p, strings.NewReader("data"), 4))
		requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
		s.waitServed(t)
	}
	uploadtest.RequireEmptyDir(t, s.dir)
}

// TestHostileNamesMultipart sends every corpus name as a multipart filename:
// as the quoted string browsers send, when it can be one, and as an RFC 2231
// filename* (which mime.ParseMediaType prefers over a harmless filename
// beside it) in a part that follows a good file. Each request is refused
// whole with 400 invalid_name, or, for a name longer than the part header
// cap, 400 bad_multipart.
func TestHostileNamesMultipart(t *testing.T) {
	s := newServer(t, options{})
	const head = "--b\r\nContent-Disposition: form-data; name=\"f\"; "
	for _, h := range uploadtest.HostileNames(t) {
		t.Run(h.Why, func(t *testing.T) {
			var bodies []string
			if q, ok := hostileQuotedFilename(h.Name); ok {
				bodies = append(bodies, head+"filename="+q+"\r\n\r\ncontent\r\n--b--\r\n")
			}
			bodies = append(bodies, head+"filename=\"good.txt\"\r\n\r\ngood\r\n"+
				head+"filename=\"harmless.txt\"; filename*="+hostileFilenameStar(h.Name)+"\r\n\r\ncontent\r\n--b--\r\n")
			for _, b := range bodies {
				req := s.request(t, http.MethodPost, "/files", strings.NewReader(b), int64(len(b)))
				req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
				resp, body := s.do(t, req)
				if len(h.Name) > formdata.DefaultMaxHeaderBytes {
					// Refused sooner: its part header is over the cap.
					requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
					s.waitServed(t)
					s.requireLogged(t, resp, "part header too large")
				} else {
					requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
					s.waitServed(t)
					requireHostileNameIntact(t, s, resp, body, h.Name)
				}
				s.requireNothingLeft(t)
			}
		})
	}
}

// TestHostileSymlinks plants symlinks in the upload directory that lead
// outside it, and uploads through them, raw and multipart, with and without
// overwrite, small (memory) and large (disk-spooled, hard-linked) bodies.
// Every upload is refused with 400 and nothing outside changes.
func TestHostileSymlinks(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("overwrite=%v", overwrite), func(t *testing.T) {
			s := newServer(t, options{store: dirstore.Options{Overwrite: overwrite}})
			outside := t.TempDir()
			secret := filepath.Join(outside, "secret.txt")
			require.NoError(t, os.WriteFile(secret, []byte("original"), 0o600))
			rel, err := filepath.Rel(s.dir, outside)
			require.NoError(t, err)
			links := map[string]string{
				"outdir":       outside,                              // a directory outside, absolute
				"reldir":       rel,                                  // the same, relative
				"link.txt":     secret,                               // an existing file outside
				"dangling.txt": filepath.Join(outside, "new.txt"),    // a file outside that does not exist yet
				"up.txt":       filepath.Join("..", "up-escape.txt"), // one level up, relative
				"loop":         "loop",                               // a loop
			}
			for name, target := range links {
				require.NoError(t, os.Symlink(target, filepath.Join(s.dir, name)))
			}
			for _, size := range []int64{10, spool.DefaultThreshold + 1} {
				for _, name := range []string{"outdir/pwned.bin", "reldir/pwned.bin", "outdir/new/deep.bin", "link.txt", "dangling.txt", "up.txt", "loop/x.bin"} {
					f := uploadtest.File{Name: name, Seed: 7, Size: size}
					resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
					requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
					s.waitServed(t)
				}
				for _, name := range []string{"link.txt", "dangling.txt", "up.txt"} {
					f := uploadtest.File{Name: name, Seed: 7, Size: size}
					resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.MultipartOne, Files: []uploadtest.File{f}})
					requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
					s.waitServed(t)
				}
				uploadtest.RequireEmptyDir(t, s.spoolDir)
			}

			got, err := os.ReadFile(secret)
			require.NoError(t, err)
			assert.Equal(t, "original", string(got), "a file outside was written through a symlink")
			entries, err := os.ReadDir(outside)
			require.NoError(t, err)
			require.Len(t, entries, 1, "something was created outside")
			assert.NoFileExists(t, filepath.Join(filepath.Dir(s.dir), "up-escape.txt"))
			entries, err = os.ReadDir(s.dir)
			require.NoError(t, err)
			assert.Len(t, entries, len(links), "only the planted links may remain")
			for _, e := range entries {
				fi, err := os.Lstat(filepath.Join(s.dir, e.Name()))
				require.NoError(t, err)
				assert.Equal(t, os.ModeSymlink, fi.Mode().Type(), "%s was replaced", e.Name())
			}
		})
	}
}
