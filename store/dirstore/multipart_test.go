package dirstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
)

// One part: a multipart upload may be smaller than a part, which keeps
// these tests' payloads small.
func createUpload(t *testing.T, s *dirstore.Store, f uploadtest.File) store.Upload {
	t.Helper()
	u, err := s.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), PartSize: store.MinPartSize})
	require.NoError(t, err)
	return u
}

func uploadDir(e *env, id string) string { return filepath.Join(e.dir, ".spillway-uploads", id) }

// age makes an upload look idle for d, as the sweep measures it.
func age(t *testing.T, e *env, id string, d time.Duration) {
	t.Helper()
	then := time.Now().Add(-d)
	require.NoError(t, os.Chtimes(filepath.Join(uploadDir(e, id), "upload.json"), then, then))
	require.NoError(t, os.Chtimes(uploadDir(e, id), then, then))
}

func requireUpload(t *testing.T, s *dirstore.Store, id string, exists bool) {
	t.Helper()
	_, err := s.Upload(t.Context(), id)
	if exists {
		require.NoError(t, err, "upload %s must still be there", id)
	} else {
		require.ErrorIs(t, err, store.ErrUploadNotFound, "upload %s must be swept", id)
	}
}

func TestUploadSweep(t *testing.T) {
	e := newEnv(t, dirstore.Options{UploadTTL: time.Hour})
	f := uploadtest.File{Name: "idle.bin", Seed: 1, Size: 1000}
	idle := createUpload(t, e.store, f)
	_, err := e.store.PutPart(t.Context(), idle.ID, 1, storetest.Body(t, e.spooler, f))
	require.NoError(t, err)
	active := createUpload(t, e.store, f)
	locked := createUpload(t, e.store, f)
	for _, id := range []string{idle.ID, active.ID, locked.ID} {
		age(t, e, id, 2*time.Hour)
	}
	// A part makes an upload active again.
	_, err = e.store.PutPart(t.Context(), active.ID, 1, storetest.Body(t, e.spooler, f))
	require.NoError(t, err)
	// A Complete under way, in another process say, holds the lock.
	lock, err := os.Open(filepath.Join(uploadDir(e, locked.ID), "upload.json"))
	require.NoError(t, err)
	require.NoError(t, unix.Flock(int(lock.Fd()), unix.LOCK_EX))

	fresh := createUpload(t, e.store, f)
	assert.Equal(t, 1, dirstore.SweepUploads(e.store))
	requireUpload(t, e.store, idle.ID, false)
	assert.NoDirExists(t, uploadDir(e, idle.ID))
	requireUpload(t, e.store, active.ID, true)
	requireUpload(t, e.store, locked.ID, true)
	requireUpload(t, e.store, fresh.ID, true)
	require.NoError(t, lock.Close())

	// Open sweeps too, counts what it removed, and defaults to a day.
	age(t, e, active.ID, 25*time.Hour)
	age(t, e, locked.ID, 25*time.Hour)
	age(t, e, fresh.ID, 23*time.Hour)
	s, n, err := dirstore.Open(e.dir, dirstore.Options{})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, 2, n)
	requireUpload(t, s, active.ID, false)
	requireUpload(t, s, locked.ID, false)
	requireUpload(t, s, fresh.ID, true)
	require.NoError(t, s.Abort(t.Context(), fresh.ID))
}

