package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

// A client that goes away part-way through its body must leave nothing
// behind: no spool file, no memory reservation, no destination or staging
// file, and the server must go on serving. Each fault below is followed by
// a small upload that must succeed.

// faultCase is one request that the client abandons: head is written, then
// body, then the connection is closed (reset, when rst is set).
type faultCase struct {
	name string
	head string
	body []byte
	rst  bool
	// code is the error code the handler must log. The client never reads
	// the answer: it is gone.
	status int
	code   string
}

// cutAt returns the first pct percent of b (0 ≤ pct < 100).
func cutAt(b []byte, pct int) []byte { return b[:len(b)*pct/100] }

// chunked frames data as chunks of size bytes and stops after cut bytes of
// data, in the middle of a chunk when cut falls inside one: the chunk's size
// line announces the whole chunk. With cut == len(data), every chunk is
// sent but not the last-chunk that ends the body.
func chunked(data []byte, size, cut int) []byte {
	var b bytes.Buffer
	for off := 0; off < cut; off += size {
		n := min(size, len(data)-off)
		fmt.Fprintf(&b, "%x\r\n", n)
		if off+n > cut {
			b.Write(data[off:cut])
			return b.Bytes()
		}
		b.Write(data[off : off+n])
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// multipartBody builds a multipart body by hand so that a test can cut it at
// an exact place: it returns the body and the offsets where each part's data
// starts and ends.
func multipartBody(files ...uploadtest.File) (body []byte, starts, ends []int) {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=%q\r\n"+
			"Content-Type: application/octet-stream\r\n\r\n", uploadtest.Boundary, f.Name)
		starts = append(starts, b.Len())
		b.Write(f.Bytes())
		ends = append(ends, b.Len())
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", uploadtest.Boundary)
	return b.Bytes(), starts, ends
}

func multipartHead(length int) string {
	return fmt.Sprintf("POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n",
		uploadtest.Boundary, length)
}

func multipartChunkedHead() string {
	return fmt.Sprintf("POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=%s\r\nTransfer-Encoding: chunked\r\n\r\n",
		uploadtest.Boundary)
}

func TestFaultClientDisconnects(t *testing.T) {
	s := newServer(t, options{})
	// Over the threshold, so that every cut past 0% is spooling to disk.
	const size = 6 << 20
	f := uploadtest.File{Name: "cut.bin", Seed: 21, Size: size}
	data := f.Bytes()
	mp, _, _ := multipartBody(f)
	const chunk = 256 << 10

	rawHead := fmt.Sprintf("PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", f.Name, size)
	chunkedHead := fmt.Sprintf("PUT /files/%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", f.Name)
	incomplete := func(name, head string, body []byte) faultCase {
		return faultCase{name: name, head: head, body: body, status: http.StatusBadRequest, code: "incomplete_body"}
	}
	var cases []faultCase
	for _, pct := range []int{0, 50, 99} {
		cases = append(cases,
			incomplete(fmt.Sprintf("raw length %d%%", pct), rawHead, cutAt(data, pct)),
			incomplete(fmt.Sprintf("raw chunked %d%%", pct), chunkedHead, chunked(data, chunk, len(data)*pct/100)),
			incomplete(fmt.Sprintf("multipart %d%%", pct), multipartHead(len(mp)), cutAt(mp, pct)),
		)
	}
	cases = append(cases,
		// Chunked framing cut at its other edges.
		incomplete("raw chunked at a chunk boundary", chunkedHead, chunked(data, chunk, 8*chunk)),
		incomplete("raw chunked inside a size line", chunkedHead, append(chunked(data, chunk, 8*chunk), "400"...)),
		incomplete("raw chunked without its last-chunk", chunkedHead, chunked(data, chunk, len(data))),
		// The whole body but the last byte.
		incomplete("raw length one byte short", rawHead, data[:len(data)-1]),
		incomplete("multipart one byte short", multipartHead(len(mp)), mp[:len(mp)-1]),
	)
	var stored []string
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			abandon(t, s, tc)
			stored = append(stored, requireNextUploadWorks(t, s, i))
			uploadtest.RequireDirHolds(t, s.dir, stored...)
		})
	}
}

