// Package e2e runs the real binaries against each other on loopback: the
// spillway CLI pushing large files through the presigned multipart flow
// (docs/MULTIPART.md) to the local server with a directory store, and to
// the Lambda function under the Runtime Interface Emulator, behind
// `localserver --function`, storing in S3 (versitygw). Each case checks the
// bytes stored, that nothing is left behind, and that the client's and the
// server's peak RSS stay flat, whatever the file's size.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

const (
	token        = "e2e-token-f00dfeed"
	uploadSecret = "e2e-upload-secret-0123456789abcdef"

	// Flat bounds on peak RSS, whatever the file's size, with room above
	// what the CLI, the local server, the function and the Function URL
	// emulator in front of it use (each run logs its figures in a SUMMARY
	// line). Holding the 1 GiB file fails them many times over; so does holding one 16 MiB part per parallel
	// worker (4 × 16 MiB), in the client or in a server.
	maxClientRSS = 32 << 20
	maxServerRSS = 40 << 20

	// partSize is the part size the servers choose for files up to
	// 10,000 × 16 MiB (store.DefaultPartSize).
	partSize = 16 << 20
)

func TestPushDirectoryStore(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 1.6 GiB through the real binaries; skipped in -short mode")
	}
	runCases(t, startDirTarget)
}

func TestPushFunctionURL(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 1.6 GiB through the real binaries, the emulator and versitygw; skipped in -short mode")
	}
	runCases(t, startFunctionTarget)
}

func runCases(t *testing.T, start func(*testing.T) *target) {
	t.Run("push-1GiB", func(t *testing.T) { casePush(t, start(t)) })
	t.Run("interrupt-resume", func(t *testing.T) { caseResume(t, start(t)) })
	t.Run("bad-checksum", func(t *testing.T) { caseBadChecksum(t, start(t)) })
	t.Run("abort", func(t *testing.T) { caseAbort(t, start(t)) })
	t.Run("truncated-part", func(t *testing.T) { caseTruncatedPart(t, start(t)) })
	t.Run("rerun-directory", func(t *testing.T) { caseRerunDirectory(t, start(t)) })
	t.Run("interrupt-during-complete", func(t *testing.T) { caseInterruptDuringComplete(t, start(t)) })
}

// --- Targets ---------------------------------------------------------------

// target is a server under test, started for one case, and what is needed
// to look at its storage.
type target struct {
	kind      string // "dir" or "function"
	srv       *testservers.Local
	api       *apiClient
	spoolDir  string
	dir       string          // dir: the upload directory
	gw        *testservers.S3 // function: the bucket's server
	bootstrap string          // function: the binary the emulator runs
	// attempted are names a case tried to store and must not have: an
	// empty directory on their path is tolerated, and noted (see
	// requireDirHoldsOnly).
	attempted []string
	noted     bool // the note on empty directories is logged
}

func startDirTarget(t *testing.T) *target {
	tg := &target{kind: "dir", dir: filepath.Join(t.TempDir(), "uploads"), spoolDir: t.TempDir()}
	tg.srv = startServer(t, testservers.CleanEnv(), "--directory", tg.dir, "--spool-dir", tg.spoolDir,
		"--token", token, "--upload-secret", uploadSecret)
	tg.api = newAPIClient(t, tg.srv.URL, token)
	return tg
}

func startFunctionTarget(t *testing.T) *target {
	gw := testservers.StartS3(t)
	tg := &target{kind: "function", gw: gw, spoolDir: t.TempDir(), bootstrap: bootstrapBin(t)}
	rie := testservers.Tool(t, testservers.RIE)
	env := append(testservers.CleanEnv(), gw.Env()...)
	tg.srv = startServer(t, env, "--function", tg.bootstrap, "--rie", rie, "--bucket", gw.Bucket,
		"--spool-dir", tg.spoolDir, "--token", token)
	tg.api = newAPIClient(t, tg.srv.URL, token)
	return tg
}

// storedPath is where the bytes stored under name are on disk.
func (tg *target) storedPath(name string) string {
	if tg.kind == "dir" {
		return filepath.Join(tg.dir, filepath.FromSlash(name))
	}
	return tg.gw.ObjectPath(name)
}

// peaks are peak RSS figures, in bytes.
type peaks struct {
	server int64 // the process serving the API: localserver, or the function
	front  int64 // function: the Function URL emulator (localserver --function)
}

func (p peaks) String() string {
	if p.front == 0 {
		return fmt.Sprintf("server %.1f MiB", mib(p.server))
	}
	return fmt.Sprintf("function %.1f MiB (Function URL emulator %.1f MiB)", mib(p.server), mib(p.front))
}

