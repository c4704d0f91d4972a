package s3store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/store"
)

func tusChunk(off int64, b []byte) store.Chunk {
	return store.Chunk{Offset: off, Size: store.UnknownSize, Body: bytes.NewReader(b), MaxSize: 1 << 40}
}

// requireNoInternalKeys requires that nothing is left under .spillway/.
func requireNoInternalKeys(t *testing.T, e *env) {
	t.Helper()
	out, err := e.gw.Client().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(e.gw.Bucket), Prefix: aws.String(internalDir)})
	require.NoError(t, err)
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	assert.Empty(t, keys)
}

// requireOnlyFinished requires that what is left under .spillway/ is the
// records of finished tus uploads, and no bytes of theirs.
func requireOnlyFinished(t *testing.T, e *env) {
	t.Helper()
	out, err := e.gw.Client().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(e.gw.Bucket), Prefix: aws.String(internalDir)})
	require.NoError(t, err)
	for _, o := range out.Contents {
		key := aws.ToString(o.Key)
		id, ok := strings.CutSuffix(strings.TrimPrefix(key, tusDir), ".json")
		require.True(t, ok && store.ValidUploadID(id), "left behind: %s", key)
		rec, _, err := e.store.loadTusRecord(t.Context(), id)
		require.NoError(t, err)
		assert.False(t, rec.Finished.IsZero(), "unfinished: %s", key)
		assert.Empty(t, rec.Parts)
		assert.Empty(t, rec.Pending)
	}
}

// Chunks shorter than a part, and a chunk that spans several parts, go
// to S3 as parts of at least 5 MiB and an incomplete part, and the file
// published is the file, with its SHA-256 and CRC-64/NVME.
func TestTusChunksAssembleIntoTheFile(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "t/file.bin", Size: 3*store.MinPartSize + 4321, Seed: 5}
	data := f.Bytes()
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: f.Name, Size: f.Size})
	require.NoError(t, err)
	cuts := []int64{0, 1 << 20, 4 << 20, 6 << 20, 13 << 20, f.Size}
	var done *store.Finished
	for i := 1; i < len(cuts); i++ {
		a, err := e.store.Append(t.Context(), u.ID, tusChunk(cuts[i-1], data[cuts[i-1]:cuts[i]]))
		require.NoError(t, err, "chunk %d", i)
		assert.Equal(t, cuts[i], a.Upload.Offset)
		done = a.Done
	}
	require.NotNil(t, done)
	assert.Equal(t, f.SHA256(), done.SHA256)
	h := store.NewCRC64NVME()
	h.Write(data)
	assert.Equal(t, store.EncodeCRC64NVME(h.Sum64()), done.CRC64NVME)
	info, r, err := e.store.Open(t.Context(), f.Name)
	require.NoError(t, err)
	defer r.Close()
	// The object is the multipart upload completed at its key: S3 holds
	// its CRC64NVME, but metadata cannot be added after the completion
	// without a copy, so the SHA-256 the store computed is reported, not
	// kept with the object.
	assert.Empty(t, info.SHA256)
	uploadtest.RequireContent(t, f, r)
	requireOnlyFinished(t, e)
}

// Two Appends at one offset: the second is refused with ErrLocked while
// the first holds the upload's lease, which it took with If-Match on the
// state's ETag, and the first one's bytes are the ones kept.
func TestTusSecondAppendIsLockedOut(t *testing.T) {
	e := newEnv(t, Options{})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "locked.bin", Size: 8})
	require.NoError(t, err)
	pr, pw := io.Pipe()
	first := make(chan error, 1)
	go func() {
		_, err := e.store.Append(t.Context(), u.ID, store.Chunk{Offset: 0, Size: store.UnknownSize, Body: pr, MaxSize: 1 << 40})
		first <- err
	}()
	// The lease is written before the body is read: once the first bytes
	// are taken, the first Append holds the upload.
	_, err = pw.Write([]byte("1111"))
	require.NoError(t, err)
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("22222222")))
	require.ErrorIs(t, err, store.ErrLocked)
	_, err = pw.Write([]byte("1111"))
	require.NoError(t, err)
	pw.Close()
	require.NoError(t, <-first)
	_, r, err := e.store.Open(t.Context(), "locked.bin")
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "11111111", string(b))
	requireOnlyFinished(t, e)
}

// A lease whose holder died (its deadline passed) no longer holds the
// upload; one still running does.
func TestTusLeaseEndsWithItsDeadline(t *testing.T) {
	e := newEnv(t, Options{})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "lease.bin", Size: 6})
	require.NoError(t, err)
	setLease := func(at time.Time) {
		rec, etag, err := e.store.loadTusRecord(t.Context(), u.ID)
		require.NoError(t, err)
		rec.Lease = at
		_, err = e.store.putTusRecord(t.Context(), u.ID, &rec, etag)
		require.NoError(t, err)
	}
	setLease(time.Now().Add(time.Hour))
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("abc")))
	require.ErrorIs(t, err, store.ErrLocked)
	setLease(time.Now().Add(-time.Second))
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("abc")))
	require.NoError(t, err)

	// A chunk that fails its check leaves the upload as it was, free.
	_, err = e.store.Append(t.Context(), u.ID, store.Chunk{Offset: 3, Size: store.UnknownSize, Body: bytes.NewReader([]byte("def")), MaxSize: 1 << 40,
		Verify: func() error { return store.ErrChunkChecksum }})
	require.ErrorIs(t, err, store.ErrChunkChecksum)
	got, err := e.store.Resumable(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(3), got.Offset)
	a, err := e.store.Append(t.Context(), u.ID, tusChunk(3, []byte("def")))
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("abcdef"))
	assert.Equal(t, hex.EncodeToString(sum[:]), a.Done.SHA256)
	requireOnlyFinished(t, e)
}

