package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"spillway/internal/uploadtest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// caseRerunDirectory interrupts a push of a directory in the middle of its
// large file, with the small files before it stored, and runs the same
// command again, as the CLI advises: every file ends up stored, those
// already there count as pushed, and the run exits 0. A third run finds
// all of them there and sends nothing; a file changed since is refused
// with a message that names the way out, and exits 1.
func caseRerunDirectory(t *testing.T, tg *target) {
	const bigSize = 256 << 20
	dir := t.TempDir()
	sums := map[string]string{
		"a-small.bin": uploadtest.File{Seed: 11, Size: 100 << 10}.WriteFile(t, filepath.Join(dir, "a-small.bin")),
		"b-empty.bin": uploadtest.File{Seed: 12, Size: 0}.WriteFile(t, filepath.Join(dir, "b-empty.bin")),
		"c-big.bin":   uploadtest.File{Seed: 13, Size: bigSize}.WriteFile(t, filepath.Join(dir, "c-big.bin")),
		"d-small.bin": uploadtest.File{Seed: 14, Size: 3 << 20}.WriteFile(t, filepath.Join(dir, "d-small.bin")),
	}
	cache := t.TempDir()
	// One file at a time, so that the interrupt finds the files before the
	// large one stored and the one after it not begun.
	args := []string{"push", "--jobs", "1", "--direct-max", "4MiB", "--prefix", "rerun", dir, tg.srv.URL}

	run1 := startCLI(t, cache, token, args...)
	var id string
	waitUntil(t, 2*time.Minute, 5*time.Millisecond, "the CLI to create the large file's upload", run1.exited, func() bool {
		if ids := stateIDs(t, cache); len(ids) == 1 {
			id = ids[0]
			return true
		}
		return false
	})
	waitUntil(t, 2*time.Minute, 5*time.Millisecond, "a part of the large file to be stored", run1.exited, func() bool {
		return len(tg.api.status(t, id).Received) > 0
	})
	require.NoError(t, run1.cmd.Process.Signal(os.Interrupt))
	code1, _ := run1.wait(t, time.Minute)
	out1 := run1.out.String()
	require.Equal(t, 130, code1, out1)
	require.Contains(t, out1, "interrupted "+filepath.Join(dir, "c-big.bin")+" at ")
	require.Contains(t, out1, "interrupted after 2 of 4 files; run the same command again to resume")
	require.NotContains(t, out1, "100%")
	_, err := os.Stat(tg.storedPath("rerun/d-small.bin"))
	require.ErrorIs(t, err, os.ErrNotExist, "the file after the interrupt was not begun")

	run2 := startCLI(t, cache, token, args...)
	code2, rss2 := run2.wait(t, 5*time.Minute)
	out2 := run2.out.String()
	require.Equal(t, 0, code2, out2)
	for _, name := range []string{"a-small.bin", "b-empty.bin"} {
		require.Regexp(t, `(?m)^already there rerun/`+regexp.QuoteMeta(name)+`: .* \(sha256 `+sums[name]+`\)$`, out2)
	}
	require.Regexp(t, `(?m)^pushed rerun/c-big.bin: 256.0 MiB in \S+, [0-9.]+ MiB/s \(multipart(?:, resumed: [0-9.]+ MiB sent now)?\) sha256 `+sums["c-big.bin"]+`$`, out2)
	require.Regexp(t, `(?m)^pushed rerun/d-small.bin: 3.0 MiB in \S+, [0-9.]+ MiB/s \(direct\) sha256 `+sums["d-small.bin"]+`$`, out2)
	require.Contains(t, out2, "pushed 4 of 4 files (259.1 MiB; 2 already there)")
	require.Empty(t, stateIDs(t, cache))

	run3 := startCLI(t, cache, token, args...)
	code3, _ := run3.wait(t, 5*time.Minute)
	out3 := run3.out.String()
	require.Equal(t, 0, code3, out3)
	require.Contains(t, out3, "pushed 4 of 4 files (259.1 MiB; 4 already there)")
	require.Equal(t, 4, strings.Count(out3, "already there rerun/"), out3)

	// Another file under a taken name, of the same size: only the SHA-256
	// tells it apart.
	changed := uploadtest.File{Seed: 15, Size: 3 << 20}.WriteFile(t, filepath.Join(dir, "d-small.bin"))
	run4 := startCLI(t, cache, token, args...)
	code4, _ := run4.wait(t, 5*time.Minute)
	out4 := run4.out.String()
	require.Equal(t, 1, code4, out4)
	require.Contains(t, out4, "409 Conflict (exists)")
	require.Contains(t, out4, "another file is stored as rerun/d-small.bin (sha256 "+sums["d-small.bin"]+"; this one's is "+changed+")")
	require.Contains(t, out4, "--overwrite")
	require.Contains(t, out4, "pushed 3 of 4 files (256.1 MiB; 3 already there) in")
	require.Contains(t, out4, "1 failed")

	var stored []string
	for name, sum := range sums {
		require.Equal(t, sum, uploadtest.SHA256File(t, tg.storedPath("rerun/"+name)), name)
		stored = append(stored, "rerun/"+name)
	}
	p := tg.finish(t, stored...)
	t.Logf("SUMMARY %s rerun-directory: SIGINT in the large file's parts; run 2 exit 0 in %s (2 already there), run 3 exit 0 in %s (4 already there), run 4 with a changed file exit 1; peak RSS client %.1f MiB, %s",
		tg.kind, run2.elapsed.Round(time.Millisecond), run3.elapsed.Round(time.Millisecond), mib(rss2), p)
	assert.Less(t, rss2, int64(maxClientRSS), "client peak RSS")
}

