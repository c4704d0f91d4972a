package client_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"spillway/api"
	"spillway/apierr"
	"spillway/client"
	"spillway/spool"
	"spillway/wire"
)

// testCtx bounds every push, so that a bug hangs no test for long.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// writeFile writes size random bytes to a file in a new temp directory.
func writeFile(t *testing.T, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p, data
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// newClient returns a client of f with fast retries and its own state
// directory, and the directory.
func newClient(t *testing.T, f *fake, opts client.Options) (*client.Client, string) {
	t.Helper()
	if opts.StateDir == "" && !opts.NoResume {
		opts.StateDir = t.TempDir()
	}
	if opts.RetryWait == 0 {
		opts.RetryWait = time.Millisecond
	}
	if opts.DirectMax == 0 {
		opts.DirectMax = 2048
	}
	if opts.PartSize == 0 {
		opts.PartSize = f.partSize
	}
	if opts.Token == "" && f.token != "" {
		opts.Token = f.token
	}
	c, err := client.New(f.srv.URL, opts)
	require.NoError(t, err)
	return c, opts.StateDir
}

func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	return m
}

// progressLog records Progress calls and fails the test if two overlap.
type progressLog struct {
	mu    sync.Mutex
	busy  bool
	calls []client.Progress
	t     *testing.T
}

func (p *progressLog) record(pr client.Progress) {
	p.mu.Lock()
	if p.busy {
		p.t.Error("Progress called concurrently")
	}
	p.busy = true
	p.calls = append(p.calls, pr)
	p.busy = false
	p.mu.Unlock()
}

func (p *progressLog) last() client.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[len(p.calls)-1]
}

func TestPushDirect(t *testing.T) {
	f := newFake(t)
	f.token = "s3cret"
	path, data := writeFile(t, "report.pdf", 3000)
	pl := &progressLog{t: t}
	c, stateDir := newClient(t, f, client.Options{Progress: pl.record, DirectMax: 3000})

	res, err := c.Push(testCtx(t), path, "2026/report.pdf")
	require.NoError(t, err)
	assert.Equal(t, "2026/report.pdf", res.Name)
	assert.Equal(t, int64(3000), res.Size)
	assert.Equal(t, sumOf(data), res.SHA256)
	assert.Equal(t, wire.SpoolMemory, res.Spool)
	assert.False(t, res.Multipart)
	assert.Equal(t, int64(3000), res.Sent)
	f.assertFile(t, "2026/report.pdf", data)
	assert.Equal(t, client.Progress{Path: path, Name: "2026/report.pdf", Size: 3000, Stage: client.StageDone, Bytes: 3000}, pl.last())
	assert.Empty(t, stateFiles(t, stateDir), "a direct PUT keeps no state")
	f.locked(func() { assert.Zero(t, f.creates) })
}

func TestPushDirectEmptyAndBaseName(t *testing.T) {
	f := newFake(t)
	path, _ := writeFile(t, "empty.txt", 0)
	c, _ := newClient(t, f, client.Options{DirectMax: -1})

	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err, "an empty file goes with one PUT even when every other goes in parts")
	assert.Equal(t, "empty.txt", res.Name)
	assert.Equal(t, sumOf(nil), res.SHA256)
	got, ok := f.file("empty.txt")
	require.True(t, ok)
	assert.Empty(t, got)
}

func TestPushMultipart(t *testing.T) {
	f := newFake(t)
	f.token = "s3cret"
	f.pageSize = 2
	const parts = 7
	size := parts*1024 - 100
	path, data := writeFile(t, "big.iso", size)

	// Parallel: part 1 is not answered before another part has arrived.
	second := make(chan struct{})
	var once sync.Once
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		if n == 1 {
			select {
			case <-second:
			case <-r.Context().Done():
			}
			return false
		}
		once.Do(func() { close(second) })
		return false
	}
	pl := &progressLog{t: t}
	c, stateDir := newClient(t, f, client.Options{Parallel: 4, Progress: pl.record})

	res, err := c.Push(testCtx(t), path, "isos/big.iso")
	require.NoError(t, err)
	assert.True(t, res.Multipart)
	assert.False(t, res.Resumed)
	assert.Equal(t, "isos/big.iso", res.Name)
	assert.Equal(t, sumOf(data), res.SHA256)
	assert.Equal(t, wire.SpoolParts, res.Spool)
	assert.Equal(t, int64(size), res.Sent)
	assert.NotEmpty(t, res.UploadID)
	f.assertFile(t, "isos/big.iso", data)

	puts := f.putsOf(res.UploadID)
	slices.Sort(puts)
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, puts, "each part once")
	// The create response held parts 1 and 2; the rest came in pages of two,
	// each from where the one before said the next starts.
	f.locked(func() {
		assert.ElementsMatch(t, []int{3, 5, 7}, f.pages)
		assert.Empty(t, f.partAuth)
	})
	assert.Equal(t, client.Progress{Path: path, Name: "isos/big.iso", Size: int64(size), Stage: client.StageDone, Bytes: int64(size)}, pl.last())
	assert.Empty(t, stateFiles(t, stateDir), "the state goes once the upload is complete")
}

