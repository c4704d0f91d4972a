package dirstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
)

// putFiles stores each name with its name as content, modified at mtime.
func putFiles(t *testing.T, e *env, mtime time.Time, names ...string) {
	t.Helper()
	for _, name := range names {
		p := filepath.Join(e.dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
		require.NoError(t, os.Chtimes(p, mtime, mtime))
	}
}

// ageTree sets the modification time of everything under dir.
func ageTree(t *testing.T, dir string, mtime time.Time) {
	t.Helper()
	require.NoError(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		require.NoError(t, err)
		return os.Chtimes(p, mtime, mtime)
	}))
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return false
	}
	require.NoError(t, err)
	return true
}

// The retention pass removes files older than the retention, and the
// folders they leave empty; it leaves newer files, and uploads in
// progress however old their bytes, which then complete into files that
// count their age from their completion.
func TestSweepRemovesExpiredFiles(t *testing.T) {
	e := newEnv(t, dirstore.Options{Retention: time.Hour, Fsync: true})
	now := time.Now()
	old, recent := now.Add(-2*time.Hour), now.Add(-30*time.Minute)
	putFiles(t, e, old, "old.txt", "a/old.txt", "a/b/old.txt", "c/old.txt")
	putFiles(t, e, recent, "new.txt", "c/new.txt")

	mp := uploadtest.File{Name: "multi.bin", Seed: 1, Size: 1000}
	u := createUpload(t, e.store, mp)
	part, err := e.store.PutPart(t.Context(), u.ID, 1, storetest.Body(t, e.spooler, mp))
	require.NoError(t, err)
	tus, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "tus.bin", Size: 10})
	require.NoError(t, err)
	appendChunk(t, e.store, tus.ID, 0, []byte("01234"))
	// Their bytes are old, but they were active within the upload TTL.
	for _, p := range []string{"data", "00001-" + part.ETag[1:len(part.ETag)-1]} {
		require.NoError(t, os.Chtimes(filepath.Join(uploadDir(e, u.ID), p), old, old))
	}
	require.NoError(t, os.Chtimes(filepath.Join(tusDir(e.dir), tus.ID, "data"), old, old))

	sw, err := e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Equal(t, dirstore.Swept{Expired: 4}, sw)
	for _, gone := range []string{"old.txt", "a", "c/old.txt"} {
		assert.False(t, exists(t, filepath.Join(e.dir, gone)), "%s must be removed", gone)
	}
	for _, kept := range []string{"new.txt", "c/new.txt", ".spillway-uploads/" + u.ID + "/data", ".spillway-uploads/tus/" + tus.ID + "/data"} {
		assert.True(t, exists(t, filepath.Join(e.dir, kept)), "%s must stay", kept)
	}

	// Both uploads still complete, and their files are new.
	_, err = e.store.Complete(t.Context(), u.ID, []store.Part{part})
	require.NoError(t, err)
	appendChunk(t, e.store, tus.ID, 5, []byte("56789"))
	sw, err = e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Zero(t, sw.Expired)
	uploadtest.RequireFile(t, mp, filepath.Join(e.dir, mp.Name))
	got, err := os.ReadFile(filepath.Join(e.dir, "tus.bin"))
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(got))

	infos, _, err := e.store.List(t.Context(), store.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	assert.Equal(t, []string{"c/new.txt", "multi.bin", "new.txt", "tus.bin"}, names)
	// The finished upload's record goes with its termination, and the tus
	// area stays once made; the env checks that it is empty.
	require.NoError(t, e.store.Terminate(t.Context(), tus.ID))
	require.NoError(t, os.Remove(tusDir(e.dir)))
}

// Without a retention the sweep removes no file, however old.
func TestSweepWithoutRetentionKeepsFiles(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	putFiles(t, e, time.Unix(0, 0), "ancient.txt")
	sw, err := e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Zero(t, sw)
	assert.True(t, exists(t, filepath.Join(e.dir, "ancient.txt")))
}

