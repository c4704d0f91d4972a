package dirstore_test

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

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

	fresh := createUpload(t, e.store, f) // sweeps
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

func TestPartIsLinkedFromTheSpool(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	f := uploadtest.File{Name: "linked.bin", Seed: 2, Size: threshold * 2}
	u := createUpload(t, e.store, f)
	b := storetest.Body(t, e.spooler, f)
	require.Equal(t, spool.Disk, b.Location())
	p, err := e.store.PutPart(t.Context(), u.ID, 1, b)
	require.NoError(t, err)

	entries, err := os.ReadDir(uploadDir(e, u.ID))
	require.NoError(t, err)
	require.Len(t, entries, 2, "the manifest and one part, no temporary file")
	part, err := entries[0].Info() // "00001-…" sorts before "upload.json"
	require.NoError(t, err)
	spooled, err := b.File().Stat()
	require.NoError(t, err)
	assert.True(t, os.SameFile(spooled, part), "the part must be the spool file's inode")

	_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
	require.NoError(t, err)
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