func TestPushMultipartRelativePartURLs(t *testing.T) {
	f := newFake(t)
	f.relative = true
	path, data := writeFile(t, "a.bin", 5000)
	c, _ := newClient(t, f, client.Options{})

	_, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	f.assertFile(t, "a.bin", data)
}

func TestPartRetries(t *testing.T) {
	f := newFake(t)
	path, data := writeFile(t, "a.bin", 6*1024)
	failures := map[int]int{3: 2, 5: 1} // part: how often it fails
	var mu sync.Mutex
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		mu.Lock()
		defer mu.Unlock()
		if failures[n] == 0 {
			return false
		}
		failures[n]--
		if n == 5 {
			// A connection that breaks mid-part.
			conn, _, err := http.NewResponseController(w).Hijack()
			require.NoError(t, err)
			conn.Close()
			return true
		}
		writeErr(w, http.StatusServiceUnavailable, "throttled", "slow down")
		return true
	}
	pl := &progressLog{t: t}
	c, _ := newClient(t, f, client.Options{Progress: pl.record})

	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	f.assertFile(t, "a.bin", data)
	puts := f.putsOf(res.UploadID)
	assert.Equal(t, 3, count(puts, 3))
	assert.Equal(t, 2, count(puts, 5))
	assert.Equal(t, int64(len(data)), pl.last().Bytes, "failed attempts are taken back from the progress")
}

func count(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestPartRetriesAreBounded(t *testing.T) {
	f := newFake(t)
	path, _ := writeFile(t, "a.bin", 3*1024)
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		if n != 2 {
			return false
		}
		writeErr(w, http.StatusInternalServerError, "internal", "broken")
		return true
	}
	c, stateDir := newClient(t, f, client.Options{Attempts: 3})

	_, err := c.Push(testCtx(t), path, "")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusInternalServerError, apiErr.Status)
	assert.Equal(t, "internal", apiErr.Code)
	assert.Equal(t, "req-internal", apiErr.RequestID)
	assert.Equal(t, 3, count(f.putsOf("up1"), 2))
	assert.Len(t, stateFiles(t, stateDir), 1, "a failed push can be resumed")
}

// inFlight counts the requests a transport has under way.
type inFlight struct {
	mu       sync.Mutex
	now, max int
	next     http.RoundTripper
}

func (c *inFlight) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.now++
	c.max = max(c.max, c.now)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}()
	return c.next.RoundTrip(r)
}

func TestPartsInFlightAreBounded(t *testing.T) {
	const parallel, parts = 3, 10
	f := newFake(t)
	path, data := writeFile(t, "a.bin", parts*1024)
	// The first parts wait for one another, so that the bound is reached.
	arrived, all := 0, make(chan struct{})
	var mu sync.Mutex
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		mu.Lock()
		if arrived++; arrived == parallel {
			close(all)
		}
		first := arrived <= parallel
		mu.Unlock()
		if first {
			<-all
		}
		return false
	}
	counter := &inFlight{next: http.DefaultTransport.(*http.Transport).Clone()}
	c, _ := newClient(t, f, client.Options{Parallel: parallel, PartHTTPClient: &http.Client{Transport: counter}})

	_, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	f.assertFile(t, "a.bin", data)
	counter.mu.Lock()
	defer counter.mu.Unlock()
	assert.Equal(t, parallel, counter.max)
}

// TestFailedPartStopsTheOthers checks that a part refused while others
// are in flight ends the push at once: the others are cancelled, not
// waited for, and nothing of the push is left running.
func TestFailedPartStopsTheOthers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFake(t)
	path, _ := writeFile(t, "a.bin", 8*1024)
	release, held := make(chan struct{}), make(chan struct{}, 3)
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		switch n {
		case 2:
			// Refused once the others are in flight.
			for range 3 {
				<-held
			}
			writeErr(w, http.StatusBadRequest, "upload_mismatch", "no")
			return true
		case 1, 3, 4:
			// Never answered while the push runs.
			held <- struct{}{}
			<-release
			return true
		}
		return false
	}
	api := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	parts := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer func() {
		close(release)
		api.CloseIdleConnections()
		parts.CloseIdleConnections()
		f.srv.Close()
	}()
	c, _ := newClient(t, f, client.Options{Parallel: 4, HTTPClient: api, PartHTTPClient: parts})

	_, err := c.Push(testCtx(t), path, "")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "upload_mismatch", apiErr.Code)
	puts := f.putsOf("up1")
	assert.ElementsMatch(t, []int{1, 2, 3, 4}, puts, "no part is sent after the refusal")
}

