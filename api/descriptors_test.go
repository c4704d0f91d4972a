package api_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

// openFDs counts the test process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// stallingMultipart starts a POST /files of n one-byte files whose body
// comes through a pipe. It returns once every file is sent and the handler
// has read on past the last one (into a field longer than every buffer on
// the way), and a function that sends the rest and returns the answer.
func (s *server) stallingMultipart(t *testing.T, n int) (finish func() (*http.Response, []byte)) {
	t.Helper()
	pr, pw := io.Pipe()
	req := s.request(t, http.MethodPost, "/files", pr, -1)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := s.client.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{resp, body, err}
	}()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	for i := range n {
		_, err := io.WriteString(pw, mpFilePart("b", fmt.Sprintf("f%03d.bin", i), "x"))
		require.NoError(t, err)
	}
	_, err := io.WriteString(pw, "--b\r\nContent-Disposition: form-data; name=\"pad\"\r\n\r\n")
	require.NoError(t, err)
	// A write returns once the transport has taken it; what the socket
	// buffers cannot hold, only the handler can have read, and it reads
	// this far only once every file is spooled and it skips the field.
	// (Linux lets a loopback socket's buffers grow to tens of MiB.)
	pad := strings.Repeat("p", 1<<20)
	for range 48 {
		_, err := io.WriteString(pw, pad)
		require.NoError(t, err)
	}
	return func() (*http.Response, []byte) {
		_, err := io.WriteString(pw, "\r\n--b--\r\n")
		require.NoError(t, err)
		require.NoError(t, pw.Close())
		a := <-answered
		require.NoError(t, a.err)
		return a.resp, a.body
	}
}

// A multipart request holds a bounded number of descriptors while its
// files arrive, however many of them go to disk, and still stores them
// all.
func TestMultipartDescriptorsAreBounded(t *testing.T) {
	s := newServer(t, options{spool: func(c *spool.Config) { c.MemoryBudget = 0 }})
	const files = 200
	before := openFDs(t)
	finish := s.stallingMultipart(t, files)
	held := openFDs(t) - before
	t.Logf("%d files on disk, %d descriptors held while the request stalls", files, held)
	assert.LessOrEqual(t, held, 8, "descriptors held by a multipart request of %d files on disk", files)

	resp, body := finish()
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	var names []string
	for i := range files {
		names = append(names, fmt.Sprintf("f%03d.bin", i))
	}
	uploadtest.RequireDirHolds(t, s.dir, names...)
	uploadtest.RequireEmptyDir(t, s.spoolDir)
}

// A request that runs out of descriptors is 503 busy with Retry-After,
// not a 500, and stores nothing.
func TestOutOfDescriptorsIsBusy(t *testing.T) {
	s := newServer(t, options{spool: func(c *spool.Config) { c.MemoryBudget = 0 }})
	const files = 100
	finish := s.stallingMultipart(t, files)

	// Fewer descriptors than the files need at once from now on.
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	low := lim
	low.Cur = uint64(openFDs(t) + files/2)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	restore := func() { require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)) }
	defer restore()

	resp, body := finish()
	restore()
	requireError(t, resp, body, http.StatusServiceUnavailable, "busy")
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	s.waitServed(t)
	s.requireLogged(t, resp, "too many open files")
	s.requireNothingLeft(t)
}