// finish reads the servers' peak RSS, stops the server gracefully, and
// requires that storage holds exactly the stored names and nothing else:
// no spool file, no part, no staging file, no open multipart upload.
func (tg *target) finish(t *testing.T, stored ...string) peaks {
	t.Helper()
	var p peaks
	pid := tg.srv.Pid()
	if tg.kind == "dir" {
		p.server = testservers.PeakRSS(t, pid)
	} else {
		// The function must have served every request of the case in one
		// process, or its peak would not cover them all.
		assert.Equal(t, 1, strings.Count(tg.srv.Log.String(), `"msg":"cold start"`), "cold starts of the function")
		p.server = testservers.PeakRSS(t, descendantRunning(t, tg.bootstrap, pid))
		p.front = testservers.PeakRSS(t, pid)
	}
	// Clean while still running: a client that has its answer sees a
	// clean spool.
	tg.requireClean(t, stored...)
	tg.srv.Term(t, time.Minute)
	tg.requireClean(t, stored...)
	return p
}

func (tg *target) requireClean(t *testing.T, stored ...string) {
	t.Helper()
	uploadtest.RequireEmptyDir(t, tg.spoolDir)
	if tg.kind == "dir" {
		if empty := requireDirHoldsOnly(t, tg.dir, tg.attempted, stored...); len(empty) > 0 && !tg.noted {
			tg.noted = true
			t.Logf("NOTE: empty directories left in the upload dir on the path of a name that was not stored: %q", empty)
		}
		return
	}
	requireBucketHoldsOnly(t, tg.gw, stored...)
}

// requireDirHoldsOnly requires that dir holds the named files, the
// directories leading to them, and at most a .spillway-uploads empty but
// for finished tus uploads' records:
// no part, manifest or staging file, and no leftover directory, but for
// empty ones on the path of an attempted name. The directory store creates
// a name's directories before it knows whether the file will be published
// (dirstore.newStaged), and never removes them; those are returned, for a
// note, not failed.
func requireDirHoldsOnly(t *testing.T, dir string, attempted []string, names ...string) []string {
	t.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			want[d+"/"] = true
		}
	}
	tolerated := map[string]bool{}
	for _, n := range attempted {
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			if !want[d+"/"] {
				tolerated[d+"/"] = true
			}
		}
	}
	var got, extra, empty []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		got = append(got, rel)
		switch {
		case want[rel], uploadtest.FinishedTusRecord(t, dir, rel):
		case rel == ".spillway-uploads/", rel == ".spillway-uploads/tus/":
			// The upload areas may stay, empty but for finished tus
			// uploads' records: tus uploads have their own.
			entries, rerr := os.ReadDir(p)
			if rerr != nil || len(entries) > 1 && rel == ".spillway-uploads/" || len(entries) == 1 && rel == ".spillway-uploads/" && entries[0].Name() != "tus" {
				extra = append(extra, rel)
			}
		case tolerated[rel]:
			entries, rerr := os.ReadDir(p)
			if rerr != nil || len(entries) > 0 {
				extra = append(extra, rel) // its contents are listed too
			} else {
				empty = append(empty, rel)
			}
		default:
			extra = append(extra, rel)
		}
		return err
	}))
	require.Empty(t, extra, "left behind in %s (all: %q)", dir, got)
	for _, n := range names {
		require.Contains(t, got, n)
	}
	return empty
}

