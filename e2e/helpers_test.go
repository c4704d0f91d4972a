package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// binDir holds the binaries built for this run of the test binary.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spillway-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	// Resolved, so that it compares equal to /proc/PID/exe.
	if binDir, err = filepath.EvalSymlinks(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// buildBinary builds pkg as `make build` does (static, trimmed paths), once per
// run of the test binary, and returns its path. The binaries are not
// race-built: they are measured, not checked for races.
func buildBinary(t *testing.T, name, pkg string, tags ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	out := filepath.Join(binDir, name)
	args := []string{"build", "-trimpath", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s:\n%s", pkg, msg)
	built[name] = out
	return out
}

func localserverBin(t *testing.T) string {
	return buildBinary(t, "localserver", "spillway/localserver")
}
func spillwayBin(t *testing.T) string { return buildBinary(t, "spillway", "spillway/cmd/spillway") }
func rssexecBin(t *testing.T) string  { return buildBinary(t, "rssexec", "./testdata/rssexec") }
func bootstrapBin(t *testing.T) string {
	return buildBinary(t, "bootstrap", "spillway/functions/upload", "lambda.norpc")
}

// cleanEnv is this process's environment without SPILLWAY_* variables, so
// that a developer's settings reach neither the servers nor the CLI.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPILLWAY_") {
			env = append(env, kv)
		}
	}
	return env
}

// --- Files -----------------------------------------------------------------

// makeFile writes size bytes to path and returns their SHA-256: one random
// MiB, written again and again, each copy stamped with its index and the
// seed, so that no two MiB (and no two parts) are alike and a swapped or
// repeated part changes the digest. A few seconds per GiB.
func makeFile(t *testing.T, path string, size int64, seed uint64) string {
	t.Helper()
	const block = 1 << 20
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	pattern := make([]byte, block)
	_, _ = rand.NewChaCha8(key).Read(pattern)
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, block)
	for off := int64(0); off < size; off += block {
		n := min(block, size-off)
		copy(buf, pattern)
		binary.LittleEndian.PutUint64(buf[0:], uint64(off/block))
		binary.LittleEndian.PutUint64(buf[8:], seed)
		h.Write(buf[:n])
		_, err := f.Write(buf[:n])
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	return hex.EncodeToString(h.Sum(nil))
}

// fileCRC64NVME is the CRC64NVME of the file at path, as the API writes it
// (base64 of the big-endian bytes).
func fileCRC64NVME(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], crc64nvme.Checksum(b))
	return base64.StdEncoding.EncodeToString(out[:])
}

// fileSHA256 streams the file at path through SHA-256.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.CopyBuffer(h, f, make([]byte, 1<<20))
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// --- Peak RSS --------------------------------------------------------------

// vmHWM reads a running process's peak resident set size, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.FailNow(t, "no VmHWM in /proc status", "pid %d", pid)
	return 0
}

// ppid returns a process's parent, or 0 when it is gone.
func ppid(pid int) int {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}

// descendantRunning returns the PID of the one process running exe that
// descends from ancestor (the emulator starts the function, the server
// starts the emulator).
func descendantRunning(t *testing.T, exe string, ancestor int) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*")
	require.NoError(t, err)
	var found []int
	for _, p := range procs {
		if target, err := os.Readlink(p + "/exe"); err != nil || target != exe {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(p))
		require.NoError(t, err)
		// A bounded walk up the tree: PID 1 has parent 0.
		for up, depth := ppid(pid), 0; up > 1 && depth < 8; up, depth = ppid(up), depth+1 {
			if up == ancestor {
				found = append(found, pid)
				break
			}
		}
	}
	require.Len(t, found, 1, "processes running %s below PID %d", exe, ancestor)
	return found[0]
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// --- Processes -------------------------------------------------------------