// A name taken while the upload ran is refused at the last chunk, and
// the upload is discarded with everything it had in the bucket.
func TestTusNameTakenMeanwhile(t *testing.T) {
	e := newEnv(t, Options{})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "taken.bin", Size: store.MinPartSize + 10})
	require.NoError(t, err)
	data := uploadtest.File{Name: "taken.bin", Size: store.MinPartSize + 10, Seed: 9}.Bytes()
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, data[:store.MinPartSize+3]))
	require.NoError(t, err)
	_, err = e.gw.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.gw.Bucket), Key: aws.String("taken.bin"), Body: bytes.NewReader([]byte("mine"))})
	require.NoError(t, err)
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(store.MinPartSize+3, data[store.MinPartSize+3:]))
	require.ErrorIs(t, err, store.ErrExists)
	_, err = e.store.Resumable(t.Context(), u.ID)
	require.ErrorIs(t, err, store.ErrUploadNotFound)
	requireNoInternalKeys(t, e)
}

// An empty file, and a file whose size is declared with its last chunk.
func TestTusEmptyAndDeferred(t *testing.T) {
	e := newEnv(t, Options{})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "empty.bin", Size: 0})
	require.NoError(t, err)
	a, err := e.store.Append(t.Context(), u.ID, tusChunk(0, nil))
	require.NoError(t, err)
	require.NotNil(t, a.Done)
	info, err := e.store.Stat(t.Context(), "empty.bin")
	require.NoError(t, err)
	assert.Zero(t, info.Size)

	u, err = e.store.CreateResumable(t.Context(), store.Resumable{Name: "deferred.bin", Size: store.UnknownSize})
	require.NoError(t, err)
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("abc")))
	require.NoError(t, err)
	c := tusChunk(3, []byte("def"))
	c.Size = 6
	a, err = e.store.Append(t.Context(), u.ID, c)
	require.NoError(t, err)
	require.NotNil(t, a.Done)
	assert.Equal(t, int64(6), a.Done.Size)
	requireOnlyFinished(t, e)
}

// An incomplete part that an invocation wrote but could not record (it
// died first) goes with the upload when it is finished or terminated.
func TestTusRemovesUnrecordedIncompleteParts(t *testing.T) {
	e := newEnv(t, Options{})
	for _, finish := range []bool{true, false} {
		u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "orphans.bin", Size: 6})
		require.NoError(t, err)
		_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("abc")))
		require.NoError(t, err)
		_, err = e.gw.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.gw.Bucket),
			Key: aws.String(e.store.tusKey(u.ID, ".DEADINVOCATION.part")), Body: bytes.NewReader([]byte("xyz"))})
		require.NoError(t, err)
		if finish {
			_, err = e.store.Append(t.Context(), u.ID, tusChunk(3, []byte("def")))
			require.NoError(t, err)
			require.NoError(t, e.store.Delete(t.Context(), "orphans.bin"))
			requireOnlyFinished(t, e)
			require.NoError(t, e.store.Terminate(t.Context(), u.ID))
		} else {
			require.NoError(t, e.store.Terminate(t.Context(), u.ID))
		}
		requireNoInternalKeys(t, e)
	}
}

// A finished upload is known until it expires: Resumable says what it
// became, an empty chunk at its end gets the same answer and writes
// nothing, Terminate forgets the record (not the file), and past its
// expiry the record is gone for every caller.
func TestTusFinishedUploadIsKeptUntilItExpires(t *testing.T) {
	e := newEnv(t, Options{})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "f.bin", Size: 4})
	require.NoError(t, err)
	a, err := e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("abcd")))
	require.NoError(t, err)
	require.NotNil(t, a.Done)

	got, err := e.store.Resumable(t.Context(), u.ID)
	require.NoError(t, err)
	require.NotNil(t, got.Done)
	assert.Equal(t, int64(4), got.Offset)
	assert.Equal(t, a.Done.SHA256, got.Done.SHA256)
	assert.Equal(t, a.Done.CRC64NVME, got.Done.CRC64NVME)
	again, err := e.store.Append(t.Context(), u.ID, tusChunk(4, nil))
	require.NoError(t, err)
	require.NotNil(t, again.Done)
	assert.Equal(t, a.Done.SHA256, again.Done.SHA256)
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(4, []byte("e")))
	require.ErrorIs(t, err, store.ErrUploadTooLarge)
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("wxyz")))
	require.ErrorIs(t, err, store.ErrOffsetMismatch)
	requireOnlyFinished(t, e)

	// Past its expiry, as the record's own creation time says.
	rec, etag, err := e.store.loadTusRecord(t.Context(), u.ID)
	require.NoError(t, err)
	rec.Created = rec.Created.Add(-tusExpiry - time.Minute)
	_, err = e.store.putTusRecord(t.Context(), u.ID, &rec, etag)
	require.NoError(t, err)
	_, err = e.store.Resumable(t.Context(), u.ID)
	require.ErrorIs(t, err, store.ErrUploadNotFound)

	u, err = e.store.CreateResumable(t.Context(), store.Resumable{Name: "g.bin", Size: 1})
	require.NoError(t, err)
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("g")))
	require.NoError(t, err)
	require.NoError(t, e.store.Terminate(t.Context(), u.ID))
	_, err = e.store.Resumable(t.Context(), u.ID)
	require.ErrorIs(t, err, store.ErrUploadNotFound)
	_, err = e.store.Stat(t.Context(), "g.bin")
	require.NoError(t, err)
}