// requireBucketHoldsOnly requires that the bucket holds exactly the named
// objects: nothing under .spillway/ (records, staging objects) but finished
// tus uploads' records, and no
// multipart upload still open.
func requireBucketHoldsOnly(t *testing.T, gw *testservers.S3, names ...string) {
	t.Helper()
	ctx := context.Background()
	c := gw.Client()
	internal, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(gw.Bucket), Prefix: aws.String(".spillway/")})
	require.NoError(t, err)
	var keys []string
	for _, o := range internal.Contents {
		if !finishedTusObject(t, gw, aws.ToString(o.Key)) {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	require.Empty(t, keys, "keys left under .spillway/")

	keys = nil
	in := &s3.ListObjectsV2Input{Bucket: aws.String(gw.Bucket)}
	for page := 0; ; page++ {
		require.Less(t, page, 100, "too many pages of objects")
		out, err := c.ListObjectsV2(ctx, in)
		require.NoError(t, err)
		for _, o := range out.Contents {
			if !finishedTusObject(t, gw, aws.ToString(o.Key)) {
				keys = append(keys, aws.ToString(o.Key))
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.ContinuationToken = out.NextContinuationToken
	}
	require.ElementsMatch(t, names, keys, "objects in the bucket")
	gw.RequireNoMultipartUploads(t)
}

// --- Cases -----------------------------------------------------------------

// pushedRE matches the CLI's line for a file pushed in parts; the sha256
// it prints is the server's, from the 201, which the CLI has compared with
// its own.
var pushedRE = regexp.MustCompile(`(?m)^pushed (\S+): (.+) in (\S+), ([0-9.]+) MiB/s \(multipart(?:, resumed: ([0-9.]+ [KMGT]?i?B) sent now)?\) sha256 ([0-9a-f]{64})$`)

// completedRE matches the server's log line of a successful completion:
// the local server's own, or the Function URL emulator's.
var completedRE = regexp.MustCompile(`msg=request method=POST path=/uploads/[A-Za-z0-9._~-]+/complete status=201 `)

// casePush pushes 1 GiB with the CLI and its defaults but --direct-max.
func casePush(t *testing.T, tg *target) {
	const size = 1 << 30
	start := time.Now()
	src := filepath.Join(t.TempDir(), "big.bin")
	sum := uploadtest.File{Seed: 1, Size: size}.WriteFile(t, src)
	name := "e2e/big.bin"
	generated := time.Since(start)

	run := startCLI(t, t.TempDir(), token, "push", "--direct-max", "4MiB", "--name", name, src, tg.srv.URL)
	code, clientRSS := run.wait(t, 5*time.Minute)
	out := run.out.String()
	require.Equal(t, 0, code, out)
	m := pushedRE.FindStringSubmatch(out)
	require.NotNil(t, m, "no multipart push line in:\n%s", out)
	require.Equal(t, name, m[1])
	require.Equal(t, sum, m[6], "the sha256 of the 201")
	require.Empty(t, m[5], "a fresh push must not resume")
	tg.srv.Log.WaitFor(t, completedRE, 10*time.Second, tg.srv.Exited())
	require.NoError(t, os.Remove(src))

	verifyStart := time.Now()
	require.Equal(t, sum, uploadtest.SHA256File(t, tg.storedPath(name)), "SHA-256 of the stored file")
	verified := time.Since(verifyStart)
	p := tg.finish(t, name)
	t.Logf("phases: generate %s, push %s, verify %s", generated.Round(time.Millisecond),
		run.elapsed.Round(time.Millisecond), verified.Round(time.Millisecond))

	mbps := float64(size) / 1e6 / run.elapsed.Seconds()
	t.Logf("SUMMARY %s push-1GiB: 1024 MiB in %s = %.1f MB/s end to end (hash + send + complete; CLI's send rate %s MiB/s); peak RSS client %.1f MiB, %s",
		tg.kind, run.elapsed.Round(time.Millisecond), mbps, m[4], mib(clientRSS), p)
	t.Logf("(Rusage.Maxrss of the CLI's direct parent would read %.1f MiB: the test binary's peak, carried over exec)", mib(run.inheritedMaxRSS()))
	assert.Less(t, clientRSS, int64(maxClientRSS), "client peak RSS")
	assert.Less(t, p.server, int64(maxServerRSS), "server peak RSS")
	if p.front != 0 {
		assert.Less(t, p.front, int64(maxServerRSS), "Function URL emulator peak RSS")
	}
}

// partLogRE matches the local server's log line of a part PUT.
var partLogRE = regexp.MustCompile(`(?m)^time=(\S+) level=\S+ msg=request method=PUT path=/uploads/([A-Za-z0-9._~-]+)/parts/(\d+) status=(\d+) .*? duration=(\S+) `)

// partRequest is one part PUT as the local server logged it.
type partRequest struct {
	n       int
	status  int
	started time.Time
}

func partRequests(t *testing.T, logs, id string) []partRequest {
	t.Helper()
	var reqs []partRequest
	for _, m := range partLogRE.FindAllStringSubmatch(logs, -1) {
		if m[2] != id {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		require.NoError(t, err)
		d, err := time.ParseDuration(m[5])
		require.NoError(t, err)
		n, _ := strconv.Atoi(m[3])
		status, _ := strconv.Atoi(m[4])
		reqs = append(reqs, partRequest{n: n, status: status, started: at.Add(-d)})
	}
	return reqs
}

// caseResume interrupts a push once half the file is stored, and runs it
// again: it must keep the parts the first run saw stored (its state
// confirms them, and the server lists them with the same ETag) and send
// every other part, the ones the interrupt cut off too, even when the
// storage lists them (versitygw v1.8.0 keeps a cut-off body, zero-padded).
func caseResume(t *testing.T, tg *target) {
	const size = 512 << 20
	const parts = size / partSize
	src := filepath.Join(t.TempDir(), "resume.bin")
	sum := uploadtest.File{Seed: 2, Size: size}.WriteFile(t, src)
	name := "e2e/resume.bin"
	cache := t.TempDir()
	args := []string{"push", "--direct-max", "4MiB", "--name", name, src, tg.srv.URL}

	run1 := startCLI(t, cache, token, args...)
	var id string
	waitUntil(t, 2*time.Minute, 5*time.Millisecond, "the CLI to create the upload", run1.exited, func() bool {
		if ids := stateIDs(t, cache); len(ids) == 1 {
			id = ids[0]
			return true
		}
		return false
	})
	var half wire.UploadState
	waitUntil(t, 2*time.Minute, 5*time.Millisecond, "half the file to be stored", run1.exited, func() bool {
		half = tg.api.status(t, id)
		return receivedBytes(half) >= size/2
	})
	require.NoError(t, run1.cmd.Process.Signal(os.Interrupt))
	code1, rss1 := run1.wait(t, time.Minute)
	out1 := run1.out.String()
	require.Equal(t, 130, code1, out1)
	require.Contains(t, out1, "run the same command again to resume")
	require.Equal(t, []string{id}, stateIDs(t, cache), "the interrupted run keeps its state")
	r1 := settledStatus(t, tg, id)
	require.Equal(t, parts, r1.PartCount)
	require.Equal(t, int64(partSize), r1.PartSize)
	require.Less(t, len(r1.Received), parts, "interrupted before every part was stored")
	require.GreaterOrEqual(t, receivedBytes(r1), int64(size/2))
	// The parts the first run saw stored, as its state confirms them: the
	// server lists each of them with that ETag, and they hold the file's
	// bytes. Parts the server lists besides may have been cut off by the
	// interrupt and kept anyway; the client must not trust those.
	confirmed := stateConfirmed(t, cache)
	require.NotEmpty(t, confirmed, "the interrupted run confirmed no part")
	listed := map[int]string{}
	for _, p := range r1.Received {
		listed[p.Number] = p.ETag
	}
	for n, etag := range confirmed {
		require.Contains(t, listed, n, "part %d is confirmed but not listed", n)
		require.Equal(t, strings.Trim(etag, `"`), strings.Trim(listed[n], `"`), "part %d's ETag, confirmed vs listed", n)
	}
	corrupt := corruptParts(t, tg, src, r1)
	for n, d := range corrupt {
		require.NotContains(t, confirmed, n, "part %d is confirmed but holds other bytes than the file's: %s", n, d)
	}
	var cutOff []string
	for _, n := range slices.Sorted(maps.Keys(corrupt)) {
		if _, ok := listed[n]; ok {
			cutOff = append(cutOff, fmt.Sprintf("part %d: %s", n, corrupt[n]))
		}
	}
	if len(cutOff) > 0 {
		t.Logf("NOTE: the storage lists %d parts the interrupt cut off, which the client did not confirm and sends again: %q", len(cutOff), cutOff)
	}
	toSend := int64(parts-len(confirmed)) * partSize

	run2Start := time.Now()
	run2 := startCLI(t, cache, token, args...)
	code2, rss2 := run2.wait(t, 5*time.Minute)
	out2 := run2.out.String()
	if code2 != 0 {
		require.Equal(t, 0, code2, "%s\nthe assembled upload vs the file: %q", out2, stagingDiff(t, tg, id, src, parts))
	}
	m := pushedRE.FindStringSubmatch(out2)
	require.NotNil(t, m, "no multipart push line in:\n%s", out2)
	require.Equal(t, sum, m[6], "the sha256 of the 201")
	require.NotEmpty(t, m[5], "the second run must resume:\n%s", out2)
	sentNow := parseSize(t, m[5])
	// The CLI prints MiB with one decimal.
	const rounding = 0.05 * (1 << 20)
	require.Positive(t, sentNow)
	require.LessOrEqual(t, sentNow, float64(toSend)+rounding,
		"the second run sent more than the parts the first had not confirmed (%d of %d parts confirmed, %d listed)", len(confirmed), parts, len(r1.Received))
	require.Empty(t, stateIDs(t, cache), "a finished push leaves no state")
	require.NoError(t, os.Remove(src))

	var sent1, sent2 []int
	if tg.kind == "dir" {
		// The server's log tells the runs' part PUTs apart by when they
		// started: the second run hashes 512 MiB before it sends any.
		var stored1, stored2 []int
		var bytes2 int64
		for _, r := range partRequests(t, tg.srv.Log.String(), id) {
			if r.started.Before(run2Start) {
				sent1 = append(sent1, r.n)
				if r.status == http.StatusOK {
					stored1 = append(stored1, r.n)
				}
				continue
			}
			sent2 = append(sent2, r.n)
			bytes2 += partSize
			if r.status == http.StatusOK {
				stored2 = append(stored2, r.n)
			}
		}
		for _, n := range sent2 {
			require.NotContains(t, confirmed, n, "part %d was sent again though the first run had confirmed it", n)
		}
		var unconfirmed []int
		for n := 1; n <= parts; n++ {
			if _, ok := confirmed[n]; !ok {
				unconfirmed = append(unconfirmed, n)
			}
		}
		require.Equal(t, unconfirmed, slices.Compact(slices.Sorted(slices.Values(sent2))), "parts the second run sent")
		all := append(slices.Clone(stored1), stored2...)
		sort.Ints(all)
		require.Equal(t, seq(parts), slices.Compact(all), "parts stored by the two runs")
		assert.InDelta(t, float64(bytes2), sentNow, rounding, "bytes the CLI says it sent vs the server's part PUTs")
	}

	require.Equal(t, sum, uploadtest.SHA256File(t, tg.storedPath(name)), "SHA-256 of the stored file")
	p := tg.finish(t, name)

	logParts := ""
	if tg.kind == "dir" {
		logParts = fmt.Sprintf("; server log: run 1 sent %d part PUTs, run 2 %d", len(sent1), len(sent2))
	}
	t.Logf("SUMMARY %s interrupt-resume: 512 MiB, SIGINT at %d/%d parts held (%d after exit 130, %d confirmed by the client, %d cut off); run 2 sent %s in %s (CLI's send rate %s MiB/s)%s; peak RSS client %.1f / %.1f MiB (run 1 / 2), %s",
		tg.kind, len(half.Received), parts, len(r1.Received), len(confirmed), len(cutOff), m[5], run2.elapsed.Round(time.Millisecond), m[4], logParts, mib(rss1), mib(rss2), p)
	assert.Less(t, max(rss1, rss2), int64(maxClientRSS), "client peak RSS")
	assert.Less(t, p.server, int64(maxServerRSS), "server peak RSS")
	if p.front != 0 {
		assert.Less(t, p.front, int64(maxServerRSS), "Function URL emulator peak RSS")
	}
}

// corruptParts compares each part the store holds for the upload with the
// source file, byte for byte, where the store keeps it, and describes the
// parts that differ, by number.
func corruptParts(t *testing.T, tg *target, src string, st wire.UploadState) map[int]string {
	t.Helper()
	// The store may still be finishing a part cut off by the interrupt
	// (versitygw links it after the client has gone), so storage can hold
	// more parts than the snapshot listed: all are checked.
	files := partFiles(t, tg, st.ID, st.PartSize)
	for _, p := range st.Received {
		require.Contains(t, files, p.Number, "part %d is listed but not in storage", p.Number)
	}
	f, err := os.Open(src)
	require.NoError(t, err)
	defer f.Close()
	bad := map[int]string{}
	for n, p := range files {
		if d := diffFileRange(t, p.path, p.off, st.PartSize, io.NewSectionReader(f, int64(n-1)*st.PartSize, st.PartSize)); d != "" {
			bad[n] = d
		}
	}
	return bad
}

// partRange is where the store keeps one part: a range of a file.
type partRange struct {
	path string
	off  int64
}

// partFiles finds where the store keeps the parts of upload id, by number:
// the directory store in .spillway-uploads/{id}/data at the part's offset,
// marked received by an empty .spillway-uploads/{id}/NNNNN-{etag};
// versitygw (posix backend) in {bucket}/.sgwtmp/multipart/{hash}/{upload}/N,
// which holds only this case's upload.
func partFiles(t *testing.T, tg *target, id string, partSize int64) map[int]partRange {
	t.Helper()
	var root string
	var re *regexp.Regexp
	if tg.kind == "dir" {
		root, re = filepath.Join(tg.dir, ".spillway-uploads", id), regexp.MustCompile(`^(\d{5})-[0-9a-f]+$`)
	} else {
		root, re = filepath.Join(tg.gw.Dir, tg.gw.Bucket, ".sgwtmp", "multipart"), regexp.MustCompile(`^(\d+)$`)
	}
	files := map[int]partRange{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if m := re.FindStringSubmatch(d.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			require.NotContains(t, files, n, "part %d twice: %s", n, p)
			files[n] = partRange{path: p}
			if tg.kind == "dir" {
				files[n] = partRange{path: filepath.Join(root, "data"), off: int64(n-1) * partSize}
			}
		}
		return nil
	}))
	return files
}

// diffBytes compares got with want, streaming, and describes how they
// differ: "" when they hold the same bytes.
func diffBytes(t *testing.T, got, want io.Reader) string {
	t.Helper()
	gb, wb := make([]byte, 1<<20), make([]byte, 1<<20)
	var off, gotLen, wantLen int64
	first := int64(-1) // offset of the first difference
	zeroTail := true   // got holds only zeros from there on
	for {
		gn, gerr := io.ReadFull(got, gb)
		wn, werr := io.ReadFull(want, wb)
		for _, err := range []error{gerr, werr} {
			require.True(t, err == nil || err == io.EOF || err == io.ErrUnexpectedEOF, "%v", err)
		}
		gotLen, wantLen = gotLen+int64(gn), wantLen+int64(wn)
		tail := gb[:gn]
		if first < 0 {
			k := min(gn, wn)
			if bytes.Equal(gb[:k], wb[:k]) && gn == wn {
				tail = nil
			} else {
				i := 0
				for i < k && gb[i] == wb[i] {
					i++
				}
				first, tail = off+int64(i), gb[i:gn]
			}
		}
		if len(bytes.TrimLeft(tail, "\x00")) > 0 {
			zeroTail = false
		}
		off += int64(max(gn, wn))
		if gn < len(gb) && wn < len(wb) {
			break
		}
	}
	if first < 0 {
		return ""
	}
	rest := "other bytes"
	if zeroTail {
		rest = "zeros"
	}
	return fmt.Sprintf("%d bytes stored, %d expected; the first %d (%.1f MiB) match, then %s", gotLen, wantLen, first, mib(first), rest)
}

// diffFileRange is diffBytes for size bytes at off in the file at path.
func diffFileRange(t *testing.T, path string, off, size int64, want io.Reader) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	return diffBytes(t, io.NewSectionReader(f, off, size), want)
}

// settledStatus polls the upload's status until its received parts hold
// still for a few polls in a row: a store may still be finishing a part
// that an interrupt cut off (versitygw links it after the client has
// gone). Polling is the only view into another process's progress.
func settledStatus(t *testing.T, tg *target, id string) wire.UploadState {
	t.Helper()
	const still = 5
	st := tg.api.status(t, id)
	n := 0
	waitUntil(t, 15*time.Second, 50*time.Millisecond, "the upload's parts to settle", nil, func() bool {
		next := tg.api.status(t, id)
		if slices.Equal(next.Received, st.Received) {
			n++
		} else {
			st, n = next, 0
		}
		return n >= still
	})
	return st
}

// stagingDiff compares the S3 store's assembled staging object for the
// upload (<prefix>.spillway/uploads/<id>.object, docs/MULTIPART.md), when
// there is one, with the source file, part by part.
func stagingDiff(t *testing.T, tg *target, id, src string, parts int) []string {
	t.Helper()
	if tg.kind == "dir" {
		return nil
	}
	staging := tg.gw.ObjectPath(".spillway/uploads/" + id + ".object")
	if _, err := os.Stat(staging); err != nil {
		return []string{fmt.Sprintf("no staging object: %v", err)}
	}
	f, err := os.Open(src)
	require.NoError(t, err)
	defer f.Close()
	var bad []string
	for n := 1; n <= parts; n++ {
		off := int64(n-1) * partSize
		if d := diffFileRange(t, staging, off, partSize, io.NewSectionReader(f, off, partSize)); d != "" {
			bad = append(bad, fmt.Sprintf("part %d of the assembled object: %s", n, d))
		}
	}
	return bad
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

// parseSize reads a size as the CLI prints it: "123.4 MiB".
func parseSize(t *testing.T, s string) float64 {
	t.Helper()
	num, unit, ok := strings.Cut(s, " ")
	require.True(t, ok, s)
	v, err := strconv.ParseFloat(num, 64)
	require.NoError(t, err, s)
	i := strings.Index("BKMGT", unit[:1])
	require.GreaterOrEqual(t, i, 0, s)
	for range i {
		v *= 1024
	}
	return v
}

// smallSize is three parts, the last one short, for the cases that speak
// HTTP themselves.
const smallSize = 2*partSize + 8<<20 + 12345

// createAndSend creates an upload of the file at src, declaring sum and
// crc (the SHA-256 and CRC64NVME; "" declares none), and sends the parts
// numbered in send. It returns the upload, the ETags of the parts sent,
// and the part PUTs' rate in MB/s.
func createAndSend(t *testing.T, tg *target, src, name, sum, crc string, send ...int) (wire.CreatedUpload, []wire.CompletePart, float64) {
	t.Helper()
	req := map[string]any{"name": name, "size": smallSize}
	if sum != "" {
		req["sha256"] = sum
	}
	if crc != "" {
		req["crc64nvme"] = crc
	}
	var up wire.CreatedUpload
	tg.api.callJSON(t, http.MethodPost, "/uploads", req, http.StatusCreated, &up)
	require.NotEmpty(t, up.ID)
	require.Equal(t, sum, up.SHA256)
	require.Equal(t, 3, up.PartCount)
	require.Len(t, up.Parts, 3)
	require.Zero(t, up.NextFrom)

	f, err := os.Open(src)
	require.NoError(t, err)
	defer f.Close()
	var etags []wire.CompletePart
	var bytes int64
	start := time.Now()
	for _, n := range send {
		p := up.Parts[n-1]
		require.Equal(t, n, p.Number)
		etags = append(etags, wire.CompletePart{Number: n, ETag: tg.api.putPart(t, f, up.PartSize, p)})
		bytes += p.Size
	}
	mbps := float64(bytes) / 1e6 / time.Since(start).Seconds()

	st := tg.api.status(t, up.ID)
	var got []int
	for _, p := range st.Received {
		got = append(got, p.Number)
	}
	require.Equal(t, send, got, "parts the server reports")
	return up, etags, mbps
}

// caseBadChecksum completes an upload whose declared SHA-256 and CRC64NVME
// are not the file's: 400 bad_checksum, and nothing stored or kept. On S3
// the CRC64NVME is what S3 refuses (the SHA-256 is only declared there).
func caseBadChecksum(t *testing.T, tg *target) {
	src := filepath.Join(t.TempDir(), "bad.bin")
	sum := uploadtest.File{Seed: 3, Size: smallSize}.WriteFile(t, src)
	// The file's digest with its last hex digit changed.
	wrong := sum[:63] + "0"
	if sum[63] == '0' {
		wrong = sum[:63] + "1"
	}
	require.NotEqual(t, sum, wrong)
	name := "e2e/bad-checksum.bin"
	tg.attempted = append(tg.attempted, name)

	crc, err := base64.StdEncoding.DecodeString(fileCRC64NVME(t, src))
	require.NoError(t, err)
	crc[7] ^= 1
	up, etags, mbps := createAndSend(t, tg, src, name, wrong, base64.StdEncoding.EncodeToString(crc), 1, 2, 3)
	tg.api.requireError(t, http.MethodPost, "/uploads/"+up.ID+"/complete", map[string]any{"parts": etags},
		http.StatusBadRequest, "bad_checksum")
	// The upload and its parts are discarded, and nothing is published.
	tg.api.requireError(t, http.MethodGet, "/uploads/"+up.ID, nil, http.StatusNotFound, "upload_not_found")
	tg.api.requireError(t, http.MethodPost, "/uploads/"+up.ID+"/complete", map[string]any{"parts": etags},
		http.StatusNotFound, "upload_not_found")
	tg.api.requireError(t, http.MethodGet, "/files/"+name, nil, http.StatusNotFound, "not_found")
	assert.NoFileExists(t, tg.storedPath(name))
	p := tg.finish(t)
	t.Logf("SUMMARY %s bad-checksum: %.1f MiB in 3 parts at %.1f MB/s (test's HTTP client), 400 bad_checksum, nothing stored; peak RSS %s",
		tg.kind, mib(smallSize), mbps, p)
	assert.Less(t, p.server, int64(maxServerRSS), "server peak RSS")
}

// caseAbort sends two parts of three and aborts: every part goes.
func caseAbort(t *testing.T, tg *target) {
	src := filepath.Join(t.TempDir(), "abort.bin")
	uploadtest.File{Seed: 4, Size: smallSize}.WriteFile(t, src)
	name := "e2e/abort.bin"
	tg.attempted = append(tg.attempted, name)

	up, etags, mbps := createAndSend(t, tg, src, name, "", "", 1, 2)
	status, body := tg.api.call(t, http.MethodDelete, "/uploads/"+up.ID, nil)
	require.Equal(t, http.StatusNoContent, status, "%s", body)
	tg.api.requireError(t, http.MethodGet, "/uploads/"+up.ID, nil, http.StatusNotFound, "upload_not_found")
	tg.api.requireError(t, http.MethodGet, "/uploads/"+up.ID+"/parts", nil, http.StatusNotFound, "upload_not_found")
	tg.api.requireError(t, http.MethodDelete, "/uploads/"+up.ID, nil, http.StatusNotFound, "upload_not_found")
	tg.api.requireError(t, http.MethodPost, "/uploads/"+up.ID+"/complete", map[string]any{"parts": etags},
		http.StatusNotFound, "upload_not_found")

	// The last part's URL, handed out before the abort, stores nothing:
	// 404 before the body (Expect: 100-continue), or for versitygw, which
	// asks for the body before it looks, a connection it closes rather
	// than read a body it refuses. finish checks that nothing was stored
	// either way.
	f, err := os.Open(src)
	require.NoError(t, err)
	defer f.Close()
	last := up.Parts[2]
	req, err := http.NewRequest(http.MethodPut, last.URL, io.NewSectionReader(f, int64(last.Number-1)*up.PartSize, last.Size))
	require.NoError(t, err)
	req.ContentLength = last.Size
	req.Header.Set("Expect", "100-continue")
	for k, v := range last.Headers {
		req.Header.Set(k, v)
	}
	resp, err := tg.api.hc.Do(req)
	if err != nil && tg.kind != "dir" {
		require.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE),
			"a part PUT after the abort: %v", err)
		t.Logf("a part PUT after the abort: the server closed the connection (%v)", err)
	} else {
		require.NoError(t, err, "a part PUT after the abort")
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a part PUT after the abort")
	}

	p := tg.finish(t)
	t.Logf("SUMMARY %s abort: 2 of 3 parts (32 MiB) at %.1f MB/s (test's HTTP client), 204, then 404s, nothing left; peak RSS %s",
		tg.kind, mbps, p)
	assert.Less(t, p.server, int64(maxServerRSS), "server peak RSS")
}