// TestFaultClientResets is TestFaultClientDisconnects with a reset
// (SO_LINGER 0, as when a client process dies or a browser aborts) instead of
// an orderly close: the server's read fails with ECONNRESET rather than EOF.
// It is still a client that went away, not a server fault.
func TestFaultClientResets(t *testing.T) {
	s := newServer(t, options{})
	const size = 6 << 20
	f := uploadtest.File{Name: "cut.bin", Seed: 22, Size: size}
	data := f.Bytes()
	mp, _, _ := multipartBody(f)
	cases := []faultCase{
		{name: "raw length", head: fmt.Sprintf("PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", f.Name, size), body: cutAt(data, 50)},
		{name: "raw chunked", head: fmt.Sprintf("PUT /files/%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", f.Name), body: chunked(data, 256<<10, size/2)},
		{name: "multipart", head: multipartHead(len(mp)), body: cutAt(mp, 50)},
	}
	var stored []string
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.rst, tc.status, tc.code = true, http.StatusBadRequest, "incomplete_body"
			abandon(t, s, tc)
			stored = append(stored, requireNextUploadWorks(t, s, i))
			uploadtest.RequireDirHolds(t, s.dir, stored...)
		})
	}
}

// TestFaultDisconnectBetweenParts cuts a two-file multipart request exactly
// between its parts: the first file is complete (and spooled), the second
// has not begun. The first file must be released, not published.
func TestFaultDisconnectBetweenParts(t *testing.T) {
	s := newServer(t, options{})
	var stored []string
	i := 0
	for _, firstSize := range []int64{1000, 3 << 20} { // memory, then disk
		one := uploadtest.File{Name: "one.bin", Seed: 31, Size: firstSize}
		two := uploadtest.File{Name: "two.bin", Seed: 32, Size: 3 << 20}
		body, starts, ends := multipartBody(one, two)
		delim := "\r\n--" + uploadtest.Boundary
		require.Equal(t, delim+"\r\n", string(body[ends[0]:ends[0]+len(delim)+2]))
		for _, cut := range []struct {
			name string
			at   int
		}{
			{"after the first part's data", ends[0]},
			{"inside the delimiter line", ends[0] + len(delim) - 3},
			{"after the delimiter without its CRLF", ends[0] + len(delim)},
			{"after the delimiter line", ends[0] + len(delim) + 2},
			{"inside the second part's headers", ends[0] + len(delim) + 2 + 10},
			{"after the second part's headers", starts[1]},
		} {
			for _, framing := range []string{"length", "chunked"} {
				name := fmt.Sprintf("first %d bytes/%s/%s", firstSize, framing, cut.name)
				t.Run(name, func(t *testing.T) {
					tc := faultCase{head: multipartHead(len(body)), body: body[:cut.at],
						status: http.StatusBadRequest, code: "incomplete_body"}
					if framing == "chunked" {
						tc.head, tc.body = multipartChunkedHead(), chunked(body, 64<<10, cut.at)
					}
					abandon(t, s, tc)
					stored = append(stored, requireNextUploadWorks(t, s, i))
					i++
					uploadtest.RequireDirHolds(t, s.dir, stored...)
				})
			}
		}
	}
}

// abandon sends tc's head and partial body, closes the connection, waits
// for the handler to finish and checks what it answered and left.
func abandon(t *testing.T, s *server, tc faultCase) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, tc.head)
	require.NoError(t, err)
	_, err = conn.Write(tc.body)
	require.NoError(t, err)
	if tc.rst {
		require.NoError(t, conn.(*net.TCPConn).SetLinger(0))
	}
	require.NoError(t, conn.Close())

	status := s.waitServed(t)
	line := lastLogLine(t, s)
	assert.Equal(t, tc.status, status, "log: %v", line)
	assert.Equal(t, tc.code, line["code"], "log: %v", line)
	uploadtest.RequireEmptyDir(t, s.spoolDir)
	stats := s.spooler.Stats()
	assert.Zero(t, stats.OpenFiles, "spool files still open")
	assert.Zero(t, stats.MemoryInUse, "memory budget still held")
	assert.Zero(t, stats.CleanupFailures)
}

// requireNextUploadWorks uploads a small file (on disk: over the threshold)
// and returns its name.
func requireNextUploadWorks(t *testing.T, s *server, i int) string {
	t.Helper()
	ok := uploadtest.File{Name: fmt.Sprintf("ok-%02d.bin", i), Seed: uint64(1000 + i), Size: spool.DefaultThreshold + 1}
	resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{ok}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	require.Equal(t, http.StatusCreated, s.waitServed(t))
	uploadtest.RequireFile(t, ok, filepath.Join(s.dir, ok.Name))
	uploadtest.RequireEmptyDir(t, s.spoolDir)
	return ok.Name
}

// lastLogLine returns the handler's last JSON log line.
func lastLogLine(t *testing.T, s *server) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s.logs.String()), "\n")
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &line))
	return line
}
