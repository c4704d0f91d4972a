package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"spillway/internal/uploadtest"

	"spillway/wire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFilesDirectoryStore(t *testing.T) { caseFiles(t, startDirTarget(t)) }

func TestFilesFunctionURL(t *testing.T) { caseFiles(t, startFunctionTarget(t)) }

// listRE matches the server's log line of one page of GET /files: the
// local server's own, or the Function URL emulator's.
var listRE = regexp.MustCompile(`msg=request method=GET path=/files status=200 `)

// gotRE matches the CLI's line for a finished get.
var gotRE = regexp.MustCompile(`(?m)^got (\S+) -> (\S+): (.+?) in (\S+), ([0-9.]+) MiB/s(, from the redirect)?(?:, resumed: (.+) kept, (.+) received now)?$`)

// caseFiles pushes a folder with the CLI, then lists it over several pages,
// downloads the large file, resumes a partial download of it, and removes
// files, all with the CLI, against one target.
func caseFiles(t *testing.T, tg *target) {
	const bigSize = 64 << 20
	src := filepath.Join(t.TempDir(), "tree")
	small := []string{"docs/a.txt", "docs/b.txt", "docs/c.txt", "docs/sub/d.txt", "e.txt"}
	for _, n := range small {
		p := filepath.Join(src, filepath.FromSlash(n))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(strings.Repeat(n, 100)), 0o644))
	}
	sum := uploadtest.File{Seed: 7, Size: bigSize}.WriteFile(t, filepath.Join(src, "big.bin"))
	cache := t.TempDir()
	url := tg.srv.URL

	push := startCLI(t, cache, token, "push", "--url", url, src)
	code, _ := push.wait(t, 2*time.Minute)
	require.Equal(t, 0, code, push.out.String())

	// ls over pages of 2: six files are three pages.
	pagesBefore := len(listRE.FindAllString(tg.srv.Log.String(), -1))
	lsRun := startCLI(t, cache, token, "ls", "--page-size", "2", "--url", url)
	code, _ = lsRun.wait(t, time.Minute)
	out := lsRun.out.String()
	require.Equal(t, 0, code, out)
	// The emulator logs a request once it has answered it: wait for the
	// last page's line, then check that no more pages were asked for.
	tg.srv.Log.WaitCount(t, listRE, pagesBefore+3, 10*time.Second, tg.srv.Exited())
	assert.Equal(t, 3, len(listRE.FindAllString(tg.srv.Log.String(), -1))-pagesBefore, "pages asked for:\n%s", out)
	assert.Regexp(t, `(?m)^  64\.0 MiB  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  big\.bin\n.*docs/a\.txt\n.*docs/b\.txt\n.*docs/c\.txt\n.*docs/sub/d\.txt\n.*e\.txt\n6 files, 64\.0 MiB\n$`, out)

	lsJSON := startCLI(t, cache, token, "ls", "--json", "--page-size", "3", "--url", url, "docs/")
	code, _ = lsJSON.wait(t, time.Minute)
	require.Equal(t, 0, code, lsJSON.out.String())
	var names []string
	for line := range strings.SplitSeq(strings.TrimSpace(lsJSON.out.String()), "\n") {
		var f wire.ListEntry
		require.NoError(t, json.Unmarshal([]byte(line), &f), "a JSON line: %q", line)
		assert.Equal(t, int64(len(f.Name)*100), f.Size)
		assert.False(t, f.Modified.IsZero())
		names = append(names, f.Name)
	}
	assert.Equal(t, small[:4], names)

	// get the large file whole; with S3, from the presigned URL.
	dl := t.TempDir()
	dest := filepath.Join(dl, "big.bin")
	// getBig runs a get of big.bin into target, requires it to succeed,
	// and returns its output, the submatches of its line and its peak RSS.
	getBig := func(target string) (string, []string, int64) {
		t.Helper()
		get := startCLI(t, cache, token, "get", "--url", url, "--sha256", sum, "big.bin", target)
		code, rss := get.wait(t, 2*time.Minute)
		out := get.out.String()
		require.Equal(t, 0, code, out)
		m := gotRE.FindStringSubmatch(out)
		require.NotNil(t, m, out)
		return out, m, rss
	}
	out, m, clientRSS := getBig(dl)
	assert.Equal(t, tg.kind == "function", m[6] != "", "followed a redirect: %s", out)
	assert.Contains(t, out, "sha256 "+sum+" (matches --sha256)")
	require.Equal(t, sum, uploadtest.SHA256File(t, dest))
	t.Logf("SUMMARY %s get 64 MiB: %s, %s MiB/s, peak RSS client %.1f MiB", tg.kind, m[4], m[5], mib(clientRSS))
	assert.Less(t, clientRSS, int64(maxClientRSS), "client peak RSS")

	// A partial download: the first 10 MiB of it, as an interrupted get
	// leaves them, with the ETag they came with.
	req, err := http.NewRequest(http.MethodHead, url+"/files/big.bin", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := tg.api.hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	part, meta := dest+".part", dest+".part.json"
	partial := func(etag string) {
		t.Helper()
		require.NoError(t, os.Rename(dest, part))
		require.NoError(t, os.Truncate(part, 10<<20))
		b, err := json.Marshal(map[string]string{"server": url, "name": "big.bin", "etag": etag})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(meta, b, 0o600))
	}
	partial(etag)
	out, m, _ = getBig(dest)
	assert.Equal(t, "10.0 MiB", m[7], "kept: %s", out)
	assert.Equal(t, "54.0 MiB", m[8], "received now, the rest only: %s", out)
	require.Equal(t, sum, uploadtest.SHA256File(t, dest))
	assert.NoFileExists(t, part)
	assert.NoFileExists(t, meta)
	// A request is logged once answered: wait for the line.
	if tg.kind == "dir" {
		tg.srv.Log.WaitFor(t, regexp.MustCompile(`msg=request method=GET path=/files/big.bin status=206 `), 10*time.Second, tg.srv.Exited()) // a Range request
	} else {
		tg.srv.Log.WaitFor(t, regexp.MustCompile(`msg=request method=GET path=/files/big.bin status=307 `), 10*time.Second, tg.srv.Exited()) // a redirect
	}

	// A partial file of another version (its ETag is not the server's):
	// downloaded whole again. S3 (versitygw too) ignores If-Range and
	// answers the range anyway; the client sees the ETag of that 206
	// differ and starts over.
	partial(`"an-older-version"`)
	out, m, _ = getBig(dest)
	assert.Empty(t, m[7], "nothing kept of another version: %s", out)
	require.Equal(t, sum, uploadtest.SHA256File(t, dest))
	assert.NoFileExists(t, part)

	// A name that is not there: 1, and nothing left behind.
	missing := startCLI(t, cache, token, "get", "--url", url, "nope.bin", dl)
	code, _ = missing.wait(t, time.Minute)
	assert.Equal(t, 1, code, missing.out.String())
	assert.Contains(t, missing.out.String(), "404 Not Found (not_found)")
	entries, err := os.ReadDir(dl)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only big.bin in %s", dl)

	stored := append([]string{"big.bin"}, small...)
	rm := startCLI(t, cache, token, "rm", "--url", url, "e.txt", "docs/sub/d.txt")
	code, _ = rm.wait(t, time.Minute)
	require.Equal(t, 0, code, rm.out.String())
	assert.Equal(t, "removed e.txt\nremoved docs/sub/d.txt\n", rm.out.String())
	again := startCLI(t, cache, token, "rm", "--url", url, "e.txt")
	code, _ = again.wait(t, time.Minute)
	assert.Equal(t, 1, code, again.out.String())
	assert.Contains(t, again.out.String(), "404 Not Found (not_found)")
	tg.finish(t, stored[:4]...)
}
