package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// Faults against the real binary: SIGKILL mid-upload and a restart on the
// same directories, a full disk under the spool dir and under the upload
// directory, and slowloris clients.

// proc is one run of the localserver binary on directories the test chose,
// so that a second run can reuse the first one's.
type proc struct {
	*testservers.Local
	dir      string
	spoolDir string
}

// buildServer builds the localserver binary for a test.
func buildServer(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	return testservers.Build(t, testservers.LocalServer)
}

// startProc runs bin on a free loopback port with dir and spoolDir. The
// process is killed when the test ends, if it still runs.
func startProc(t *testing.T, bin, dir, spoolDir string, args ...string) *proc {
	t.Helper()
	return startProcArgv(t, []string{bin}, dir, spoolDir, args...)
}

// startProcArgv is startProc for a command line that runs the binary, such
// as a shell that sets a limit first and then execs it.
func startProcArgv(t *testing.T, argv []string, dir, spoolDir string, args ...string) *proc {
	t.Helper()
	args = append([]string{"--directory", dir, "--spool-dir", spoolDir}, args...)
	return &proc{Local: testservers.StartLocalServer(t, nil, argv, args...), dir: dir, spoolDir: spoolDir}
}

// startBinary builds localserver and starts it on directories of its own.
func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProc(t, buildServer(t), filepath.Join(t.TempDir(), "uploads"), t.TempDir(), args...)
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGKILL))
	p.waitExit(t, 10*time.Second)
	var ee *exec.ExitError
	require.ErrorAs(t, p.Err(), &ee)
	assert.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
}

// stop sends SIGTERM, waits for a clean exit and requires that the spool
// dir is empty.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.Term(t, time.Minute)
	uploadtest.RequireEmptyDir(t, p.spoolDir)
}

func (p *proc) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(d):
		require.FailNow(t, "server did not exit", "after %s; log:\n%s", d, p.Log.String())
	}
}

// openUpload starts a raw upload of f with Expect: 100-continue, waits for
// "100 Continue" (the handler has passed every check and is reading the
// body; above the threshold its spool file exists), and sends first bytes.
// It returns the connection, a reader over the answers, and the rest of f.
func openUpload(t *testing.T, addr string, f uploadtest.File, first int64) (net.Conn, *bufio.Reader, io.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", f.Name, f.Size)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = br.ReadString('\n')
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Time{}))
	r := f.Reader()
	_, err = io.CopyN(conn, r, first)
	require.NoError(t, err)
	return conn, br, r
}

// putFile uploads f with a known length through a fresh client.
func putFile(t *testing.T, base string, f uploadtest.File) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, base+"/files/"+f.Name, f.Reader())
	require.NoError(t, err)
	req.ContentLength = f.Size
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

// requirePut uploads f and requires a 201 and the stored bytes.
func requirePut(t *testing.T, p *proc, f uploadtest.File) {
	t.Helper()
	status, body := putFile(t, p.URL, f)
	require.Equal(t, http.StatusCreated, status, string(body))
	uploadtest.RequireFile(t, f, filepath.Join(p.dir, f.Name))
}

// requireAPIError checks an error answer's status and code.
func requireAPIError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	require.Equal(t, wantStatus, status, string(body))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, wantCode, e.Error.Code, string(body))
}

// readAnswer reads one response from br, with a deadline on conn.
func readAnswer(t *testing.T, conn net.Conn, br *bufio.Reader) (int, []byte) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "spillway-*.spool"))
	require.NoError(t, err)
	return m
}