// One pass walks a bounded number of names; the next goes on after the
// last, and the one after that starts over.
func TestSweepIsBoundedAndResumes(t *testing.T) {
	e := newEnv(t, dirstore.Options{Retention: time.Hour})
	dirstore.SetSweepBatch(e.store, 2, 3)
	old := time.Now().Add(-2 * time.Hour)
	names := []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9"}
	putFiles(t, e, old, names...)
	var seen []string
	dirstore.OnExpired(e.store, func(name string) { seen = append(seen, name) })

	sw, err := e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 6, sw.Expired, "two pages of three")
	assert.Equal(t, names[:6], seen)
	sw, err = e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 4, sw.Expired, "the rest, after the last name")
	assert.Equal(t, names, seen)

	putFiles(t, e, old, "a0")
	sw, err = e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, sw.Expired, "the last pass reached the end: this one starts over")
}

// A file stored again under its name, or touched, between the listing
// and the removal is newer than the retention by then, and stays.
func TestSweepKeepsAFileModifiedMeanwhile(t *testing.T) {
	for _, caseSensitive := range []bool{false, true} {
		e := newEnv(t, dirstore.Options{Retention: time.Hour, CaseSensitiveNames: caseSensitive})
		putFiles(t, e, time.Now().Add(-2*time.Hour), "d/replaced.txt", "d/old.txt")
		dirstore.OnExpired(e.store, func(name string) {
			if name == "d/replaced.txt" {
				require.NoError(t, e.store.Delete(t.Context(), name))
				putFiles(t, e, time.Now(), name)
			}
		})
		sw, err := e.store.Sweep(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, sw.Expired)
		got, err := os.ReadFile(filepath.Join(e.dir, "d", "replaced.txt"))
		require.NoError(t, err, "case-sensitive %v", caseSensitive)
		assert.Equal(t, "d/replaced.txt", string(got))
		assert.False(t, exists(t, filepath.Join(e.dir, "d", "old.txt")))
	}
}

// A cancelled sweep stops before removing anything more, and the next
// one does the rest.
func TestSweepStopsWhenCancelled(t *testing.T) {
	e := newEnv(t, dirstore.Options{Retention: time.Hour})
	putFiles(t, e, time.Now().Add(-2*time.Hour), "a", "b", "c")
	ctx, cancel := context.WithCancel(t.Context())
	dirstore.OnExpired(e.store, func(name string) {
		if name == "b" {
			cancel()
		}
	})
	sw, err := e.store.Sweep(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 2, sw.Expired, "a and b, whose removal was under way, went")
	assert.True(t, exists(t, filepath.Join(e.dir, "c")), "nothing after the cancel")

	dirstore.OnExpired(e.store, nil)
	sw, err = e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, sw.Expired)
	_, err = e.store.Sweep(ctx)
	require.ErrorIs(t, err, context.Canceled, "a sweep with its context done does nothing")
}

// A tus upload whose last bytes came long ago, completed by declaring its
// length, makes a file dated at its completion, which the sweep keeps.
func TestSweepKeepsATusFileCompletedLate(t *testing.T) {
	e := newEnv(t, dirstore.Options{Retention: time.Hour})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "late.bin", Size: store.UnknownSize})
	require.NoError(t, err)
	appendChunk(t, e.store, u.ID, 0, []byte("0123456789"))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(tusDir(e.dir), u.ID, "data"), old, old))
	a, err := e.store.Append(t.Context(), u.ID, store.Chunk{Offset: 10, Size: 10, Body: strings.NewReader(""), MaxSize: 1 << 30})
	require.NoError(t, err)
	require.NotNil(t, a.Done, "declaring the length completes it")

	sw, err := e.store.Sweep(t.Context())
	require.NoError(t, err)
	assert.Zero(t, sw.Expired)
	assert.True(t, exists(t, filepath.Join(e.dir, "late.bin")))
	require.NoError(t, e.store.Terminate(t.Context(), u.ID))
	require.NoError(t, os.Remove(tusDir(e.dir)))
}