func TestRefusedPartIsNotRetried(t *testing.T) {
	f := newFake(t)
	path, _ := writeFile(t, "a.bin", 3*1024)
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		writeErr(w, http.StatusBadRequest, "upload_mismatch", "no")
		return true
	}
	c, _ := newClient(t, f, client.Options{Parallel: 1})

	_, err := c.Push(testCtx(t), path, "")
	require.Error(t, err)
	assert.Equal(t, []int{1}, f.putsOf("up1"))
}

func TestExpiredURLsAreRefreshed(t *testing.T) {
	f := newFake(t)
	f.staleFirst = true
	path, data := writeFile(t, "a.bin", 4*1024)
	c, _ := newClient(t, f, client.Options{Attempts: 1})

	_, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err, "a 403 is an expired URL: fetch another, without spending an attempt")
	f.assertFile(t, "a.bin", data)
	f.locked(func() {
		assert.Positive(t, f.refused)
		assert.NotEmpty(t, f.pages)
	})
}

func TestShortLivedURLsAreUsed(t *testing.T) {
	f := newFake(t)
	f.ttl = time.Minute
	path, _ := writeFile(t, "a.bin", 3*1024)
	c, _ := newClient(t, f, client.Options{})

	_, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	f.locked(func() { assert.Empty(t, f.pages, "URLs good for a minute need no refresh for a part of a second") })
}