func TestOpenSweepsBrokenUploads(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	uploads := filepath.Join(e.dir, ".spillway-uploads")
	old := time.Now().Add(-48 * time.Hour)
	write := func(name, content string) string {
		p := filepath.Join(uploads, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return filepath.Dir(p)
	}
	// A removal cut short after the manifest went: gone at once.
	halfRemoved := write(rand.Text()+"/00001-0123456789abcdef0123456789abcdef", "part")
	// A manifest a power cut emptied: gone once old.
	damaged := write(rand.Text()+"/upload.json", "")
	require.NoError(t, os.Chtimes(damaged, old, old))
	damagedNew := write(rand.Text()+"/upload.json", "{")
	// A creation that died before its rename: gone once old; a young one
	// may be another process's creation under way.
	deadCreate := write(".spillway-AAAA.tmp/upload.json", "{}")
	require.NoError(t, os.Chtimes(deadCreate, old, old))
	liveCreate := write(".spillway-BBBB.tmp/upload.json", "{}")

	s, n, err := dirstore.Open(e.dir, dirstore.Options{})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, 2, n)
	assert.NoDirExists(t, halfRemoved)
	assert.NoDirExists(t, damaged)
	assert.NoDirExists(t, deadCreate)
	assert.DirExists(t, damagedNew)
	assert.DirExists(t, liveCreate)
	_, err = s.Upload(t.Context(), filepath.Base(damagedNew))
	require.Error(t, err)
	require.NotErrorIs(t, err, store.ErrUploadNotFound, "a damaged upload is a fault, not a missing one")
	require.NoError(t, os.RemoveAll(damagedNew))
	require.NoError(t, os.RemoveAll(liveCreate))
}

// partBody spools part n of f, as the upload u cuts it.
func partBody(t *testing.T, e *env, f uploadtest.File, u store.Upload, n int) *spool.Body {
	t.Helper()
	b := f.Bytes()[int64(n-1)*u.PartSize:][:u.PartSizeOf(n)]
	body, err := e.spooler.Spool(t.Context(), bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	t.Cleanup(func() { body.Close() })
	return body
}

// putParts sends the parts numbered in order, and returns all the parts
// received, as Complete wants them.
func putParts(t *testing.T, e *env, f uploadtest.File, u store.Upload, order ...int) []store.Part {
	t.Helper()
	for _, n := range order {
		_, err := e.store.PutPart(t.Context(), u.ID, n, partBody(t, e, f, u, n))
		require.NoError(t, err, "part %d", n)
	}
	parts, err := e.store.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	return parts
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(dir, &st))
	return int64(st.Bavail) * int64(st.Bsize)
}

// The upload's file is written in place and linked into place: the file
// published is the inode created with the upload, and completing it takes
// no space.
func TestCompletionLinksTheUploadsFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(string, dirstore.Options) (*dirstore.Store, int, error)
	}{{"linux", dirstore.Open}, {"portable", dirstore.OpenPortable}} {
		t.Run(tc.name, func(t *testing.T) {
			const partSize = 8 << 20
			f := uploadtest.File{Name: "d/big.bin", Seed: 5, Size: 3*partSize + 17}
			// A filesystem of its own, so that no other test's files move
			// its free space.
			e := newEnvIn(t, testservers.MountTmpfs(t, 2*f.Size), dirstore.Options{Fsync: true}, tc.open)
			u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), PartSize: partSize})
			require.NoError(t, err)
			data, err := os.Stat(filepath.Join(uploadDir(e, u.ID), "data"))
			require.NoError(t, err)
			assert.Equal(t, f.Size, data.Size(), "preallocated to the declared size")
			parts := putParts(t, e, f, u, 1, 2, 3, 4)
			assert.Equal(t, u.PartCount(), dirstore.PrefixParts(t, e.store, u.ID), "in order, the running hash covers every part")

			before := freeBytes(t, e.dir)
			done, err := e.store.Complete(t.Context(), u.ID, parts)
			require.NoError(t, err)
			after := freeBytes(t, e.dir)
			assert.Equal(t, f.SHA256(), done.SHA256)
			storetest.RequireStored(t, e.store, f)
			stored, err := os.Stat(filepath.Join(e.dir, f.Name))
			require.NoError(t, err)
			assert.True(t, os.SameFile(data, stored), "the file published is the upload's file")
			// A second copy would take the file's size; a few blocks of
			// metadata are no copy.
			assert.Less(t, before-after, int64(1<<20), "completion takes no second copy's space")
		})
	}
}