// caseTruncatedPart sends one part's body halfway and closes the
// connection, as an interrupted client does. Storage that refuses the
// cut-off part (the directory store, S3) must let the client send it again
// and complete; storage that keeps it as if whole (versitygw v1.8.0 pads
// it with zeros to its Content-Length) must not get its bytes published:
// the completion sees they are not the declared SHA-256's, 400
// bad_checksum, and the upload is discarded (docs/MULTIPART.md).
func caseTruncatedPart(t *testing.T, tg *target) {
	src := filepath.Join(t.TempDir(), "truncated.bin")
	sum := uploadtest.File{Seed: 5, Size: smallSize}.WriteFile(t, src)
	name := "e2e/truncated.bin"
	tg.attempted = append(tg.attempted, name)

	up, etags, _ := createAndSend(t, tg, src, name, sum, fileCRC64NVME(t, src), 1, 3)
	f, err := os.Open(src)
	require.NoError(t, err)
	defer f.Close()
	cut := up.Parts[1]
	truncatedPut(t, cut, io.NewSectionReader(f, int64(cut.Number-1)*up.PartSize, cut.Size/2))
	st := settledStatus(t, tg, up.ID)
	i := slices.IndexFunc(st.Received, func(p wire.Part) bool { return p.Number == cut.Number })

	if i < 0 {
		// Refused: send it whole, and complete.
		etags = append(etags, wire.CompletePart{Number: cut.Number, ETag: tg.api.putPart(t, f, up.PartSize, cut)})
		slices.SortFunc(etags, func(a, b wire.CompletePart) int { return a.Number - b.Number })
		var done wire.UploadResponse
		tg.api.callJSON(t, http.MethodPost, "/uploads/"+up.ID+"/complete", map[string]any{"parts": etags}, http.StatusCreated, &done)
		require.Len(t, done.Files, 1)
		require.Equal(t, sum, done.Files[0].SHA256)
		require.Equal(t, sum, uploadtest.SHA256File(t, tg.storedPath(name)), "SHA-256 of the stored file")
		p := tg.finish(t, name)
		t.Logf("SUMMARY %s truncated-part: the cut-off part was refused, sent again, 201; peak RSS %s", tg.kind, p)
		assert.Less(t, p.server, int64(maxServerRSS), "server peak RSS")
		return
	}

	// Kept as if whole.
	var kept string
	if r, ok := partFiles(t, tg, up.ID, up.PartSize)[cut.Number]; ok {
		kept = diffFileRange(t, r.path, r.off, cut.Size, io.NewSectionReader(f, int64(cut.Number-1)*up.PartSize, cut.Size))
	}
	t.Logf("NOTE: the storage kept part %d, cut off after %d of its %d bytes, and lists it as %d bytes (%s)",
		cut.Number, cut.Size/2, cut.Size, st.Received[i].Size, kept)
	etags = append(etags, wire.CompletePart{Number: cut.Number, ETag: st.Received[i].ETag})
	slices.SortFunc(etags, func(a, b wire.CompletePart) int { return a.Number - b.Number })
	tg.api.requireError(t, http.MethodPost, "/uploads/"+up.ID+"/complete", map[string]any{"parts": etags},
		http.StatusBadRequest, "bad_checksum")
	tg.api.requireError(t, http.MethodGet, "/uploads/"+up.ID, nil, http.StatusNotFound, "upload_not_found")
	p := tg.finish(t)
	t.Logf("SUMMARY %s truncated-part: the cut-off part was kept by the storage; 400 bad_checksum, nothing stored; peak RSS %s", tg.kind, p)
	assert.Less(t, p.server, int64(maxServerRSS), "server peak RSS")
}

// truncatedPut sends a part's request with its full Content-Length but
// only the bytes of body, then closes its side of the connection (FIN,
// as a client that is interrupted mid-body does), and reads whatever the
// server answers until it closes too.
func truncatedPut(t *testing.T, p wire.PartURL, body io.Reader) {
	t.Helper()
	u, err := url.Parse(p.URL)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	var head strings.Builder
	fmt.Fprintf(&head, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", u.RequestURI(), u.Host, p.Size)
	for k, v := range p.Headers {
		fmt.Fprintf(&head, "%s: %s\r\n", k, v)
	}
	head.WriteString("\r\n")
	_, err = io.WriteString(conn, head.String())
	require.NoError(t, err)
	_, err = io.Copy(conn, body)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	answer, _ := io.ReadAll(io.LimitReader(conn, 64<<10)) // any end will do: a reset, EOF
	status, _, _ := strings.Cut(string(answer), "\r\n")
	t.Logf("a part PUT cut off at half: the server answered %q", status)
}