func TestStorageErrorsAreParsed(t *testing.T) {
	f := newFake(t)
	path, _ := writeFile(t, "a.bin", 3*1024)
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>BadDigest</Code><Message>The Content-MD5 you specified did not match what we received.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>`))
		return true
	}
	c, _ := newClient(t, f, client.Options{Parallel: 1})

	_, err := c.Push(testCtx(t), path, "")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, client.Error{Status: 400, Code: "BadDigest", Message: "The Content-MD5 you specified did not match what we received.",
		RequestID: "4442587FB7D0A2F9"}, *apiErr)
	assert.Equal(t, []int{1}, f.putsOf("up1"), "a refusal is not retried")
}

// interrupt runs a push of path that its context stops once the first
// confirmed parts are stored and answered and the next inFlight parts (as
// many as it sends at once) are in flight: kept by the fake as storage
// keeps a body cut off by an interrupt (keep), or not stored. It returns
// the state directory, which holds the interrupted run's state file, and
// requires that file to be what it was while the parts were in flight, so
// that the next run resumes from what a client killed then would leave.
func interrupt(t *testing.T, f *fake, path string, confirmed, inFlight int, keep bool) string {
	t.Helper()
	held := make(chan struct{})
	holding := 0
	// Runs with the fake's lock held. The next run tags its part PUTs "2".
	hold := func(id string, n int, run string) bool {
		if run == "2" || n <= confirmed {
			return false
		}
		if holding++; holding == inFlight {
			close(held)
		}
		return true
	}
	if keep {
		f.cutOff = hold
	} else {
		f.gate = func(id string, n int, run string) bool { return !hold(id, n, run) }
	}
	c, stateDir := newClient(t, f, client.Options{Parallel: inFlight})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Push(ctx, path, "")
		done <- err
	}()
	// Parts go out in order and a worker takes its next part only once
	// its last is done, so with every worker held, the parts before are
	// all answered.
	select {
	case <-held:
	case err := <-done:
		require.FailNow(t, "the push ended before its parts were held", "%v", err)
	}
	files := stateFiles(t, stateDir)
	require.Len(t, files, 1)
	during, err := os.ReadFile(files[0])
	require.NoError(t, err)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	after, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.JSONEq(t, string(during), string(after), "the run wrote nothing on its way out: a kill leaves the same state")
	entries, err := os.ReadDir(stateDir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left in the state directory")
	assert.Equal(t, seq(confirmed), confirmedIn(t, files[0]), "the parts the state confirms")
	return stateDir
}

// confirmedIn returns the part numbers a state file confirms.
func confirmedIn(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var st struct {
		Confirmed []struct {
			N    int    `json:"n"`
			ETag string `json:"etag"`
		} `json:"confirmed"`
	}
	require.NoError(t, json.Unmarshal(b, &st), "%s", b)
	var ns []int
	for _, p := range st.Confirmed {
		assert.NotEmpty(t, p.ETag, "part %d", p.N)
		ns = append(ns, p.N)
	}
	return ns
}

// seqFrom returns from, from+1, …, to.
func seqFrom(from, to int) []int {
	var s []int
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

func seq(n int) []int { return seqFrom(1, n) }

// resume pushes path again from stateDir, tagging its part PUTs "2", and
// returns its result and the parts it sent, in order.
func resume(t *testing.T, f *fake, stateDir, path string, opts client.Options) (client.Result, []int) {
	t.Helper()
	opts.StateDir = stateDir
	opts.PartHTTPClient = &http.Client{Transport: tagRun("2")}
	c, _ := newClient(t, f, opts)
	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	return res, slices.Sorted(slices.Values(f.putsOf(res.UploadID, "2")))
}

func TestResumeAfterCancel(t *testing.T) {
	f := newFake(t)
	f.token = "s3cret"
	const parts = 12
	path, data := writeFile(t, "big.bin", parts*1024)

	// Parts 1-3 are stored and answered; 4-6 are in flight when the push
	// is stopped, and the fake keeps them anyway, zero-padded, as
	// versitygw keeps a part whose body was cut off.
	stateDir := interrupt(t, f, path, 3, 3, true)
	_, ok := f.file("big.bin")
	require.False(t, ok)
	f.locked(func() { require.Equal(t, seq(6), slices.Sorted(maps.Keys(f.uploads["up1"].parts))) })

	pl := &progressLog{t: t}
	res, again := resume(t, f, stateDir, path, client.Options{Parallel: 3, Progress: pl.record})
	assert.True(t, res.Resumed)
	assert.Equal(t, "up1", res.UploadID)
	f.locked(func() { assert.Equal(t, 1, f.creates, "the upload was resumed, not created again") })
	assert.Equal(t, seqFrom(4, parts), again, "the parts in flight are sent again, the confirmed ones are not")
	assert.Equal(t, int64((parts-3)*1024), res.Sent)
	f.assertFile(t, "big.bin", data)
	assert.Empty(t, stateFiles(t, stateDir))
	assert.Equal(t, int64(parts*1024), pl.last().Bytes)
	f.locked(func() { assert.Empty(t, f.partAuth) })
}

func TestResumeSendsAgainListedPartsItDidNotConfirm(t *testing.T) {
	f := newFake(t)
	const parts = 12
	path, data := writeFile(t, "big.bin", parts*1024)
	stateDir := interrupt(t, f, path, 3, 2, false)

	// A part the server lists, of the right size, that this client never
	// saw stored.
	f.locked(func() {
		junk := make([]byte, 1024)
		f.uploads["up1"].parts[8] = fakePart{data: junk, etag: etagOf(junk)}
	})
	res, again := resume(t, f, stateDir, path, client.Options{})
	assert.True(t, res.Resumed)
	assert.Equal(t, seqFrom(4, parts), again)
	f.assertFile(t, "big.bin", data)
}

func TestResumeSendsAgainConfirmedPartsTheServerListsOtherwise(t *testing.T) {
	f := newFake(t)
	const parts = 12
	path, data := writeFile(t, "big.bin", parts*1024)
	stateDir := interrupt(t, f, path, 3, 2, false)

	f.locked(func() {
		// Quotes or not, an ETag is the same one (part 1 is kept).
		f.bareETags = true
		u := f.uploads["up1"]
		// Part 2 under another ETag: replaced since it was confirmed.
		junk := make([]byte, 1024)
		u.parts[2] = fakePart{data: junk, etag: etagOf(junk)}
		// Part 3 under its ETag, but short.
		u.parts[3] = fakePart{data: u.parts[3].data[:512], etag: u.parts[3].etag}
	})
	res, again := resume(t, f, stateDir, path, client.Options{})
	assert.True(t, res.Resumed)
	assert.Equal(t, seqFrom(2, parts), again)
	assert.Equal(t, int64((parts-1)*1024), res.Sent)
	f.assertFile(t, "big.bin", data)
}

func TestResumeOfAStateWithoutConfirmedPartsKeepsTheUpload(t *testing.T) {
	f := newFake(t)
	const parts = 6
	path, data := writeFile(t, "big.bin", parts*1024)
	stateDir := interrupt(t, f, path, 2, 2, true)

	// As a client that kept no confirmed parts wrote it.
	files := stateFiles(t, stateDir)
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	var st map[string]any
	require.NoError(t, json.Unmarshal(b, &st))
	require.Contains(t, st, "confirmed")
	delete(st, "confirmed")
	b, err = json.Marshal(st)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(files[0], b, 0o600))

	res, again := resume(t, f, stateDir, path, client.Options{})
	assert.Equal(t, "up1", res.UploadID, "the upload is kept")
	f.locked(func() { assert.Equal(t, 1, f.creates) })
	assert.False(t, res.Resumed, "no part was kept")
	assert.Equal(t, seq(parts), again, "every part is sent again")
	assert.Equal(t, int64(parts*1024), res.Sent)
	f.assertFile(t, "big.bin", data)
	assert.Empty(t, stateFiles(t, stateDir))
}

// tagRun marks the requests it sends as the run's.
type tagRun string

func (r tagRun) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Test-Run", string(r))
	return http.DefaultTransport.RoundTrip(req)
}

func TestResumeOfAVanishedUploadStartsOver(t *testing.T) {
	f := newFake(t)
	path, data := writeFile(t, "big.bin", 4*1024)
	f.gate = func(id string, n int, run string) bool { return false }
	c, stateDir := newClient(t, f, client.Options{Attempts: 1})
	ctx, cancel := context.WithCancel(testCtx(t))
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		cancel()
		return false
	}
	_, err := c.Push(ctx, path, "")
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, stateFiles(t, stateDir), 1)

	f.locked(func() {
		delete(f.uploads, "up1") // swept
		f.gate, f.partHook = nil, nil
	})
	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	assert.Equal(t, "up2", res.UploadID)
	assert.False(t, res.Resumed)
	f.assertFile(t, "big.bin", data)
	assert.Empty(t, stateFiles(t, stateDir))
}

func TestNoResume(t *testing.T) {
	f := newFake(t)
	path, _ := writeFile(t, "big.bin", 4*1024)
	f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		writeErr(w, http.StatusBadRequest, "upload_mismatch", "no")
		return true
	}
	stateDir := t.TempDir()
	c, _ := newClient(t, f, client.Options{NoResume: true, StateDir: stateDir})
	_, err := c.Push(testCtx(t), path, "")
	require.Error(t, err)
	assert.Empty(t, stateFiles(t, stateDir))
}

// TestNoResumeFailureLeavesNoParts checks that a push no later run can
// resume aborts its upload when it fails, by a refused part or by an
// interrupt, rather than leave its parts to the server's sweep.
func TestNoResumeFailureLeavesNoParts(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		f := newFake(t)
		path, _ := writeFile(t, "big.bin", 4*1024)
		ctx, cancel := context.WithCancel(testCtx(t))
		f.partHook = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
			if n == 1 {
				return false
			}
			if interrupted {
				cancel()
				// Ends when the client, cancelled, closes the connection.
				_, _ = io.Copy(io.Discard, r.Body)
				return true
			}
			writeErr(w, http.StatusBadRequest, "upload_mismatch", "no")
			return true
		}
		c, _ := newClient(t, f, client.Options{NoResume: true, Parallel: 1})
		_, err := c.Push(ctx, path, "")
		cancel()
		require.Error(t, err)
		f.locked(func() {
			assert.Equal(t, 1, f.creates)
			assert.Empty(t, f.uploads, "interrupted: %v", interrupted)
		})
	}
}

func TestCompleteMismatchSendsMissingParts(t *testing.T) {
	f := newFake(t)
	path, data := writeFile(t, "a.bin", 3*1024)
	lost := false
	f.completeHook = func(_ context.Context, u *fakeUpload) {
		if !lost {
			lost = true
			delete(u.parts, 2)
		}
	}
	c, _ := newClient(t, f, client.Options{})

	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	f.assertFile(t, "a.bin", data)
	assert.Equal(t, 2, count(f.putsOf(res.UploadID), 2))
}

func TestBusyCompleteIsRetriedAfterRetryAfter(t *testing.T) {
	f := newFake(t)
	f.busyCompletes = 1
	path, data := writeFile(t, "a.bin", 3*1024)
	c, _ := newClient(t, f, client.Options{})

	start := time.Now()
	_, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After: 1 is honoured")
	f.assertFile(t, "a.bin", data)
}

// A server that answers with another file's SHA-256 or CRC64NVME than the
// one pushed fails the push, whether it went in one PUT or in parts.
func TestServerChecksumMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		lie  func(*fake)
	}{
		{"sha256", func(f *fake) { f.lieSHA = true }},
		{"crc64nvme", func(f *fake) { f.lieCRC = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{100, 3 * 1024} {
				f := newFake(t)
				tc.lie(f)
				path, _ := writeFile(t, "a.bin", size)
				c, _ := newClient(t, f, client.Options{})

				_, err := c.Push(testCtx(t), path, "")
				require.ErrorIs(t, err, client.ErrMismatch, "size %d", size)
			}
		})
	}
}

// A multipart push declares the file's CRC64NVME with its SHA-256, from
// the one read that hashes the file, and reports both.
func TestPushMultipartDeclaresCRC64NVME(t *testing.T) {
	f := newFake(t)
	path, data := writeFile(t, "a.bin", 3*1024)
	c, _ := newClient(t, f, client.Options{})
	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	require.True(t, res.Multipart)
	assert.Equal(t, crcOf(data), res.CRC64NVME)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 1, f.creates)
	assert.Equal(t, crcOf(data), f.lastCRC, "the create declares the file's CRC64NVME")
	var want []string
	for off := 0; off < len(data); off += int(f.partSize) {
		want = append(want, crcOf(data[off:min(off+int(f.partSize), len(data))]))
	}
	require.Len(t, f.uploads, 0, "completed")
	assert.Equal(t, want, f.lastPartCRCs, "the create declares each part's CRC64NVME, from the same read")
}

func TestBadChecksumDropsState(t *testing.T) {
	f := newFake(t)
	f.corruptPart = 2
	path, _ := writeFile(t, "a.bin", 3*1024)
	c, stateDir := newClient(t, f, client.Options{})

	_, err := c.Push(testCtx(t), path, "")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusBadRequest, apiErr.Status)
	assert.Equal(t, "bad_checksum", apiErr.Code)
	assert.Empty(t, stateFiles(t, stateDir), "the server discarded the upload: nothing to resume")
	_, ok := f.file("a.bin")
	assert.False(t, ok)
}

func TestExistsIsAnAPIError(t *testing.T) {
	for _, size := range []int{100, 3 * 1024} {
		f := newFake(t)
		path, _ := writeFile(t, "a.bin", size)
		f.files["a.bin"] = []byte("taken")
		c, stateDir := newClient(t, f, client.Options{})

		_, err := c.Push(testCtx(t), path, "")
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, http.StatusConflict, apiErr.Status)
		assert.Equal(t, "exists", apiErr.Code)
		var other *client.OtherFileError
		require.ErrorAs(t, err, &other, "size %d", size)
		assert.Equal(t, sumOf([]byte("taken")), other.StoredSHA256)
		assert.Contains(t, err.Error(), "another file is stored as a.bin")
		f.locked(func() { assert.Equal(t, 2, f.apiSeen, "refusals are not retried: one PUT or create, one HEAD") })
		assert.Empty(t, stateFiles(t, stateDir))
	}
}

// TestPushAgainIsIdempotent pushes files that the server already holds,
// byte for byte: each is success, reported as already there, and nothing
// is sent again.
func TestPushAgainIsIdempotent(t *testing.T) {
	for _, size := range []int{0, 100, 3 * 1024} {
		f := newFake(t)
		path, data := writeFile(t, "a.bin", size)
		c, stateDir := newClient(t, f, client.Options{})
		first, err := c.Push(testCtx(t), path, "")
		require.NoError(t, err, "size %d", size)
		assert.False(t, first.Existing)

		res, err := c.Push(testCtx(t), path, "")
		require.NoError(t, err, "size %d", size)
		assert.True(t, res.Existing, "size %d", size)
		assert.Equal(t, sumOf(data), res.SHA256)
		assert.Equal(t, int64(size), res.Size)
		f.assertFile(t, "a.bin", data)
		assert.Empty(t, stateFiles(t, stateDir))
		f.locked(func() {
			assert.Equal(t, 1, f.creates+boolInt(size <= 2048), "size %d: one upload, or one direct PUT, stored", size)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSameSizeOtherBytesIsRefused: a file of the same size under the name
// is told apart by its SHA-256, and one the server cannot give the SHA-256
// of is not taken for this one.
func TestSameSizeOtherBytesIsRefused(t *testing.T) {
	f := newFake(t)
	path, _ := writeFile(t, "a.bin", 100)
	f.files["a.bin"] = make([]byte, 100)
	c, _ := newClient(t, f, client.Options{})
	_, err := c.Push(testCtx(t), path, "")
	var other *client.OtherFileError
	require.ErrorAs(t, err, &other)
	assert.Equal(t, sumOf(make([]byte, 100)), other.StoredSHA256)

	f.noDigest = true
	_, err = c.Push(testCtx(t), path, "")
	require.ErrorContains(t, err, "does not report the stored file's SHA-256")
	assert.False(t, errors.As(err, &other))
}

// TestLostCompletionIsSuccess: the server published the file but its
// answer was lost (503 from the front), so the retry finds no upload. The
// file stored under the name is this one: success, and no state is left.
func TestLostCompletionIsSuccess(t *testing.T) {
	f := newFake(t)
	f.lostCompletes = 1
	path, data := writeFile(t, "a.bin", 3*1024)
	c, stateDir := newClient(t, f, client.Options{})

	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	assert.True(t, res.Existing)
	assert.Equal(t, sumOf(data), res.SHA256)
	f.assertFile(t, "a.bin", data)
	assert.Empty(t, stateFiles(t, stateDir))
}

// TestInterruptedDuringCompletion stops a push while its completion is in
// flight, which the server finishes: the state stays, and the next run
// finds the upload gone and the file stored, and reports success without
// sending anything.
func TestInterruptedDuringCompletion(t *testing.T) {
	f := newFake(t)
	path, data := writeFile(t, "a.bin", 3*1024)
	c, stateDir := newClient(t, f, client.Options{})
	ctx, cancel := context.WithCancel(testCtx(t))
	f.completeHook = func(req context.Context, _ *fakeUpload) {
		// The answer is written only once the client has given up on it,
		// as when the connection drops with the completion in flight.
		cancel()
		<-req.Done()
	}

	_, err := c.Push(ctx, path, "")
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, stateFiles(t, stateDir), 1, "the outcome is not known: the state stays")
	_, stored := f.file("a.bin")
	require.True(t, stored, "the server finished the completion")

	f.locked(func() { f.completeHook = nil })
	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	assert.True(t, res.Existing)
	assert.Zero(t, res.Sent)
	f.assertFile(t, "a.bin", data)
	assert.Empty(t, stateFiles(t, stateDir))
	f.locked(func() { assert.Equal(t, 1, f.creates) })
}

func TestTokenGoesToAPIRoutesOnly(t *testing.T) {
	f := newFake(t)
	f.token = "s3cret"
	f.pageSize = 1
	f.staleFirst = true
	small, _ := writeFile(t, "small.txt", 10)
	big, _ := writeFile(t, "big.bin", 5*1024)

	c, _ := newClient(t, f, client.Options{Token: "wrong"})
	_, err := c.Push(testCtx(t), small, "")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "unauthorized", apiErr.Code)

	c, _ = newClient(t, f, client.Options{})
	_, err = c.Push(testCtx(t), small, "")
	require.NoError(t, err)
	_, err = c.Push(testCtx(t), big, "")
	require.NoError(t, err)
	f.locked(func() { assert.Empty(t, f.partAuth, "part URLs carry their own credential") })
}

func TestSigV4GoesToAPIRoutesOnly(t *testing.T) {
	f := newFake(t)
	f.sigv4 = true
	f.pageSize = 2
	small, _ := writeFile(t, "small.txt", 10)
	big, data := writeFile(t, "big.bin", 5*1024)
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "session")
	c, _ := newClient(t, f, client.Options{Signer: client.NewSigV4(aws.NewCredentialsCache(creds), "eu-west-1")})

	_, err := c.Push(testCtx(t), small, "")
	require.NoError(t, err)
	_, err = c.Push(testCtx(t), big, "")
	require.NoError(t, err)
	f.assertFile(t, "big.bin", data)
	f.locked(func() { assert.Empty(t, f.partAuth, "no signature, date or session token on part URLs") })
}

func TestPushDirectory(t *testing.T) {
	root := t.TempDir()
	for name, size := range map[string]int{"a.txt": 10, "sub/b.txt": 20, "sub/deep/c.bin": 3000} {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, make([]byte, size), 0o600))
	}
	require.NoError(t, os.Symlink(filepath.Join(root, "a.txt"), filepath.Join(root, "sub", "link.txt")))

	files, skipped, err := client.Walk(root, "/backup/2026/")
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(root, "sub", "link.txt")}, skipped)
	var names []string
	for _, fl := range files {
		names = append(names, fl.Name)
	}
	assert.Equal(t, []string{"backup/2026/a.txt", "backup/2026/sub/b.txt", "backup/2026/sub/deep/c.bin"}, names)

	f := newFake(t)
	c, _ := newClient(t, f, client.Options{DirectMax: 1024})
	for _, fl := range files {
		res, err := c.Push(testCtx(t), fl.Path, fl.Name)
		require.NoError(t, err)
		assert.Equal(t, fl.Size, res.Size)
	}
	for _, n := range names {
		_, ok := f.file(n)
		assert.True(t, ok, n)
	}

	// A root that is a file, or a symbolic link to a directory.
	files, _, err = client.Walk(filepath.Join(root, "sub", "b.txt"), "")
	require.NoError(t, err)
	assert.Equal(t, []client.File{{Path: filepath.Join(root, "sub", "b.txt"), Name: "b.txt", Size: 20}}, files)
	link := filepath.Join(t.TempDir(), "l")
	require.NoError(t, os.Symlink(filepath.Join(root, "sub"), link))
	files, _, err = client.Walk(link, "")
	require.NoError(t, err)
	require.Len(t, files, 2)
	assert.Equal(t, client.File{Path: filepath.Join(link, "b.txt"), Name: "b.txt", Size: 20}, files[0])
	assert.Equal(t, "deep/c.bin", files[1].Name)
}

func TestNew(t *testing.T) {
	for _, u := range []string{"ftp://x", "http://", "127.0.0.1:8080", "http://u:p@host", "http://h/?q=1"} {
		_, err := client.New(u, client.Options{NoResume: true})
		assert.Error(t, err, u)
	}
	creds := credentials.NewStaticCredentialsProvider("a", "b", "")
	_, err := client.New("http://h", client.Options{Token: "t", Signer: client.NewSigV4(creds, "us-east-1")})
	assert.Error(t, err)
}

func TestBasePathIsKept(t *testing.T) {
	f := newFake(t)
	srv := httptest.NewServer(http.StripPrefix("/spillway", f.srv.Config.Handler))
	t.Cleanup(srv.Close)
	path, data := writeFile(t, "a b#?.txt", 10)
	c, err := client.New(srv.URL+"/spillway/", client.Options{NoResume: true})
	require.NoError(t, err)

	res, err := c.Push(testCtx(t), path, "dir/a b#?.txt")
	require.NoError(t, err)
	assert.Equal(t, "dir/a b#?.txt", res.Name)
	f.assertFile(t, "dir/a b#?.txt", data)
}

func TestErrorString(t *testing.T) {
	err := error(&client.Error{Status: 409, Code: "exists", Message: "a file with this name already exists; choose another name or overwrite where the server allows it", RequestID: "r1"})
	assert.Equal(t, "409 Conflict (exists): a file with this name already exists; choose another name or overwrite where the server allows it [request r1]", err.Error())
	tooLarge := error(&client.Error{Status: 413, Code: "too_large", Message: "the file or request body is larger than this server accepts; send a smaller one", Limit: 1 << 20, RequestID: "r2"})
	assert.Equal(t, "413 Request Entity Too Large (too_large): the file or request body is larger than this server accepts; send a smaller one (the limit is 1048576 bytes) [request r2]", tooLarge.Error())
	wrapped := errors.Join(errors.New("x"), err)
	var e *client.Error
	assert.ErrorAs(t, wrapped, &e)
}

// The client reads the API's error JSON as the API writes it: its fixed
// message, the limit of a too_large and the request ID.
func TestAPIErrorsAreParsed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apierr.WriteError(apierr.WithRequestID(r.Context(), "req-9"), w, api.ErrorFor(&spool.TooLargeError{Limit: 1000, Size: 3000}))
	}))
	t.Cleanup(srv.Close)
	path, _ := writeFile(t, "a.bin", 3000)
	c, err := client.New(srv.URL, client.Options{NoResume: true, RetryWait: time.Millisecond})
	require.NoError(t, err)

	_, err = c.Push(testCtx(t), path, "")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, client.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
		Message: api.ErrorFor(spool.ErrTooLarge).Message, Limit: 1000, RequestID: "req-9"}, *apiErr)
	assert.Contains(t, err.Error(), "(the limit is 1000 bytes) [request req-9]")
}

// TestDecomposedFileNamesAreSentAsNFC: a file whose name is decomposed, as
// macOS may hand it out, is pushed and walked under its NFC name, the only
// form the server takes.
func TestDecomposedFileNamesAreSentAsNFC(t *testing.T) {
	f := newFake(t)
	path, _ := writeFile(t, "cafe\u0301.txt", 3)
	c, _ := newClient(t, f, client.Options{})
	res, err := c.Push(testCtx(t), path, "")
	require.NoError(t, err)
	assert.Equal(t, "caf\u00e9.txt", res.Name)
	_, ok := f.file("caf\u00e9.txt")
	assert.True(t, ok)

	files, _, err := client.Walk(filepath.Dir(path), "")
	require.NoError(t, err)
	require.Len(t, files, 1)
	assert.Equal(t, "caf\u00e9.txt", files[0].Name)
	assert.Equal(t, path, files[0].Path, "the file is still read from its own name")
}
