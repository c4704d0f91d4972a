package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// TestDescriptorExhaustion attacks a server limited to a small number of
// open files with what once exhausted them: stalled PUTs that hold the whole
// memory budget, stalled multipart requests of many one-byte files (which
// the full budget sends to disk), and a flood of keep-alive connections.
// While the attack holds, the server must stay healthy: /healthz answers
// promptly, a new upload is stored or refused with 503 and Retry-After, the
// uploads that were already running complete, and accept never runs out of
// descriptors.
func TestDescriptorExhaustion(t *testing.T) {
	bin := buildServer(t)
	dir := filepath.Join(t.TempDir(), "uploads")
	spoolDir := t.TempDir()
	const (
		nofile       = 1024
		stalledPUTs  = 32 // × the 2 MiB threshold: the default 64 MiB budget
		multiparts   = 20
		filesEach    = 50
		keepAlives   = 1000
		healthzLimit = 3 * time.Second
	)
	shell := []string{"/bin/sh", "-c", `ulimit -n ` + strconv.Itoa(nofile) + ` && exec "$0" "$@"`, bin}
	p := startProcArgv(t, shell, dir, spoolDir)
	assert.Regexp(t, `open_files_soft=`+strconv.Itoa(nofile)+` open_files_hard=`+strconv.Itoa(nofile), p.Log.String())

	// Stalled PUTs, each past its "100 Continue": the handler has reserved
	// the threshold of the memory budget for it and waits for its body.
	// Together they hold the whole budget.
	var attack []net.Conn
	for i := range stalledPUTs {
		conn := dialT(t, p.Addr)
		attack = append(attack, conn)
		br := bufio.NewReader(conn)
		_, err := fmt.Fprintf(conn, "PUT /files/stalled-%02d.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", i, 2<<20)
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "HTTP/1.1 100 Continue\r\n", line, "stalled PUT %d", i)
	}

	// Uploads already running when the descriptors come under attack: a
	// raw PUT and a multipart request with a large file and small ones,
	// each with all but its last bytes sent. The full budget sends them
	// all to disk.
	raw := uploadtest.File{Name: "running.bin", Seed: 1, Size: 3 << 20}
	rawConn, rawBR, rawRest := openUpload(t, p.Addr, raw, 1<<20)
	mpFiles := []uploadtest.File{{Name: "running-big.bin", Seed: 2, Size: 3 << 20}}
	for i := range 10 {
		mpFiles = append(mpFiles, uploadtest.File{Name: fmt.Sprintf("running-%02d.txt", i), Seed: uint64(10 + i), Size: 100})
	}
	ct, mpBody, mpLen := uploadtest.Multipart(mpFiles)
	mpConn := dialT(t, p.Addr)
	_, err := fmt.Fprintf(mpConn, "POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, mpLen)
	require.NoError(t, err)
	_, err = io.CopyN(mpConn, mpBody, mpLen-10)
	require.NoError(t, err)

	// Stalled multipart requests: every file is sent, then the headers of a
	// plain field whose value never ends, so the handler holds all the
	// files and waits. A request that is answered meanwhile has failed.
	answered := make(chan string, multiparts)
	for i := range multiparts {
		conn := dialT(t, p.Addr)
		attack = append(attack, conn)
		var body strings.Builder
		for j := range filesEach {
			fmt.Fprintf(&body, "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"m%02d-%03d.bin\"\r\n\r\nx\r\n", i, j)
		}
		// The field's first bytes make the parser read on past the last
		// file, which it holds only once it has seen what follows.
		body.WriteString("--B\r\nContent-Disposition: form-data; name=\"stall\"\r\n\r\n")
		body.WriteString(strings.Repeat("p", 64<<10))
		_, err := fmt.Fprintf(conn, "POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n%s",
			body.Len()+1000, body.String())
		require.NoError(t, err)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
			}
		}()
	}
	// The only way to see another process hold the files is its spool
	// directory; the loop is bounded.
	deadline := time.Now().Add(20 * time.Second)
	for len(spoolFiles(t, spoolDir)) < multiparts*filesEach {
		select {
		case a := <-answered:
			require.FailNow(t, "a stalled multipart request was answered", "%s; log:\n%s", a, lastLines(p.Log.String(), 20))
		default:
		}
		// net/http answers a handler's refusal only once it has read the
		// rest of a short body, which never comes: the log tells first.
		require.NotRegexp(t, `status=5\d\d`, p.Log.String())
		require.True(t, time.Now().Before(deadline), "the stalled multipart requests did not spool their files: %d spool files, %d fds; log:\n%s", len(spoolFiles(t, spoolDir)), countFDs(t, p.Cmd.Process.Pid), lastLines(p.Log.String(), 10))
		time.Sleep(10 * time.Millisecond)
	}

	// The keep-alive flood: each connection asks for /healthz once and then
	// stays open, idle.
	var flood sync.WaitGroup
	for range keepAlives {
		conn := dialT(t, p.Addr)
		attack = append(attack, conn)
		_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
		require.NoError(t, err)
		flood.Go(func() {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				io.Copy(io.Discard, resp.Body)
			}
		})
	}
	stopSampling := samplePeakFDs(t, p.Cmd.Process.Pid)

	// /healthz answers promptly on a new connection.
	start := time.Now()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := client.Get(p.URL + "/healthz")
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	healthz := time.Since(start)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Less(t, healthz, healthzLimit, "/healthz during the attack")

	// A new upload is stored, or refused with 503 and Retry-After.
	fresh := uploadtest.File{Name: "fresh.txt", Seed: 3, Size: 100}
	req, err := http.NewRequest(http.MethodPut, p.URL+"/files/"+fresh.Name, fresh.Reader())
	require.NoError(t, err)
	req.ContentLength = fresh.Size
	resp, err = client.Do(req)
	require.NoError(t, err)
	freshBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := []string{raw.Name}
	switch resp.StatusCode {
	case http.StatusCreated:
		want = append(want, fresh.Name)
	case http.StatusServiceUnavailable:
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
		requireAPIError(t, resp.StatusCode, freshBody, http.StatusServiceUnavailable, "busy")
	default:
		require.FailNow(t, "a new upload during the attack", "%d %s", resp.StatusCode, freshBody)
	}

	// The uploads that were running complete.
	_, err = io.Copy(rawConn, rawRest)
	require.NoError(t, err)
	status, body := readAnswer(t, rawConn, rawBR)
	require.Equal(t, http.StatusCreated, status, string(body))
	_, err = io.Copy(mpConn, mpBody)
	require.NoError(t, err)
	status, body = readAnswer(t, mpConn, bufio.NewReader(mpConn))
	require.Equal(t, http.StatusCreated, status, string(body))
	for _, f := range mpFiles {
		want = append(want, f.Name)
		uploadtest.RequireFile(t, f, filepath.Join(dir, f.Name))
	}
	uploadtest.RequireFile(t, raw, filepath.Join(dir, raw.Name))

	select {
	case a := <-answered:
		require.FailNow(t, "a stalled multipart request was answered", "%s", a)
	default:
	}
	flood.Wait()
	peak := stopSampling()
	assert.Less(t, peak, nofile)
	logs := p.Log.String()
	assert.NotContains(t, logs, "too many open files")
	assert.NotRegexp(t, `status=5\d\d`, logs)
	t.Logf("RLIMIT_NOFILE %d; %d stalled PUTs, %d stalled multipart requests of %d files, %d keep-alive connections: "+
		"%s; at most %d descriptors open, /healthz in %s, new upload %d, running uploads 201",
		nofile, stalledPUTs, multiparts, filesEach, keepAlives, maxConnsRE.FindString(logs), peak, healthz.Round(time.Millisecond), resp.StatusCode)

	// The attack ends; its requests fail as a client gone does.
	for _, c := range attack {
		c.Close()
	}
	p.Term(t, 30*time.Second)
	uploadtest.RequireEmptyDir(t, spoolDir)
	uploadtest.RequireDirHolds(t, dir, want...)
}

// dialT opens a loopback connection that the test closes at its end.
func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

var maxConnsRE = regexp.MustCompile(`\smax_connections=\d+`)

// samplePeakFDs watches a process's open descriptors until the returned
// function is called, which returns the most it saw. Sampling is the only
// way to see them from outside; it synchronises nothing.
func samplePeakFDs(t *testing.T, pid int) func() int {
	t.Helper()
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		peak := 0
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, testservers.CountFDs(pid))
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() int {
		close(stop)
		return <-done
	}
}

// countFDs counts a process's open descriptors.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	n := testservers.CountFDs(pid)
	require.GreaterOrEqual(t, n, 0, "cannot read /proc/%d/fd", pid)
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