// TestCrashKill9DuringUploadsThenRestart kills the server with SIGKILL while
// four large uploads stream to disk. Nothing can clean up in the dying
// process: the next server on the same directories must sweep what it left,
// and an upload answered 201 before the crash must still be there.
func TestCrashKill9DuringUploadsThenRestart(t *testing.T) {
	bin := buildServer(t)
	dir := filepath.Join(t.TempDir(), "uploads")
	spoolDir := t.TempDir()
	p := startProc(t, bin, dir, spoolDir)

	before := uploadtest.File{Name: "before-crash.bin", Seed: 40, Size: 3 << 20}
	requirePut(t, p, before)

	const uploads = 4
	const size = 64 << 20
	conns := make([]net.Conn, uploads)
	rests := make([]io.Reader, uploads)
	for i := range uploads {
		f := uploadtest.File{Name: fmt.Sprintf("big-%d.bin", i), Seed: uint64(41 + i), Size: size}
		conns[i], _, rests[i] = openUpload(t, p.Addr, f, 1<<20)
	}
	// All four are in flight at once; each sends 3 MiB more concurrently.
	var wg sync.WaitGroup
	errs := make([]error, uploads)
	for i := range uploads {
		wg.Go(func() { _, errs[i] = io.CopyN(conns[i], rests[i], 3<<20) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Len(t, spoolFiles(t, spoolDir), uploads, "one spool file per upload in flight")
	// Wait until every spool file holds at least 1 MiB, so the crash hits
	// uploads that are really writing to disk. Polling is the only way to
	// watch another process's writes; the loop is bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		small := 0
		for _, f := range spoolFiles(t, spoolDir) {
			if fi, err := os.Stat(f); err != nil || fi.Size() < 1<<20 {
				small++
			}
		}
		if small == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "spool files did not grow")
		time.Sleep(10 * time.Millisecond)
	}

	p.kill9(t)
	for _, c := range conns {
		c.Close()
	}
	require.Len(t, spoolFiles(t, spoolDir), uploads, "a killed process cannot clean up")
	// A crash between staging and linking would leave a staging file; that
	// moment cannot be hit from outside, so one is planted, with the name
	// and mode dirstore gives them.
	staging := filepath.Join(dir, ".spillway-CRASHEDSTAGE.tmp")
	require.NoError(t, os.WriteFile(staging, []byte("half a file"), 0o644))

	start := time.Now()
	p2 := startProc(t, bin, dir, spoolDir)
	t.Logf("restart after SIGKILL: up in %s, orphans_swept=%d", time.Since(start).Round(time.Millisecond), p2.Swept)
	assert.Equal(t, uploads+1, p2.Swept, "four spool files and one staging file")
	assert.GreaterOrEqual(t, p2.Swept, 1)
	uploadtest.RequireEmptyDir(t, spoolDir)
	uploadtest.RequireDirHolds(t, dir, before.Name)
	uploadtest.RequireFile(t, before, filepath.Join(dir, before.Name))

	// The new server serves, and the names the crashed uploads had are free.
	again := uploadtest.File{Name: "big-0.bin", Seed: 50, Size: 3 << 20}
	requirePut(t, p2, again)
	small := uploadtest.File{Name: "after-crash.txt", Seed: 51, Size: 100}
	requirePut(t, p2, small)
	p2.Term(t, 30*time.Second)
	uploadtest.RequireEmptyDir(t, spoolDir)
	uploadtest.RequireDirHolds(t, dir, before.Name, again.Name, small.Name)
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(dir, &st))
	return int64(st.Bavail) * int64(st.Bsize)
}

// sendChunked writes r to w with chunked framing, then the last-chunk. It
// returns the first write error, which a test that expects the server to
// refuse part-way ignores.
func sendChunked(w io.Writer, r io.Reader) error {
	buf := make([]byte, 256<<10)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := fmt.Fprintf(w, "%x\r\n", n); err != nil {
				return err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if _, err := io.WriteString(w, "\r\n"); err != nil {
				return err
			}
		}
		if rerr != nil {
			_, err := io.WriteString(w, "0\r\n\r\n")
			return err
		}
	}
}