func TestOutOfOrderParts(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	const partSize = 1000
	f := uploadtest.File{Name: "shuffled.bin", Seed: 6, Size: 5*partSize - 3}
	want := store.EncodeCRC64NVME(crc64nvme.Checksum(f.Bytes()))
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), CRC64NVME: want, PartSize: partSize})
	require.NoError(t, err)

	putParts(t, e, f, u, 5, 3, 2)
	assert.Equal(t, 0, dirstore.PrefixParts(t, e.store, u.ID), "part 1 is missing: nothing to hash yet")
	// Part 1 closes the gap: 2 and 3 are hashed from the file, 5 waits for 4.
	putParts(t, e, f, u, 1)
	assert.Equal(t, 3, dirstore.PrefixParts(t, e.store, u.ID))
	parts := putParts(t, e, f, u, 4)
	assert.Equal(t, 5, dirstore.PrefixParts(t, e.store, u.ID))

	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, f.SHA256(), done.SHA256)
	assert.Equal(t, want, done.CRC64NVME)
	storetest.RequireStored(t, e.store, f)
}

// A part sent again with other bytes takes back the running hash over it;
// Complete hashes the rest from the file.
func TestReplacedPartRehashes(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	const partSize = 1000
	f := uploadtest.File{Name: "replaced.bin", Seed: 7, Size: 3 * partSize}
	wrong := uploadtest.File{Seed: 8, Size: f.Size}
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), PartSize: partSize})
	require.NoError(t, err)
	_, err = e.store.PutPart(t.Context(), u.ID, 1, partBody(t, e, f, u, 1))
	require.NoError(t, err)
	_, err = e.store.PutPart(t.Context(), u.ID, 2, partBody(t, e, wrong, u, 2))
	require.NoError(t, err)
	require.Equal(t, 2, dirstore.PrefixParts(t, e.store, u.ID))
	parts := putParts(t, e, f, u, 2, 3)
	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, f.SHA256(), done.SHA256)
	storetest.RequireStored(t, e.store, f)
}

// Bytes that do not match the declared checksums are refused, nothing is
// published, and the upload and its file are gone.
func TestCompleteRefusesWrongChecksums(t *testing.T) {
	for _, tc := range []struct {
		name string
		decl func(f uploadtest.File, u *store.Upload)
	}{
		{"sha256", func(f uploadtest.File, u *store.Upload) {
			u.SHA256 = uploadtest.File{Seed: 99, Size: f.Size}.SHA256()
		}},
		{"crc64nvme", func(f uploadtest.File, u *store.Upload) {
			u.CRC64NVME = store.EncodeCRC64NVME(crc64nvme.Checksum(f.Bytes()) ^ 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, dirstore.Options{})
			f := uploadtest.File{Name: "bad.bin", Seed: 9, Size: 2500}
			decl := store.Upload{Name: f.Name, Size: f.Size, PartSize: 1000}
			tc.decl(f, &decl)
			u, err := e.store.CreateUpload(t.Context(), decl)
			require.NoError(t, err)
			parts := putParts(t, e, f, u, 2, 1, 3)
			_, err = e.store.Complete(t.Context(), u.ID, parts)
			require.ErrorIs(t, err, store.ErrChecksum)
			assert.NoFileExists(t, filepath.Join(e.dir, f.Name))
			assert.NoDirExists(t, uploadDir(e, u.ID))
		})
	}
}

// A crash after a part's bytes are written and before its marker is made
// leaves the part not received: the client sends it again, and the upload
// completes with the bytes it declared.
func TestCrashBetweenPartAndMarker(t *testing.T) {
	e := newEnv(t, dirstore.Options{Fsync: true})
	const partSize = 1000
	f := uploadtest.File{Name: "crashed.bin", Seed: 10, Size: 2 * partSize}
	other := uploadtest.File{Seed: 11, Size: f.Size}
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), PartSize: partSize})
	require.NoError(t, err)
	putParts(t, e, f, u, 1)
	// Part 1 again, other bytes, and the process dies before the marker.
	dirstore.CrashBeforeMarker(t, func() {
		e.store.PutPart(t.Context(), u.ID, 1, partBody(t, e, other, u, 1))
	})
	parts, err := e.store.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Empty(t, parts, "the old part 1 was taken back before its bytes changed, the new one never marked")
	assert.Equal(t, 0, dirstore.PrefixParts(t, e.store, u.ID))

	parts = putParts(t, e, f, u, 2, 1)
	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, f.SHA256(), done.SHA256)
	storetest.RequireStored(t, e.store, f)
}