// server is a running localserver binary.
type server struct {
	cmd    *exec.Cmd
	url    string
	logs   *uploadtest.SyncBuffer
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

var listeningRE = regexp.MustCompile(`msg="spillway local server listening" url=(http://\S+)`)

// startServer runs localserver on a free loopback port and waits until it
// logs the URL it listens on. It is killed when the test ends, if a test
// has not stopped it.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	s := &server{logs: &uploadtest.SyncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(localserverBin(t), append([]string{"--addr", "127.0.0.1:0"}, args...)...)
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.SysProcAttr = testservers.DieWithParent()
	// In function mode the emulator and the function share the output;
	// none may keep Wait waiting once the server is gone.
	s.cmd.WaitDelay = 5 * time.Second
	require.NoError(t, s.cmd.Start())
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("localserver output (tail):\n%s", tail(s.logs.String(), 12<<10))
		}
	})
	waitUntil(t, 30*time.Second, 10*time.Millisecond, "localserver to listen", s.exited, func() bool {
		if m := listeningRE.FindStringSubmatch(s.logs.String()); m != nil {
			s.url = m[1]
			return true
		}
		return false
	})
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		require.FailNow(t, "localserver did not exit within a minute of SIGTERM")
	}
	require.NoError(t, s.err, "localserver's exit")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// cli is one run of the spillway CLI, under rssexec so that its own peak
// RSS can be read.
type cli struct {
	cmd     *exec.Cmd
	out     *uploadtest.SyncBuffer
	rssFile string
	start   time.Time
	elapsed time.Duration // set once exited is closed
	exited  chan struct{}
}

// startCLI runs `spillway ARGS...` with its resume state under cacheDir
// and the token in SPILLWAY_TOKEN, as a user would set it.
func startCLI(t *testing.T, cacheDir, token string, args ...string) *cli {
	t.Helper()
	c := &cli{out: &uploadtest.SyncBuffer{}, rssFile: filepath.Join(t.TempDir(), "maxrss"), exited: make(chan struct{})}
	c.cmd = exec.Command(rssexecBin(t), append([]string{c.rssFile, spillwayBin(t)}, args...)...)
	c.cmd.Env = append(cleanEnv(), "XDG_CACHE_HOME="+cacheDir, "SPILLWAY_TOKEN="+token)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = testservers.DieWithParent()
	c.cmd.WaitDelay = 5 * time.Second
	c.start = time.Now()
	require.NoError(t, c.cmd.Start())
	go func() {
		_ = c.cmd.Wait() // the status is read from ProcessState
		c.elapsed = time.Since(c.start)
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill() // the CLI gets SIGKILL with its parent
			<-c.exited
		}
	})
	return c
}

// wait waits for the CLI to exit and returns its exit status and peak RSS
// in bytes.
func (c *cli) wait(t *testing.T, timeout time.Duration) (int, int64) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		<-c.exited
		require.FailNow(t, "spillway did not finish", "after %s; output:\n%s", timeout, c.out)
	}
	b, err := os.ReadFile(c.rssFile)
	require.NoError(t, err, "no peak RSS from rssexec; output:\n%s", c.out)
	kib, err := strconv.ParseInt(string(b), 10, 64)
	require.NoError(t, err)
	return c.cmd.ProcessState.ExitCode(), kib << 10
}

// inheritedMaxRSS is what Rusage.Maxrss says of the direct child, rssexec:
// the test binary's own peak, carried over the exec, not the child's.
func (c *cli) inheritedMaxRSS() int64 {
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}

// waitUntil polls cond, every tick, until it holds, for at most timeout;
// it fails t when the time is up or when gone is closed first (the process
// being waited for has exited). Polling is the only way to watch another
// process's progress.
func waitUntil(t *testing.T, timeout, tick time.Duration, what string, gone <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for !cond() {
		select {
		case <-gone:
			if cond() {
				return
			}
			require.FailNow(t, "the process exited while waiting for "+what)
		case <-deadline.C:
			require.FailNow(t, "timed out waiting for "+what, "after %s", timeout)
		case <-ticker.C:
		}
	}
}

// --- The HTTP contract (docs/MULTIPART.md), decoded as a client would ----

type partURL struct {
	N       int               `json:"n"`
	Size    int64             `json:"size"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Expires time.Time         `json:"expires"`
}

type createdUpload struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	PartSize  int64     `json:"part_size"`
	PartCount int       `json:"part_count"`
	Parts     []partURL `json:"parts"`
	NextFrom  int       `json:"next_from"`
}

type receivedPart struct {
	N    int    `json:"n"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

type uploadStatus struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Size      int64          `json:"size"`
	PartSize  int64          `json:"part_size"`
	PartCount int            `json:"part_count"`
	Received  []receivedPart `json:"received"`
}