// stallEnv carries what TestTusStalledAppendProcess needs: the gateway,
// the upload and the lease, separated by spaces.
const stallEnv = "SPILLWAY_TEST_TUS_STALL"

// TestTusStalledAppendProcess is the process that
// TestTusLeaseOfAKilledAppendEnds kills: an Append whose body, its stdin,
// stalls after a few bytes.
func TestTusStalledAppendProcess(t *testing.T) {
	v := os.Getenv(stallEnv)
	if v == "" {
		t.Skip("run as a child of TestTusLeaseOfAKilledAppendEnds")
	}
	var gw testservers.S3
	var id string
	var lease time.Duration
	_, err := fmt.Sscan(v, &gw.Endpoint, &gw.Region, &gw.AccessKey, &gw.SecretKey, &gw.Bucket, &id, &lease)
	require.NoError(t, err)
	st := New(gw.Client(), gw.Bucket, Options{})
	st.tusLease = lease
	_, err = st.Append(t.Context(), id, store.Chunk{Offset: 0, Size: store.UnknownSize, Body: os.Stdin, MaxSize: 1 << 40})
	t.Fatalf("the Append was to be killed, it returned %v", err)
}

// An invocation killed mid-PATCH (a crash: no deferred release runs)
// holds the upload only until its lease ends, a lease after its last
// renewal, and not until its deadline; while it lives, its renewals keep
// the upload its own.
func TestTusLeaseOfAKilledAppendEnds(t *testing.T) {
	const lease = 2 * time.Second
	e := newEnv(t, Options{})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "killed.bin", Size: 6})
	require.NoError(t, err)

	cmd := exec.Command(os.Args[0], "-test.run=^TestTusStalledAppendProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s %s %s %s %d", stallEnv,
		e.gw.Endpoint, e.gw.Region, e.gw.AccessKey, e.gw.SecretKey, e.gw.Bucket, u.ID, int64(lease)))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = testservers.DieWithParent()
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	_, err = stdin.Write([]byte("abc"))
	require.NoError(t, err)

	// until polls the upload's state until cond holds, for at most d.
	until := func(d time.Duration, what string, cond func(tusRecord) bool) tusRecord {
		t.Helper()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(d)
		for {
			rec, _, err := e.store.loadTusRecord(t.Context(), u.ID)
			require.NoError(t, err)
			if cond(rec) {
				return rec
			}
			select {
			case <-tick.C:
			case <-deadline:
				require.FailNow(t, "timed out waiting: "+what)
			case <-exited:
				require.FailNow(t, "the child exited", "%v", cmd.ProcessState)
			}
		}
	}
	first := until(10*time.Second, "the child's lease", func(r tusRecord) bool { return !r.Lease.IsZero() }).Lease
	// Past the first lease's end, a renewal holds the upload still.
	renewed := until(3*lease, "a renewal", func(r tusRecord) bool { return r.Lease.After(first) && time.Now().After(first) }).Lease
	_, err = e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("xyzxyz")))
	require.ErrorIs(t, err, store.ErrLocked)

	require.NoError(t, cmd.Process.Kill())
	<-exited
	killed := time.Now()
	held := until(lease, "the last lease", func(r tusRecord) bool { return true }).Lease
	require.False(t, held.Before(renewed))
	assert.LessOrEqual(t, held.Sub(killed), lease, "held past a lease after the kill")

	// The next Append succeeds as soon as that lease ends.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		a, err := e.store.Append(t.Context(), u.ID, tusChunk(0, []byte("xyzxyz")))
		if err == nil {
			require.NotNil(t, a.Done)
			break
		}
		require.ErrorIs(t, err, store.ErrLocked)
		require.Less(t, time.Since(killed), lease+time.Second, "still locked a lease after the kill")
		<-tick.C
	}
	t.Logf("free again %s after the kill (lease %s)", time.Since(killed).Round(time.Millisecond), lease)
	_, r, err := e.store.Open(t.Context(), "killed.bin")
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "xyzxyz", string(b))
	// The dead invocation's part never became the file's.
	requireOnlyFinished(t, e)
}