func TestPartIsTheFileSpooledNotWhatItsNameLeadsTo(t *testing.T) {
	e := newEnv(t, dirstore.Options{Fsync: true})
	f := uploadtest.File{Name: "victim.bin", Seed: 9, Size: threshold * 2}
	u := createUpload(t, e.store, f)
	b := storetest.Body(t, e.spooler, f)
	require.Equal(t, spool.Disk, b.Location())
	replaceSpoolName(t, e.spoolDir, b, f.Size)
	p, err := e.store.PutPart(t.Context(), u.ID, 1, b)
	require.NoError(t, err)
	done, err := e.store.Complete(t.Context(), u.ID, []store.Part{p})
	require.NoError(t, err)
	assert.Equal(t, f.SHA256(), done.SHA256)
	storetest.RequireStored(t, e.store, f)
}

func TestPartIsCopiedWhenItCannotBeLinked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int64
		unlink bool // as another process's spool sweep might
	}{
		{"memory", threshold, false},
		{"swept spool name", threshold * 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, dirstore.Options{Fsync: true})
			f := uploadtest.File{Name: "copied.bin", Seed: 3, Size: tc.size}
			u := createUpload(t, e.store, f)
			b := storetest.Body(t, e.spooler, f)
			if tc.unlink {
				require.NoError(t, os.Remove(spoolName(t, e.spoolDir, b)))
			}
			p, err := e.store.PutPart(t.Context(), u.ID, 1, b)
			require.NoError(t, err)
			done, err := e.store.Complete(t.Context(), u.ID, []store.Part{p})
			require.NoError(t, err)
			assert.Equal(t, f.SHA256(), done.SHA256)
			storetest.RequireStored(t, e.store, f)
		})
	}
}

func TestConcurrentPutsOfOnePart(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	const racers = 4
	files := make([]uploadtest.File, racers)
	bodies := make([]*spool.Body, racers)
	for i := range racers {
		files[i] = uploadtest.File{Name: "contended.bin", Seed: uint64(10 + i), Size: threshold * 2}
		bodies[i] = storetest.Body(t, e.spooler, files[i])
	}
	// No digest declared: any racer's bytes may end up completed.
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: files[0].Name, Size: files[0].Size, PartSize: store.MinPartSize})
	require.NoError(t, err)
	etags := make([]string, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			p, err := e.store.PutPart(t.Context(), u.ID, 1, bodies[i])
			assert.NoError(t, err)
			etags[i] = p.ETag
		})
	}
	close(start)
	wg.Wait()

	parts, err := e.store.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	require.Len(t, parts, 1, "one part 1, whoever won")
	winner := -1
	for i, etag := range etags {
		if etag == parts[0].ETag {
			winner = i
		}
	}
	require.NotEqual(t, -1, winner, "the part kept must be one that was sent")
	_, err = e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	storetest.RequireStored(t, e.store, files[winner])
}

// A part that loses a race with Abort is refused as not found, and leaves
// nothing behind (the env's cleanup checks) whichever way the race goes.
func TestPutPartRacesAbort(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	for i := range 40 {
		// Memory bodies are copied, disk bodies linked.
		f := uploadtest.File{Name: "raced.bin", Seed: uint64(i), Size: threshold + int64(i%2)}
		b := storetest.Body(t, e.spooler, f)
		u := createUpload(t, e.store, f)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, err := e.store.PutPart(t.Context(), u.ID, 1, b)
			if err != nil {
				assert.ErrorIs(t, err, store.ErrUploadNotFound)
			}
		})
		wg.Go(func() {
			<-start
			assert.NoError(t, e.store.Abort(t.Context(), u.ID))
		})
		close(start)
		wg.Wait()
		requireUpload(t, e.store, u.ID, false)
	}
}