// completionHolder is a loopback reverse proxy in front of the server that
// lets a completion through to the server but keeps its answer from the
// client, as a connection lost at that moment would: the server finishes
// the completion, and the client never hears of it.
type completionHolder struct {
	srv        *httptest.Server
	completing chan struct{} // closed when the first completion reaches the server
	answered   chan int      // the server's status for it
	once       sync.Once
}

func newCompletionHolder(t *testing.T, backend string) *completionHolder {
	u, err := url.Parse(backend)
	require.NoError(t, err)
	h := &completionHolder{completing: make(chan struct{}), answered: make(chan int, 1)}
	proxy := httputil.NewSingleHostReverseProxy(u)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := false
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/complete") {
			h.once.Do(func() { first = true })
		}
		if !first {
			proxy.ServeHTTP(w, r)
			return
		}
		// The client going away must not cancel the completion.
		req := r.Clone(context.WithoutCancel(r.Context()))
		req.URL.Scheme, req.URL.Host, req.RequestURI = u.Scheme, u.Host, ""
		close(h.completing)
		resp, err := http.DefaultTransport.RoundTrip(req)
		status := 0
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		h.answered <- status
		// Hold the answer until the client has gone, bounded.
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// caseInterruptDuringComplete stops a push (SIGINT) while its completion
// is at the server, which finishes it: the run exits 130 and keeps its
// state, and the next run finds the upload gone and the file stored with
// its SHA-256, reports it as there, sends nothing and exits 0.
func caseInterruptDuringComplete(t *testing.T, tg *target) {
	const size = 64 << 20
	src := filepath.Join(t.TempDir(), "complete.bin")
	sum := uploadtest.File{Seed: 21, Size: size}.WriteFile(t, src)
	name := "e2e/complete.bin"
	cache := t.TempDir()
	holder := newCompletionHolder(t, tg.srv.URL)
	args := []string{"push", "--direct-max", "4MiB", "--name", name, src, holder.srv.URL}

	run1 := startCLI(t, cache, token, args...)
	select {
	case <-holder.completing:
	case <-run1.exited:
		require.FailNow(t, "the CLI exited before completing", run1.out.String())
	case <-time.After(2 * time.Minute):
		require.FailNow(t, "no completion within 2 minutes", run1.out.String())
	}
	require.NoError(t, run1.cmd.Process.Signal(os.Interrupt))
	code1, _ := run1.wait(t, time.Minute)
	out1 := run1.out.String()
	require.Equal(t, 130, code1, out1)
	ids := stateIDs(t, cache)
	require.Len(t, ids, 1, "the outcome is not known to the first run: its state stays\n%s", out1)
	var status int
	select {
	case status = <-holder.answered:
	case <-time.After(2 * time.Minute):
		require.FailNow(t, "the server did not answer the completion within 2 minutes")
	}
	require.Equal(t, http.StatusCreated, status, "the server finished the completion")

	run2 := startCLI(t, cache, token, args...)
	code2, _ := run2.wait(t, 5*time.Minute)
	out2 := run2.out.String()
	require.Equal(t, 0, code2, out2)
	require.Contains(t, out2, "already there "+name+": 64.0 MiB, the same size and SHA-256 on the server (sha256 "+sum+")")
	require.Contains(t, out2, "pushed 1 of 1 files (64.0 MiB; 1 already there)")
	require.Empty(t, stateIDs(t, cache), "the outcome is known: no state left")
	require.Equal(t, 1, strings.Count(tg.srv.Log.String(), "method=POST path=/uploads status=201"), "the second run created no upload")
	require.Equal(t, sum, uploadtest.SHA256File(t, tg.storedPath(name)))
	p := tg.finish(t, name)
	t.Logf("SUMMARY %s interrupt-during-complete: 64 MiB, SIGINT with the completion at the server (201 to nobody); run 2 exit 0 in %s, nothing sent; %s",
		tg.kind, run2.elapsed.Round(time.Millisecond), p)
}