// streamUpload sends head and then body (through frame) on a new
// connection, reading the answer while the body is still going out, as a
// server that refuses part-way answers before the client has finished.
func streamUpload(t *testing.T, addr, head string, body io.Reader, chunkedBody bool) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	sent := make(chan error, 1)
	go func() {
		if chunkedBody {
			sent <- sendChunked(conn, body)
			return
		}
		_, err := io.Copy(conn, body)
		sent <- err
	}()
	status, respBody := readAnswer(t, conn, bufio.NewReader(conn))
	conn.Close() // stops the writer if the server answered early
	<-sent
	return status, respBody
}

// expectRefused sends the head of an upload with Expect: 100-continue and
// requires the server to refuse it without asking for the body.
func expectRefused(t *testing.T, addr, head string, wantStatus int, wantCode string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	status, body := readAnswer(t, conn, bufio.NewReader(conn))
	requireAPIError(t, status, body, wantStatus, wantCode)
}

func rawHead(name string, length int64) string {
	return fmt.Sprintf("PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", name, length)
}

func chunkedHead(name string) string {
	return fmt.Sprintf("PUT /files/%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", name)
}

func multipartHeadFor(ct string, length int64) string {
	if length < 0 {
		return fmt.Sprintf("POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n", ct)
	}
	return fmt.Sprintf("POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", ct, length)
}

// raceTwo opens two known-length uploads that each pass the free-space
// check (both get "100 Continue" before either has written a byte), sends
// both bodies at once and returns their statuses.
func raceTwo(t *testing.T, p *proc, files [2]uploadtest.File) [2]int {
	t.Helper()
	var statuses [2]int
	var conns [2]net.Conn
	var brs [2]*bufio.Reader
	var rests [2]io.Reader
	for i, f := range files {
		conns[i], brs[i], rests[i] = openUpload(t, p.Addr, f, 0)
	}
	// Each sends all but its last byte, so that neither can finish, and
	// give its space back, before both bodies are stored as far as the
	// space allows: which of them is refused may vary, not that one is.
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Go(func() { io.CopyN(conns[i], rests[i], f.Size-1) }) // fails once refused
	}
	wg.Wait()
	for i := range files {
		wg.Go(func() { io.Copy(conns[i], rests[i]) })
	}
	for i := range files {
		var body []byte
		statuses[i], body = readAnswer(t, conns[i], brs[i])
		if statuses[i] != http.StatusCreated {
			requireAPIError(t, statuses[i], body, http.StatusInsufficientStorage, "insufficient_storage")
		}
		conns[i].Close()
	}
	wg.Wait()
	return statuses
}

