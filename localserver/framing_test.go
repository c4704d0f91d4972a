package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestContentLengthWithChunkedClosesTheConnection sends, over raw TCP to
// the real binary, a request with both Content-Length and
// Transfer-Encoding: chunked whose length covers a second request hidden
// after the "0" chunk: what a front end that goes by Content-Length takes
// for one request. RFC 9112 §6.1 has the server close the connection after
// answering such a request, so the hidden one must never run.
func TestContentLengthWithChunkedClosesTheConnection(t *testing.T) {
	srv := startBinary(t)

	hidden := "PUT /files/smuggled.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
	body := "0\r\n\r\n" + hidden
	for _, c := range []struct{ name, head string }{
		{"length first", "PUT /files/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"chunked first", "PUT /files/b.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Addr)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
			_, err = io.WriteString(conn, c.head+body)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusCreated, resp.StatusCode)
			assert.True(t, resp.Close, "the response must say Connection: close")
			rest, err := io.ReadAll(br)
			assert.NoError(t, err, "the server must close the connection, not wait")
			assert.Empty(t, string(rest), "a second response: the hidden request ran")
		})
	}
	_, err := os.Stat(filepath.Join(srv.dir, "smuggled.txt"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the hidden request stored a file")

	// Requests framed by Content-Length alone keep their connection.
	conn, err := net.Dial("tcp", srv.Addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	for _, name := range []string{"c.txt", "d.txt"} {
		_, err = io.WriteString(conn, "PUT /files/"+name+" HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusCreated, resp.StatusCode)
		assert.False(t, resp.Close)
	}
	srv.stop(t)
}
