package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/formdata"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/wire"
)

// mpPost sends body as multipart/form-data with the given boundary.
func (s *server) mpPost(t *testing.T, boundary, body string) (*http.Response, []byte) {
	t.Helper()
	req := s.request(t, http.MethodPost, "/files", strings.NewReader(body), int64(len(body)))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	return s.do(t, req)
}

// mpFilePart is one file part, delimited by boundary, with its trailing CRLF.
func mpFilePart(boundary, filename, data string) string {
	return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"" + filename + "\"\r\n\r\n" + data + "\r\n"
}

// TestMultipartMalformedHeaders covers part headers over formdata's caps:
// its size cap, far below mime/multipart's 10 MiB, or the 10,000-entry cap
// ("part header too large"), and headers that do not parse. Each is 400 bad_multipart, also after an
// earlier file part was spooled to disk, and nothing is kept.
func TestMultipartMalformedHeaders(t *testing.T) {
	s := newServer(t, options{})
	const cd = "Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\""
	spooled := mpFilePart("b", "first.bin", strings.Repeat("s", spool.DefaultThreshold+1)) // on disk when the bad part arrives
	cases := []struct {
		name, body, contains string
	}{
		{"one header line over the cap", "--b\r\n" + cd + "\r\nX-Big: " + strings.Repeat("a", formdata.DefaultMaxHeaderBytes) + "\r\n\r\ndata\r\n--b--\r\n", "part header too large"},
		{"header lines over the cap in all", "--b\r\n" + cd + "\r\n" + strings.Repeat("X-Big: "+strings.Repeat("a", 1<<10)+"\r\n", 16) + "\r\ndata\r\n--b--\r\n", "part header too large"},
		{"one header line over 10 MiB", "--b\r\n" + cd + "\r\nX-Big: " + strings.Repeat("a", 10<<20) + "\r\n\r\ndata\r\n--b--\r\n", "part header too large"},
		{"header lines over 10 MiB in all", "--b\r\n" + cd + "\r\n" + strings.Repeat("X-Big: "+strings.Repeat("a", 1<<20)+"\r\n", 11) + "\r\ndata\r\n--b--\r\n", "part header too large"},
		{"more than 10000 header lines", "--b\r\n" + cd + "\r\n" + strings.Repeat("X-H: v\r\n", 10001) + "\r\ndata\r\n--b--\r\n", "part header too large"},
		{"over 10 MiB after a spooled part", spooled + "--b\r\n" + cd + "\r\nX-Big: " + strings.Repeat("a", 10<<20) + "\r\n\r\ndata\r\n--b--\r\n", "part header too large"},
		{"header line without a colon", "--b\r\n" + cd + "\r\nno colon here\r\n\r\ndata\r\n--b--\r\n", "header line without a colon"},
		{"first header line folded", "--b\r\n folded: v\r\n" + cd + "\r\n\r\ndata\r\n--b--\r\n", "begins with a continuation line"},
		{"no Content-Disposition", "--b\r\nContent-Type: text/plain\r\n\r\ndata\r\n--b--\r\n", "Content-Disposition"},
		{"unterminated filename quote", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\r\n\r\ndata\r\n--b--\r\n", "Content-Disposition"},
		{"filename given twice", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename=\"b.txt\"\r\n\r\ndata\r\n--b--\r\n", "Content-Disposition"},
		{"bad RFC 2231 continuation", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename*0=\"a\"; filename*0=\"b\"\r\n\r\ndata\r\n--b--\r\n", "Content-Disposition"},
		{"spooled part then a line that is not a boundary", spooled[:len(spooled)-2] + "\r\n--b\rjunk\r\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.mpPost(t, "b", tc.body)
			requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
			s.waitServed(t)
			if tc.contains != "" {
				s.requireLogged(t, resp, tc.contains)
			}
			s.requireNothingLeft(t)
		})
	}

	// A header exactly at the size cap is accepted, one byte more is not.
	// The cap counts 400 bytes for the header, and for each key 200 and
	// its length, then every value.
	long := formdata.DefaultMaxHeaderBytes - 400 - (200 + len("Content-Disposition") + len(cd) - len("Content-Disposition: ")) - (200 + len("X-Long"))
	resp, body := s.mpPost(t, "b", "--b\r\n"+cd+"\r\nX-Long: "+strings.Repeat("a", long)+"\r\n\r\ndata\r\n--b--\r\n")
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	require.NoError(t, os.Remove(filepath.Join(s.dir, "a.txt")))
	resp, body = s.mpPost(t, "b", "--b\r\n"+cd+"\r\nX-Long: "+strings.Repeat("a", long+1)+"\r\n\r\ndata\r\n--b--\r\n")
	requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
	s.waitServed(t)
	s.requireLogged(t, resp, "part header too large")
	uploadtest.RequireEmptyDir(t, s.dir)
}

// TestMultipartEmptyFilename: a part whose filename is empty, plain or in
// RFC 2231 form, is a form field, not a file.
func TestMultipartEmptyFilename(t *testing.T) {
	s := newServer(t, options{})
	empty := "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\nnot a file\r\n"
	emptyStar := "--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''\r\n\r\nnot a file either\r\n"
	for _, b := range []string{empty + "--b--\r\n", emptyStar + "--b--\r\n", empty + emptyStar + "--b--\r\n"} {
		resp, body := s.mpPost(t, "b", b)
		requireError(t, resp, body, http.StatusBadRequest, "no_files")
		s.waitServed(t)
		uploadtest.RequireEmptyDir(t, s.dir)
	}

	resp, body := s.mpPost(t, "b", empty+mpFilePart("b", "real.txt", "real")+emptyStar+"--b--\r\n")
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	var got wire.UploadResponse
	require.NoError(t, json.Unmarshal(body, &got))
	require.Len(t, got.Files, 1)
	assert.Equal(t, "real.txt", got.Files[0].Name)
	entries, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	data, err := os.ReadFile(filepath.Join(s.dir, "real.txt"))
	require.NoError(t, err)
	assert.Equal(t, "real", string(data))
	uploadtest.RequireEmptyDir(t, s.spoolDir)
}