// TestDiskFull puts the spool dir, then the upload directory, on an 8 MiB
// tmpfs. A known length that cannot fit is refused with 507 before its body
// is sent; an unknown length that runs out of space part-way gets a clean
// 507; nothing is left behind, and the next upload succeeds.
func TestDiskFull(t *testing.T) {
	bin := buildServer(t)
	const fsSize = 8 << 20
	big := uploadtest.File{Seed: 60, Size: 16 << 20}

	t.Run("spool dir", func(t *testing.T) {
		small := testservers.MountTmpfs(t, fsSize)
		p := startProc(t, bin, filepath.Join(t.TempDir(), "uploads"), small)
		free := freeBytes(t, small)

		expectRefused(t, p.Addr, rawHead("known.bin", big.Size), http.StatusInsufficientStorage, "insufficient_storage")
		ct, _, n := uploadtest.Multipart([]uploadtest.File{{Name: "known-mp.bin", Size: big.Size}})
		expectRefused(t, p.Addr, multipartHeadFor(ct, n), http.StatusInsufficientStorage, "insufficient_storage")

		start := time.Now()
		status, body := streamUpload(t, p.Addr, chunkedHead("chunked.bin"), big.Reader(), true)
		requireAPIError(t, status, body, http.StatusInsufficientStorage, "insufficient_storage")
		t.Logf("chunked 16 MiB into an 8 MiB spool: %d after %s", status, time.Since(start).Round(time.Millisecond))

		ct, mp, _ := uploadtest.Multipart([]uploadtest.File{{Name: "chunked-mp.bin", Seed: 61, Size: big.Size}})
		status, body = streamUpload(t, p.Addr, multipartHeadFor(ct, -1), mp, true)
		requireAPIError(t, status, body, http.StatusInsufficientStorage, "insufficient_storage")

		// Two 6 MiB uploads both pass the check on 8 MiB free; they cannot
		// both be spooled.
		statuses := raceTwo(t, p, [2]uploadtest.File{{Name: "race-0.bin", Seed: 62, Size: 6 << 20}, {Name: "race-1.bin", Seed: 63, Size: 6 << 20}})
		t.Logf("two 6 MiB known-length uploads racing for an 8 MiB spool: %v", statuses)
		assert.Contains(t, statuses, http.StatusInsufficientStorage)

		uploadtest.RequireEmptyDir(t, small)
		assert.Equal(t, free, freeBytes(t, small), "the spool's space is all given back")
		var stored []string
		for i, st := range statuses {
			if st == http.StatusCreated {
				stored = append(stored, fmt.Sprintf("race-%d.bin", i))
			}
		}
		uploadtest.RequireDirHolds(t, p.dir, stored...)

		// On disk (over the threshold), so it needs the space given back.
		next := uploadtest.File{Name: "next.bin", Seed: 64, Size: 5 << 20}
		requirePut(t, p, next)
		p.Term(t, 30*time.Second)
		uploadtest.RequireEmptyDir(t, small)
		uploadtest.RequireDirHolds(t, p.dir, append(stored, next.Name)...)
		assert.Contains(t, p.Log.String(), "status=507")
	})

	t.Run("upload dir", func(t *testing.T) {
		small := testservers.MountTmpfs(t, fsSize)
		p := startProc(t, bin, small, t.TempDir())
		free := freeBytes(t, small)

		expectRefused(t, p.Addr, rawHead("known.bin", big.Size), http.StatusInsufficientStorage, "insufficient_storage")

		start := time.Now()
		status, body := streamUpload(t, p.Addr, chunkedHead("chunked.bin"), big.Reader(), true)
		requireAPIError(t, status, body, http.StatusInsufficientStorage, "insufficient_storage")
		t.Logf("chunked 16 MiB into an 8 MiB upload dir: %d after %s", status, time.Since(start).Round(time.Millisecond))

		statuses := raceTwo(t, p, [2]uploadtest.File{{Name: "race-0.bin", Seed: 62, Size: 6 << 20}, {Name: "race-1.bin", Seed: 63, Size: 6 << 20}})
		t.Logf("two 6 MiB known-length uploads racing for an 8 MiB upload dir: %v", statuses)
		assert.Contains(t, statuses, http.StatusInsufficientStorage)
		uploadtest.RequireEmptyDir(t, p.spoolDir)
		var stored []string
		for i, st := range statuses {
			if st == http.StatusCreated {
				stored = append(stored, fmt.Sprintf("race-%d.bin", i))
			}
		}
		uploadtest.RequireDirHolds(t, small, stored...)
		if len(stored) == 0 {
			assert.Equal(t, free, freeBytes(t, small), "no space is kept by a failed upload")
		}

		next := uploadtest.File{Name: "next.txt", Seed: 65, Size: 1000}
		requirePut(t, p, next)
		p.Term(t, 30*time.Second)
		uploadtest.RequireEmptyDir(t, p.spoolDir)
		uploadtest.RequireDirHolds(t, small, append(stored, next.Name)...)
	})
}

