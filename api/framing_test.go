package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

// framingExchange writes head and body on a fresh connection, from a
// goroutine so that a server which stops reading cannot block the test,
// optionally half-closes, and reads one response.
func framingExchange(t *testing.T, s *server, head, body string, halfClose bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(conn, head+body)
		if err == nil && halfClose {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		wrote <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	respBody, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	conn.Close() // unblocks a writer the server stopped reading
	<-wrote
	return resp, respBody
}

// framingCase is one request with broken or unusual framing. code "" means
// Go's server answers it itself, in plain text, before the handler runs.
type framingCase struct {
	name, head, body string
	halfClose        bool
	status           int
	code             string
	stored           map[string]string // files the request may leave
}

const chunkedPut = "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"

func TestFraming(t *testing.T) {
	big := newServer(t, options{})                                                   // unlimited size: huge lengths meet the free-space check
	s := newServer(t, options{spool: func(c *spool.Config) { c.MaxSize = 1 << 30 }}) // 1 GiB limit
	mp := "POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\n"
	part := "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"m.bin\"\r\n\r\nxxxxxxxx\r\n"
	cases := []struct {
		srv *server
		framingCase
	}{
		// Both framings: RFC 9112 lets a server process the request by
		// Transfer-Encoding alone, which Go does, dropping Content-Length.
		{s, framingCase{name: "Content-Length and chunked", head: "PUT /files/both.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
			body: "5\r\nhello\r\n0\r\n\r\n", status: http.StatusCreated, code: "-", stored: map[string]string{"both.bin": "hello"}}},
		{s, framingCase{name: "chunked and a shorter Content-Length", head: "PUT /files/both.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
			body: "5\r\nhello\r\n0\r\n\r\n", status: http.StatusCreated, code: "-", stored: map[string]string{"both.bin": "hello"}}},
		{s, framingCase{name: "Content-Length and chunked, chunked broken", head: "PUT /files/both.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
			body: "hello\r\n", status: http.StatusBadRequest, code: "bad_request"}},

		// Content-Length values Go's server refuses itself.
		{s, framingCase{name: "negative Content-Length", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", body: "x", status: http.StatusBadRequest}},
		{s, framingCase{name: "Content-Length over int64", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", body: "x", status: http.StatusBadRequest}},
		{s, framingCase{name: "signed Content-Length", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\n", body: "hello", status: http.StatusBadRequest}},
		{s, framingCase{name: "two different Content-Lengths", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", body: "hello!", status: http.StatusBadRequest}},
		{s, framingCase{name: "empty Content-Length", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", body: "", status: http.StatusBadRequest}},

		// Huge lengths are refused by the handler before the body.
		{s, framingCase{name: "huge Content-Length over the size limit", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1152921504606846976\r\n\r\n", body: "x",
			status: http.StatusRequestEntityTooLarge, code: "too_large"}},
		{big, framingCase{name: "huge Content-Length over free space", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1152921504606846976\r\n\r\n", body: "x",
			status: http.StatusInsufficientStorage, code: "insufficient_storage"}},
		{s, framingCase{name: "huge multipart Content-Length over free space", head: mp + "Content-Length: 1152921504606846976\r\n\r\n", body: part,
			status: http.StatusInsufficientStorage, code: "insufficient_storage"}},

		// Bad chunks.
		{s, framingCase{name: "chunk size not hex", head: chunkedPut, body: "zz\r\nhello\r\n0\r\n\r\n", status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "negative chunk size", head: chunkedPut, body: "-5\r\nhello\r\n0\r\n\r\n", status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "chunk size over 64 bits", head: chunkedPut, body: "fffffffffffffffffff\r\nhello\r\n0\r\n\r\n", status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "chunk longer than its size", head: chunkedPut, body: "3\r\nhello\r\n0\r\n\r\n", status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "bad chunk after a good one", head: chunkedPut, body: "5\r\nhello\r\nxyz\r\n0\r\n\r\n", status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "chunk extension too long", head: chunkedPut, body: "1;" + strings.Repeat("e", 20000) + "\r\nx\r\n0\r\n\r\n", status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "trailer too long", head: chunkedPut, body: "1\r\nx\r\n0\r\nX-T: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "bad chunk past the threshold", head: chunkedPut, body: fmt.Sprintf("%x\r\n%s\r\nzz\r\n", spool.DefaultThreshold+10, strings.Repeat("d", spool.DefaultThreshold+10)),
			status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "chunked without its last chunk", head: chunkedPut, body: "5\r\nhello\r\n", halfClose: true, status: http.StatusBadRequest, code: "incomplete_body"}},
		{s, framingCase{name: "multipart with a bad chunk size", head: mp + "Transfer-Encoding: chunked\r\n\r\n", body: "zz\r\n" + part, status: http.StatusBadRequest, code: "bad_request"}},
		{s, framingCase{name: "multipart with a bad chunk inside a part", head: mp + "Transfer-Encoding: chunked\r\n\r\n", body: fmt.Sprintf("%x\r\n%s\r\nzz\r\n", len(part), part),
			status: http.StatusBadRequest, code: "bad_request"}},

		// Transfer codings Go's server does not implement.
		{s, framingCase{name: "gzip transfer coding", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", body: "x", status: http.StatusNotImplemented}},
		{s, framingCase{name: "gzip then chunked", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", body: "1\r\nx\r\n0\r\n\r\n", status: http.StatusNotImplemented}},
		{s, framingCase{name: "two Transfer-Encoding fields", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", body: "1\r\nx\r\n0\r\n\r\n", status: http.StatusNotImplemented}},
		// HTTP/1.0 has no chunked coding: Go ignores the field, and with no
		// Content-Length the body is empty. The client meant to send bytes.
		{s, framingCase{name: "chunked on HTTP/1.0", head: "PUT /files/old.bin HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", body: "5\r\nhello\r\n0\r\n\r\n",
			status: http.StatusCreated, code: "-", stored: map[string]string{"old.bin": ""}}},

		// The head itself.
		{s, framingCase{name: "header block over the limit", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("a", http.DefaultMaxHeaderBytes+8192) + "\r\nContent-Length: 1\r\n\r\n",
			body: "x", status: http.StatusRequestHeaderFieldsTooLarge}},
		{s, framingCase{name: "no Host", head: "PUT /files/c.bin HTTP/1.1\r\nContent-Length: 1\r\n\r\n", body: "x", status: http.StatusBadRequest}},
		{s, framingCase{name: "HTTP/2.0 request line", head: "PUT /files/c.bin HTTP/2.0\r\nHost: t\r\nContent-Length: 1\r\n\r\n", body: "x", status: http.StatusHTTPVersionNotSupported}},
		{s, framingCase{name: "space before the colon", head: "PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nContent-Length : 1\r\n\r\n", body: "x", status: http.StatusBadRequest}},
		{s, framingCase{name: "bare LF line ends", head: "PUT /files/lf.bin HTTP/1.1\nHost: t\nContent-Length: 1\n\n", body: "x", status: http.StatusCreated, code: "-", stored: map[string]string{"lf.bin": "x"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := c.srv
			resp, body := framingExchange(t, srv, c.head, c.body, c.halfClose)
			handled := c.code != ""
			if handled {
				assert.Equal(t, resp.StatusCode, srv.waitServed(t), "the handler's status")
			}
			// The server still serves, and (for Go's own answers) the
			// handler never ran: the next status it reports is this one.
			next, nextBody := srv.do(t, srv.request(t, http.MethodGet, "/healthz", nil, 0))
			require.Equal(t, http.StatusOK, next.StatusCode, string(nextBody))
			require.Equal(t, http.StatusOK, srv.waitServed(t), "the handler ran for a request Go's server refused")
			uploadtest.RequireEmptyDir(t, srv.spoolDir)
			requireOnlyStored(t, srv.dir, c.stored)

			t.Logf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), strings.TrimSpace(string(body)))
			switch {
			case c.code == "-":
				require.Equal(t, c.status, resp.StatusCode, string(body))
			case handled:
				requireError(t, resp, body, c.status, c.code)
			default:
				require.Equal(t, c.status, resp.StatusCode, string(body))
				assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), "Go's own answer is plain text")
			}
		})
	}
}

// requireOnlyStored checks that dir holds exactly the files of want, with
// their contents, and then removes them so the next case starts empty.
func requireOnlyStored(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	got := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		got[e.Name()] = string(b)
		require.NoError(t, os.Remove(filepath.Join(dir, e.Name())))
	}
	if want == nil {
		want = map[string]string{}
	}
	require.Equal(t, want, got, "stored files")
}
