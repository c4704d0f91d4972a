package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// binDir holds the binaries built for this run of the test binary.
var binDir string

// bins builds each program into binDir once per run of the test binary.
var bins *testservers.Binaries

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
	bins = testservers.NewBinaries(binDir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func localserverBin(t *testing.T) string { return bins.Path(t, testservers.LocalServer) }
func spillwayBin(t *testing.T) string    { return bins.Path(t, testservers.CLI) }
func bootstrapBin(t *testing.T) string   { return bins.Path(t, testservers.Function) }
func rssexecBin(t *testing.T) string {
	return bins.Path(t, testservers.Program{Name: "rssexec", Pkg: "./testdata/rssexec"})
}

// --- Peak RSS --------------------------------------------------------------

// ppid returns a process's parent, or 0 when it is gone.
func ppid(pid int) int {
	v, err := testservers.ProcStatus(pid, "PPid")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(v)
	return n
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

// startServer runs localserver in env on a free loopback port and waits
// until it logs the URL it listens on. It is killed when the test ends, if
// a test has not stopped it.
func startServer(t *testing.T, env []string, args ...string) *testservers.Local {
	t.Helper()
	return testservers.StartLocalServer(t, env, []string{localserverBin(t)}, args...)
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
	c.cmd.Env = append(testservers.CleanEnv(), "XDG_CACHE_HOME="+cacheDir, "SPILLWAY_TOKEN="+token)
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

// receivedBytes is how much of an upload the server holds.
func receivedBytes(s wire.UploadState) int64 {
	var n int64
	for _, p := range s.Received {
		n += p.Size
	}
	return n
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
func (a *apiClient) requireError(t *testing.T, method, path string, in any, status int, code wire.Code) {
	t.Helper()
	got, body := a.call(t, method, path, in)
	require.Equal(t, status, got, "%s %s: %s", method, path, body)
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), "%s %s: %s", method, path, body)
	require.Equal(t, code, e.Error.Code, "%s %s: %s", method, path, body)
}

func (a *apiClient) status(t *testing.T, id string) wire.UploadState {
	t.Helper()
	var st wire.UploadState
	a.callJSON(t, http.MethodGet, "/uploads/"+id, nil, http.StatusOK, &st)
	return st
}

// putPart sends part p of the file to its URL, with only the headers the
// server listed, and returns the ETag.
func (a *apiClient) putPart(t *testing.T, f *os.File, partSize int64, p wire.PartURL) string {
	t.Helper()
	method := p.Method
	if method == "" {
		method = http.MethodPut
	}
	req, err := http.NewRequest(method, p.URL, io.NewSectionReader(f, int64(p.Number-1)*partSize, p.Size))
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
	require.Equal(t, http.StatusOK, resp.StatusCode, "part %d: %s", p.Number, body)
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag, "part %d: no ETag", p.Number)
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