// TestDiskFullMultipartKnownLengthInUploadDir: a multipart request whose
// Content-Length cannot fit in the upload directory (the spool dir, on
// another filesystem, has room). The README promises that free space for a
// known length is checked before the body is read.
func TestDiskFullMultipartKnownLengthInUploadDir(t *testing.T) {
	bin := buildServer(t)
	small := testservers.MountTmpfs(t, 8<<20)
	p := startProc(t, bin, small, t.TempDir())
	ct, _, n := uploadtest.Multipart([]uploadtest.File{{Name: "known-mp.bin", Size: 16 << 20}})
	expectRefused(t, p.Addr, multipartHeadFor(ct, n), http.StatusInsufficientStorage, "insufficient_storage")
	p.Term(t, 30*time.Second)
	uploadtest.RequireDirHolds(t, small)
}

// TestDiskFullMultipartIntoUploadDir sends multipart bodies that cannot fit
// in the upload directory in full, with and without a length: whenever the
// server notices, the answer is 507 and nothing is left.
func TestDiskFullMultipartIntoUploadDir(t *testing.T) {
	bin := buildServer(t)
	small := testservers.MountTmpfs(t, 8<<20)
	p := startProc(t, bin, small, t.TempDir())
	free := freeBytes(t, small)
	for _, known := range []bool{true, false} {
		files := []uploadtest.File{
			{Name: "first.bin", Seed: 66, Size: 3 << 20},
			{Name: "second.bin", Seed: 67, Size: 16 << 20},
		}
		ct, body, n := uploadtest.Multipart(files)
		var status int
		var resp []byte
		if known {
			// Expect is left out: the body goes whether or not the server
			// would have asked for it.
			head := fmt.Sprintf("POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, n)
			status, resp = streamUpload(t, p.Addr, head, body, false)
		} else {
			status, resp = streamUpload(t, p.Addr, multipartHeadFor(ct, -1), body, true)
		}
		requireAPIError(t, status, resp, http.StatusInsufficientStorage, "insufficient_storage")
		// The first file fitted and was staged: all or nothing takes it back.
		uploadtest.RequireDirHolds(t, small)
		uploadtest.RequireEmptyDir(t, p.spoolDir)
		assert.Equal(t, free, freeBytes(t, small))
	}
	requirePut(t, p, uploadtest.File{Name: "next.txt", Seed: 68, Size: 1000})
	p.Term(t, 30*time.Second)
	uploadtest.RequireDirHolds(t, small, "next.txt")
}

// TestSlowloris holds 50 connections that sent part of a request header
// and stalled, then 100 more that send their headers a byte at a time,
// while normal uploads must still succeed promptly. The server's
// ReadHeaderTimeout (10s) would end them; the test does not wait for it.
func TestSlowloris(t *testing.T) {
	bin := buildServer(t)
	p := startProc(t, bin, filepath.Join(t.TempDir(), "uploads"), t.TempDir())
	stop := make(chan struct{})
	var attackers sync.WaitGroup
	t.Cleanup(func() {
		close(stop)
		attackers.Wait()
	})
	// Each header is far longer than a slow client can send during the
	// test, so none is ever complete.
	header := func(i int) []byte {
		return fmt.Appendf(nil, "PUT /files/slow-%03d.bin HTTP/1.1\r\nHost: t\r\nX-Pad: %s", i, strings.Repeat("a", 4096))
	}
	// attack opens n connections; each writes first bytes of a header, is
	// counted as started, then writes one more byte per tick (never, with
	// tick 0) until stop.
	attack := func(from, n, first int, tick time.Duration) {
		var started sync.WaitGroup
		for i := from; i < from+n; i++ {
			started.Add(1)
			attackers.Go(func() {
				once := sync.OnceFunc(started.Done)
				defer once()
				conn, err := net.Dial("tcp", p.Addr)
				if !assert.NoError(t, err) {
					return
				}
				defer conn.Close()
				h := header(i)
				if _, err := conn.Write(h[:first]); !assert.NoError(t, err) {
					return
				}
				once()
				if tick == 0 {
					<-stop
					return
				}
				ticker := time.NewTicker(tick)
				defer ticker.Stop()
				for _, b := range h[first:] { // bounded by the header's length
					select {
					case <-stop:
						return
					case <-ticker.C:
					}
					if _, err := conn.Write([]byte{b}); err != nil {
						return // the server gave up on it
					}
				}
			})
		}
		started.Wait()
	}
	upload := func(name string, size int64) {
		t.Helper()
		f := uploadtest.File{Name: name, Seed: 70, Size: size}
		start := time.Now()
		requirePut(t, p, f)
		took := time.Since(start)
		t.Logf("%s (%d bytes) stored in %s", name, size, took.Round(time.Millisecond))
		assert.Less(t, took, 5*time.Second, "a slowloris must not hold up a normal upload")
	}

	attack(0, 50, 20, 0)
	upload("during-stalled.bin", 3<<20)
	attack(50, 100, 1, 50*time.Millisecond)
	upload("during-trickle.bin", 3<<20)
	upload("during-trickle-small.txt", 100)

	logs := p.Log.String()
	assert.NotContains(t, logs, "/files/slow-", "no slow request reached the handler")
	close(stop)
	attackers.Wait()
	stop = make(chan struct{}) // for the cleanup
	p.Term(t, 30*time.Second)
	uploadtest.RequireEmptyDir(t, p.spoolDir)
	uploadtest.RequireDirHolds(t, p.dir, "during-stalled.bin", "during-trickle.bin", "during-trickle-small.txt")
}

// TestSlowBodiesHoldUploadSlots is the slowloris that completes its
// headers: each slow client takes one of --max-concurrent-uploads slots and
// trickles its body a byte at a time, never idle for --read-timeout. While
// they all do, a normal upload is refused with 503 busy (as documented);
// once they stop, the read timeout frees the slots with 408 and the server
// takes uploads again.
func TestSlowBodiesHoldUploadSlots(t *testing.T) {
	bin := buildServer(t)
	const slots = 4
	const readTimeout = time.Second
	p := startProc(t, bin, filepath.Join(t.TempDir(), "uploads"), t.TempDir(),
		"--max-concurrent-uploads", strconv.Itoa(slots), "--read-timeout", readTimeout.String())
	conns := make([]net.Conn, slots)
	brs := make([]*bufio.Reader, slots)
	for i := range slots {
		conns[i], brs[i], _ = openUpload(t, p.Addr, uploadtest.File{Name: fmt.Sprintf("slow-%d.bin", i), Size: 1 << 20}, 1)
	}
	// Trickle for twice the read timeout: a byte every quarter of it.
	ticker := time.NewTicker(readTimeout / 4)
	defer ticker.Stop()
	for range 8 {
		<-ticker.C
		for _, c := range conns {
			_, err := c.Write([]byte{'x'})
			require.NoError(t, err, "the server cut a client that was never idle for the read timeout")
		}
	}
	status, body := putFile(t, p.URL, uploadtest.File{Name: "refused.txt", Size: 10})
	requireAPIError(t, status, body, http.StatusServiceUnavailable, "busy")
	t.Logf("%d slow bodies (1 byte / %s) hold every slot past the %s read timeout: a normal upload gets %d busy",
		slots, readTimeout/4, readTimeout, status)

	ticker.Stop()
	start := time.Now()
	for i, c := range conns {
		status, body := readAnswer(t, c, brs[i])
		requireAPIError(t, status, body, http.StatusRequestTimeout, "timeout")
	}
	t.Logf("the slow clients got 408 %s after they stopped", time.Since(start).Round(10*time.Millisecond))
	uploadtest.RequireEmptyDir(t, p.spoolDir)
	requirePut(t, p, uploadtest.File{Name: "after.txt", Seed: 71, Size: 100})
	p.Term(t, 30*time.Second)
	uploadtest.RequireDirHolds(t, p.dir, "after.txt")
}