// TestMultipartPartLimitWithFiles: the part limit holds when every part is
// a file held in the spool, and releases them all; exactly the limit is
// accepted.
func TestMultipartPartLimitWithFiles(t *testing.T) {
	s := newServer(t, options{})
	var b strings.Builder
	for i := range api.DefaultMaxParts + 1 {
		b.WriteString(mpFilePart("b", fmt.Sprintf("f%04d.txt", i), "x"))
	}
	b.WriteString("--b--\r\n")
	resp, body := s.mpPost(t, "b", b.String())
	requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
	s.waitServed(t)
	s.requireLogged(t, resp, "more than 1000 parts")
	s.requireNothingLeft(t)
	assert.Zero(t, s.spooler.Stats().MemoryInUse)

	b.Reset()
	for range api.DefaultMaxParts - 1 {
		b.WriteString("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n")
	}
	b.WriteString(mpFilePart("b", "last.txt", "x") + "--b--\r\n")
	resp, body = s.mpPost(t, "b", b.String())
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
}

// TestMultipartBoundaryBytesInBinaryData stores binary data in which the
// delimiter's bytes, CRLF "--" boundary, appear followed by anything but
// what would make them a delimiter (optional spaces and CRLF, or "--"),
// at offsets that straddle mime/multipart's 4 KiB read buffer, in memory
// and on disk. The stored bytes equal the sent ones and what
// mime/multipart.Reader parses.
func TestMultipartBoundaryBytesInBinaryData(t *testing.T) {
	s := newServer(t, options{})
	const boundary = "spillway-binary-boundary"
	delim := "\r\n--" + boundary
	followers := []string{"\x00", "\xff", "x", "-x", "-\x00", boundary, "=", "\x80\r\n"}
	for _, size := range []int64{64 << 10, spool.DefaultThreshold + 64<<10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := uploadtest.File{Seed: uint64(size), Size: size}.Bytes()
			for i, off := 0, 10; off+2100 < len(data); i, off = i+1, off+4093 {
				copy(data[off:], delim+followers[i%len(followers)])
				copy(data[off+2000:], "x\n--"+boundary+"\n") // a bare LF is not the body's line break
			}
			data = append([]byte(delim+"\x00"), data...) // right at the start
			data = append(data, delim+"-"...)            // and a lone dash at the end
			body := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"bin.dat\"\r\n\r\n" + string(data) + "\r\n--" + boundary + "--\r\n"

			ref, err := multipart.NewReader(strings.NewReader(body), boundary).NextPart()
			require.NoError(t, err)
			refData, err := io.ReadAll(ref)
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, refData), "mime/multipart itself does not parse the data back")

			resp, respBody := s.mpPost(t, boundary, body)
			require.Equal(t, http.StatusCreated, resp.StatusCode, string(respBody))
			s.waitServed(t)
			got, err := os.ReadFile(filepath.Join(s.dir, "bin.dat"))
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got), "stored bytes differ")
			require.NoError(t, os.Remove(filepath.Join(s.dir, "bin.dat")))
			uploadtest.RequireEmptyDir(t, s.spoolDir)
		})
	}
}

// TestMultipartEndsInsideADelimiter sends complete HTTP bodies whose
// multipart content stops after a delimiter, before the closing one: the
// request is malformed and must store nothing, not the parts before.
func TestMultipartEndsInsideADelimiter(t *testing.T) {
	s := newServer(t, options{})
	first := mpFilePart("b", "first.txt", "complete")
	for _, tc := range []struct{ name, body string }{
		{"after a delimiter line", first + "--b\r\n"},
		{"inside part headers", first + "--b\r\nContent-Disposition: form-data; name=\"g\"; filename=\"second.txt\""},
		{"after part headers' last line", first + "--b\r\nContent-Disposition: form-data; name=\"g\"; filename=\"second.txt\"\r\n"},
		{"after a delimiter without its line end", first + "--b"},
		{"inside the first part's headers", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nX-A: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.mpPost(t, "b", tc.body)
			s.waitServed(t)
			uploadtest.RequireEmptyDir(t, s.spoolDir)
			requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
			uploadtest.RequireEmptyDir(t, s.dir)
		})
	}
}

// TestMultipartBadQuotedPrintable sends parts whose quoted-printable
// content mime/quotedprintable refuses: malformed input, 400 and nothing
// kept.
func TestMultipartBadQuotedPrintable(t *testing.T) {
	s := newServer(t, options{})
	for _, data := range []string{"a\x00b", "x\r\n=", "=", "\x7f"} {
		t.Run(fmt.Sprintf("%q", data), func(t *testing.T) {
			body := "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"q.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + data + "\r\n--b--\r\n"
			resp, respBody := s.mpPost(t, "b", body)
			s.waitServed(t)
			s.requireNothingLeft(t)
			requireError(t, resp, respBody, http.StatusBadRequest, "bad_multipart")
		})
	}

	// Valid quoted-printable is decoded: the stored bytes are the decoded ones.
	body := "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"q.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=41=42c\r\n--b--\r\n"
	resp, respBody := s.mpPost(t, "b", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(respBody))
	s.waitServed(t)
	got, err := os.ReadFile(filepath.Join(s.dir, "q.txt"))
	require.NoError(t, err)
	assert.Equal(t, "ABc", string(got))
}