func (s uploadStatus) receivedBytes() int64 {
	var n int64
	for _, p := range s.Received {
		n += p.Size
	}
	return n
}

type completePart struct {
	N    int    `json:"n"`
	ETag string `json:"etag"`
}

type storedFiles struct {
	Files []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
		Spool  string `json:"spool"`
	} `json:"files"`
}

type apiError struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// apiClient calls the server's own routes with the token, and part URLs
// without it.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

func newAPIClient(t *testing.T, base, token string) *apiClient {
	// Like the CLI's transport: Expect: 100-continue waits for the server
	// (a zero Transport would send the body at once), and loopback never
	// goes through a proxy.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	t.Cleanup(hc.CloseIdleConnections)
	return &apiClient{base: base, token: token, hc: hc}
}

// call sends in as JSON (nil: no body) and returns the status and body.
func (a *apiClient) call(t *testing.T, method, path string, in any) (int, []byte) {
	t.Helper()
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(t, err)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	require.NoError(t, err)
	return resp.StatusCode, out
}

// callJSON is call that requires status want and decodes the body into out.
func (a *apiClient) callJSON(t *testing.T, method, path string, in any, want int, out any) {
	t.Helper()
	status, body := a.call(t, method, path, in)
	require.Equal(t, want, status, "%s %s: %s", method, path, body)
	if out != nil {
		require.NoError(t, json.Unmarshal(body, out), "%s %s: %s", method, path, body)
	}
}

// requireError requires an API error of this status and code.
func (a *apiClient) requireError(t *testing.T, method, path string, in any, status int, code string) {
	t.Helper()
	got, body := a.call(t, method, path, in)
	require.Equal(t, status, got, "%s %s: %s", method, path, body)
	var e apiError
	require.NoError(t, json.Unmarshal(body, &e), "%s %s: %s", method, path, body)
	require.Equal(t, code, e.Error.Code, "%s %s: %s", method, path, body)
}

func (a *apiClient) status(t *testing.T, id string) uploadStatus {
	t.Helper()
	var st uploadStatus
	a.callJSON(t, http.MethodGet, "/uploads/"+id, nil, http.StatusOK, &st)
	return st
}

// putPart sends part p of the file to its URL, with only the headers the
// server listed, and returns the ETag.
func (a *apiClient) putPart(t *testing.T, f *os.File, partSize int64, p partURL) string {
	t.Helper()
	method := p.Method
	if method == "" {
		method = http.MethodPut
	}
	req, err := http.NewRequest(method, p.URL, io.NewSectionReader(f, int64(p.N-1)*partSize, p.Size))
	require.NoError(t, err)
	req.ContentLength = p.Size
	// As the CLI sends parts: storage that refuses one says so before
	// the body.
	req.Header.Set("Expect", "100-continue")
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	resp, err := a.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	require.Equal(t, http.StatusOK, resp.StatusCode, "part %d: %s", p.N, body)
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag, "part %d: no ETag", p.N)
	return etag
}

// stateConfirmed returns the parts the one resume state under cacheDir
// confirms (the CLI saw them stored), with their ETags.
func stateConfirmed(t *testing.T, cacheDir string) map[int]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(cacheDir, "spillway", "push", "*.json"))
	require.NoError(t, err)
	require.Len(t, paths, 1)
	b, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	var st struct {
		Confirmed []struct {
			N    int    `json:"n"`
			ETag string `json:"etag"`
		} `json:"confirmed"`
	}
	require.NoError(t, json.Unmarshal(b, &st), "state file %s: %s", paths[0], b)
	parts := map[int]string{}
	for _, p := range st.Confirmed {
		require.NotContains(t, parts, p.N, "part %d confirmed twice", p.N)
		parts[p.N] = p.ETag
	}
	return parts
}

// stateIDs returns the upload IDs in the CLI's resume state under cacheDir.
func stateIDs(t *testing.T, cacheDir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(cacheDir, "spillway", "push", "*.json"))
	require.NoError(t, err)
	var ids []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the glob
		}
		require.NoError(t, err)
		var st struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(b, &st), "state file %s: %s", p, b)
		ids = append(ids, st.ID)
	}
	return ids
}