func TestCompleteOverwrites(t *testing.T) {
	e := newEnv(t, dirstore.Options{Overwrite: true, Fsync: true})
	old := uploadtest.File{Name: "o/f.bin", Seed: 1, Size: 10}
	require.NoError(t, put(t, e, old))
	f := uploadtest.File{Name: old.Name, Seed: 2, Size: threshold + 5}
	u := createUpload(t, e.store, f)
	p, err := e.store.PutPart(t.Context(), u.ID, 1, storetest.Body(t, e.spooler, f))
	require.NoError(t, err)
	_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
	require.NoError(t, err)
	storetest.RequireStored(t, e.store, f)
	fi, err := os.Stat(filepath.Join(e.dir, f.Name))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
}

func TestUploadsDirSymlinkCannotEscape(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(e.dir, ".spillway-uploads")))
	_, err := e.store.CreateUpload(t.Context(), store.Upload{Name: "x.bin", Size: 1, PartSize: store.MinPartSize})
	require.Error(t, err)
	uploadtest.RequireEmptyDir(t, outside)

	// An ID that names a symlinked upload directory cannot reach out either.
	require.NoError(t, os.Remove(filepath.Join(e.dir, ".spillway-uploads")))
	require.NoError(t, os.Mkdir(filepath.Join(e.dir, ".spillway-uploads"), 0o700))
	id := rand.Text()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "upload.json"), []byte(`{"name":"x.bin","size":1,"part_size":5242880}`), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(e.dir, ".spillway-uploads", id)))
	_, err = e.store.Upload(t.Context(), id)
	require.Error(t, err)
	require.Error(t, e.store.Abort(t.Context(), id))
	_, err = e.store.PutPart(t.Context(), id, 1, storetest.Body(t, e.spooler, uploadtest.File{Size: 1}))
	require.Error(t, err)
	require.NoError(t, os.Remove(filepath.Join(e.dir, ".spillway-uploads", id)))
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing may be written or removed outside the root")
}

// The suite's parts are whole MiBs, as is the copy buffer. Here the part
// boundaries fall mid-buffer, and every spool body is closed (its file
// removed) before Complete reads the parts that were linked from it.
func TestCompleteAssemblesUnalignedParts(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	const partSize = 3<<20 + 7
	f := uploadtest.File{Name: "parts.bin", Seed: 4, Size: 2*partSize + 12345}
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), PartSize: partSize})
	require.NoError(t, err)
	var parts []store.Part
	require.Equal(t, 3, u.PartCount())
	for n := 1; n <= u.PartCount(); n++ {
		r := f.Reader()
		_, err := io.CopyN(io.Discard, r, int64(n-1)*u.PartSize)
		require.NoError(t, err)
		b, err := e.spooler.Spool(t.Context(), io.LimitReader(r, u.PartSizeOf(n)), u.PartSizeOf(n))
		require.NoError(t, err)
		p, err := e.store.PutPart(t.Context(), u.ID, n, b)
		require.NoError(t, b.Close())
		require.NoError(t, err)
		parts = append(parts, p)
	}
	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, f.SHA256(), done.SHA256)
	storetest.RequireStored(t, e.store, f)
}

// Creating an upload takes its space: one the disk cannot hold is refused
// then, not at one of its parts, and leaves nothing behind.
func TestCreateUploadReservesSpace(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	size := min(freeBytes(t, e.dir)+1<<30, store.MaxUploadSize)
	_, err := e.store.CreateUpload(t.Context(), store.Upload{Name: "huge.bin", Size: size, PartSize: store.MaxPartSize})
	require.ErrorIs(t, err, store.ErrInsufficientStorage)
	entries, err := os.ReadDir(filepath.Join(e.dir, ".spillway-uploads"))
	if err == nil {
		assert.Empty(t, entries)
	}

	f := uploadtest.File{Name: "reserved.bin", Seed: 1, Size: 4 << 20}
	u := createUpload(t, e.store, f)
	var st unix.Stat_t
	require.NoError(t, unix.Stat(filepath.Join(uploadDir(e, u.ID), "data"), &st))
	assert.GreaterOrEqual(t, st.Blocks*512, f.Size, "the upload's blocks are allocated when it is created")
	require.NoError(t, e.store.Abort(t.Context(), u.ID))
}

func TestMaxOpenUploads(t *testing.T) {
	e := newEnv(t, dirstore.Options{MaxOpenUploads: 3})
	f := uploadtest.File{Name: "open.bin", Seed: 1, Size: 10}
	var ids []string
	for range 3 {
		ids = append(ids, createUpload(t, e.store, f).ID)
	}
	_, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, PartSize: store.MinPartSize})
	require.ErrorIs(t, err, store.ErrTooManyUploads)
	require.ErrorContains(t, err, "open uploads")

	// Each way an upload ends frees its place: abort, completion, a
	// completion refused, the sweep.
	require.NoError(t, e.store.Abort(t.Context(), ids[0]))
	u := createUpload(t, e.store, f)
	p, err := e.store.PutPart(t.Context(), u.ID, 1, storetest.Body(t, e.spooler, f))
	require.NoError(t, err)
	_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
	require.NoError(t, err)
	u = createUpload(t, e.store, f)
	p, err = e.store.PutPart(t.Context(), u.ID, 1, storetest.Body(t, e.spooler, f))
	require.NoError(t, err)
	_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
	require.ErrorIs(t, err, store.ErrExists)
	// Abandoned uploads are swept to make room once the bound is reached.
	extra := createUpload(t, e.store, f)
	age(t, e, ids[1], 25*time.Hour)
	dirstore.ForgetLastSweep(e.store)
	u = createUpload(t, e.store, f)
	requireUpload(t, e.store, ids[1], false)
	for _, id := range []string{ids[2], extra.ID, u.ID} {
		require.NoError(t, e.store.Abort(t.Context(), id))
	}

	// A store opened on uploads left open counts them.
	for range 3 {
		ids = append(ids, createUpload(t, e.store, f).ID)
	}
	s, _, err := dirstore.Open(e.dir, dirstore.Options{MaxOpenUploads: 3})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, PartSize: store.MinPartSize})
	require.ErrorIs(t, err, store.ErrTooManyUploads)
	for _, id := range ids[len(ids)-3:] {
		require.NoError(t, s.Abort(t.Context(), id))
	}
}

// Creating an upload does not sweep every time: its cost stays flat as
// open uploads accumulate.
func TestCreateUploadDoesNotSweepEachTime(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	f := uploadtest.File{Name: "many.bin", Seed: 1, Size: 10}
	sweeps := dirstore.CountSweeps(t, e.store)
	var ids []string
	for range 50 {
		ids = append(ids, createUpload(t, e.store, f).ID)
	}
	assert.Zero(t, sweeps(), "the store swept at Open; the next sweep is due later")
	for _, id := range ids {
		require.NoError(t, e.store.Abort(t.Context(), id))
	}
}

// A completion whose context has ended publishes nothing and keeps the
// upload, even when it has nothing left to hash.
func TestCompleteHonoursItsContext(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	f := uploadtest.File{Name: "cancelled.bin", Seed: 12, Size: 2000}
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), PartSize: 1000})
	require.NoError(t, err)
	parts := putParts(t, e, f, u, 1, 2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = e.store.Complete(ctx, u.ID, parts)
	require.ErrorIs(t, err, context.Canceled)
	assert.NoFileExists(t, filepath.Join(e.dir, f.Name))
	_, err = e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	storetest.RequireStored(t, e.store, f)
}
