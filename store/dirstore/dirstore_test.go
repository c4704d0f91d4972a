package dirstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
)

const threshold = 64 << 10

type env struct {
	store    *dirstore.Store
	spooler  *spool.Spooler
	dir      string // the store's root
	spoolDir string
}

func newEnv(t *testing.T, opts dirstore.Options) *env {
	t.Helper()
	return newEnvWith(t, opts, dirstore.Open)
}

// newEnvWith is newEnv with the store opened by open.
func newEnvWith(t *testing.T, opts dirstore.Options, open func(string, dirstore.Options) (*dirstore.Store, int, error)) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), opts, open)
}

// newEnvIn is newEnvWith with the store's directory made in root, such as
// a filesystem of the test's own.
func newEnvIn(t *testing.T, root string, opts dirstore.Options, open func(string, dirstore.Options) (*dirstore.Store, int, error)) *env {
	t.Helper()
	e := &env{dir: filepath.Join(root, "uploads"), spoolDir: t.TempDir()}
	var err error
	e.spooler, err = spool.New(spool.Config{Dir: e.spoolDir, Threshold: threshold, MemoryBudget: 1 << 30})
	require.NoError(t, err)
	e.store, _, err = open(e.dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Bodies are closed by their own cleanups, registered later and so
		// run first: by now the spool must be empty.
		uploadtest.RequireEmptyDir(t, e.spoolDir)
		requireNoStaging(t, e.dir)
		e.store.Close()
	})
	return e
}

// requireNoStaging fails t if a staging file is left anywhere in dir, or an
// upload (or a part, or a half-created upload) in the multipart area.
func requireNoStaging(t *testing.T, dir string) {
	t.Helper()
	uploads := filepath.Join(dir, ".spillway-uploads")
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if path == uploads && d.IsDir() {
			uploadtest.RequireEmptyDir(t, path)
			return filepath.SkipDir
		}
		assert.NotRegexp(t, `^\.spillway-`, d.Name(), "staging file left at %s", path)
		return nil
	})
}

func TestConformance(t *testing.T) {
	for _, fsync := range []bool{true, false} {
		t.Run(map[bool]string{true: "fsync", false: "nofsync"}[fsync], func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) (store.Store, *spool.Spooler) {
				e := newEnv(t, dirstore.Options{Fsync: fsync})
				return e.store, e.spooler
			})
		})
	}
}

func TestListConformance(t *testing.T) {
	storetest.RunList(t, func(t *testing.T) (store.Store, *spool.Spooler, func(string) error) {
		// The suite stores "b.txt" beside "B.txt" to check byte order, as
		// S3 keeps them.
		e := newEnv(t, dirstore.Options{CaseSensitiveNames: true})
		return e.store, e.spooler, func(name string) error { return os.Remove(filepath.Join(e.dir, name)) }
	})
}

func TestMultipartConformance(t *testing.T) {
	for _, opts := range []dirstore.Options{{Fsync: true}, {}} {
		t.Run(map[bool]string{true: "fsync", false: "nofsync"}[opts.Fsync], func(t *testing.T) {
			storetest.RunMultipart(t, func(t *testing.T) (store.Store, *spool.Spooler) {
				e := newEnv(t, opts)
				return e.store, e.spooler
			})
		})
	}
}

// TestPortableConformance runs the conformance suites against the
// fallbacks that macOS uses (named staging files, copies instead of links
// from the spool, os.File.ReadDir), here on Linux.
func TestPortableConformance(t *testing.T) {
	for _, fsync := range []bool{true, false} {
		name := map[bool]string{true: "fsync", false: "nofsync"}[fsync]
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) (store.Store, *spool.Spooler) {
				e := newEnvWith(t, dirstore.Options{Fsync: fsync}, dirstore.OpenPortable)
				return e.store, e.spooler
			})
		})
		t.Run("multipart/"+name, func(t *testing.T) {
			storetest.RunMultipart(t, func(t *testing.T) (store.Store, *spool.Spooler) {
				e := newEnvWith(t, dirstore.Options{Fsync: fsync}, dirstore.OpenPortable)
				return e.store, e.spooler
			})
		})
	}
	t.Run("list", func(t *testing.T) {
		storetest.RunList(t, func(t *testing.T) (store.Store, *spool.Spooler, func(string) error) {
			e := newEnvWith(t, dirstore.Options{CaseSensitiveNames: true}, dirstore.OpenPortable)
			return e.store, e.spooler, func(name string) error { return os.Remove(filepath.Join(e.dir, name)) }
		})
	})
}

// TestPortableCopiesFromTheSpooledFile checks the fallback's one extra
// cost and its safety: a disk body is copied, not linked, and the copy is
// of the file the spooler wrote, not of what its name leads to.
func TestPortableCopiesFromTheSpooledFile(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		t.Run(map[bool]string{false: "create", true: "overwrite"}[overwrite], func(t *testing.T) {
			e := newEnvWith(t, dirstore.Options{Overwrite: overwrite, Fsync: true}, dirstore.OpenPortable)
			f := uploadtest.File{Name: "victim.bin", Seed: 7, Size: threshold * 2}
			b := storetest.Body(t, e.spooler, f)
			require.Equal(t, spool.Disk, b.Location())
			spooled, err := b.File().Stat()
			require.NoError(t, err)
			replaceSpoolName(t, e.spoolDir, b, f.Size)
			require.NoError(t, e.store.Put(t.Context(), []store.File{{Name: f.Name, Body: b}}))
			uploadtest.RequireFile(t, f, filepath.Join(e.dir, f.Name))
			stored, err := os.Stat(filepath.Join(e.dir, f.Name))
			require.NoError(t, err)
			assert.False(t, os.SameFile(spooled, stored), "the portable path copies")
			assert.Equal(t, os.FileMode(0o644), stored.Mode().Perm())
		})
	}
}

func put(t *testing.T, e *env, files ...uploadtest.File) error {
	t.Helper()
	var puts []store.File
	for _, f := range files {
		puts = append(puts, store.File{Name: f.Name, Body: storetest.Body(t, e.spooler, f)})
	}
	return e.store.Put(t.Context(), puts)
}

func TestDiskBodyIsPublishedByLinkNotCopy(t *testing.T) {
	e := newEnv(t, dirstore.Options{Fsync: true})
	f := uploadtest.File{Name: "big.bin", Seed: 1, Size: threshold + 1}
	b := storetest.Body(t, e.spooler, f)
	require.Equal(t, spool.Disk, b.Location())
	require.NoError(t, e.store.Put(t.Context(), []store.File{{Name: f.Name, Body: b}}))

	spooled, err := b.File().Stat()
	require.NoError(t, err)
	stored, err := os.Stat(filepath.Join(e.dir, f.Name))
	require.NoError(t, err)
	assert.True(t, os.SameFile(spooled, stored), "the stored file must be the spool file's inode")
	assert.Equal(t, os.FileMode(0o644), stored.Mode().Perm())
	assert.Empty(t, spoolName(t, e.spoolDir, b), "the spool name is dropped once the file is linked")
	uploadtest.RequireEmptyDir(t, e.spoolDir)
}

// spoolName returns the name b's file has in the spool dir dir, or ""
// when no name there leads to it.
func spoolName(t *testing.T, dir string, b *spool.Body) string {
	t.Helper()
	mine, err := b.File().Stat()
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		if fi, err := os.Lstat(name); err == nil && os.SameFile(mine, fi) {
			return name
		}
	}
	return ""
}

// replaceSpoolName puts other bytes under b's spool file name in dir, as
// anyone who can write to the spool directory can: an upload into a
// directory that is also the spool dir, say.
func replaceSpoolName(t *testing.T, dir string, b *spool.Body, size int64) {
	t.Helper()
	name := spoolName(t, dir, b)
	require.NotEmpty(t, name)
	evil := name + ".evil"
	require.NoError(t, os.WriteFile(evil, bytes.Repeat([]byte("X"), int(size)), 0o600))
	require.NoError(t, os.Rename(evil, name))
	t.Cleanup(func() { os.Remove(name) })
}

func TestPublishesTheFileSpooledNotWhatItsNameLeadsTo(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		t.Run(map[bool]string{false: "create", true: "overwrite"}[overwrite], func(t *testing.T) {
			e := newEnv(t, dirstore.Options{Overwrite: overwrite, Fsync: true})
			f := uploadtest.File{Name: "victim.bin", Seed: 7, Size: threshold * 2}
			b := storetest.Body(t, e.spooler, f)
			require.Equal(t, spool.Disk, b.Location())
			replaceSpoolName(t, e.spoolDir, b, f.Size)
			require.NoError(t, e.store.Put(t.Context(), []store.File{{Name: f.Name, Body: b}}))
			uploadtest.RequireFile(t, f, filepath.Join(e.dir, f.Name))
		})
	}
}

func TestSpoolFileStaysPrivateInTheSpoolDir(t *testing.T) {
	e := newEnv(t, dirstore.Options{Fsync: true})
	f := uploadtest.File{Name: "private.bin", Seed: 8, Size: threshold * 2}
	b := storetest.Body(t, e.spooler, f)
	require.Equal(t, spool.Disk, b.Location())
	require.NoError(t, e.store.Put(t.Context(), []store.File{{Name: f.Name, Body: b}}))
	// The body is not closed yet: whatever it left in the spool dir is
	// still there, and must not be readable by others.
	entries, err := os.ReadDir(e.spoolDir)
	require.NoError(t, err)
	for _, d := range entries {
		fi, err := d.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s in the spool dir", d.Name())
	}
	stored, err := os.Stat(filepath.Join(e.dir, f.Name))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), stored.Mode().Perm())
}

func TestFileMode(t *testing.T) {
	old := syscall.Umask(0o077) // the mode must not depend on it
	defer syscall.Umask(old)
	for _, mode := range []os.FileMode{0, 0o640, 0o600, 0o755} {
		want := mode
		if want == 0 {
			want = dirstore.DefaultFileMode
		}
		t.Run(want.String(), func(t *testing.T) {
			e := newEnv(t, dirstore.Options{FileMode: mode, Fsync: true})
			small := uploadtest.File{Name: "memory.bin", Seed: 1, Size: 10}
			big := uploadtest.File{Name: "sub/disk.bin", Seed: 2, Size: threshold * 2}
			require.NoError(t, put(t, e, small, big))

			parted := uploadtest.File{Name: "parts.bin", Seed: 3, Size: threshold * 2}
			u := createUpload(t, e.store, parted)
			p, err := e.store.PutPart(t.Context(), u.ID, 1, storetest.Body(t, e.spooler, parted))
			require.NoError(t, err)
			entries, err := os.ReadDir(uploadDir(e, u.ID))
			require.NoError(t, err)
			for _, d := range entries {
				fi, err := d.Info()
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "parts and manifests stay private: %s", d.Name())
			}
			_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
			require.NoError(t, err)

			for _, f := range []uploadtest.File{small, big, parted} {
				fi, err := os.Stat(filepath.Join(e.dir, f.Name))
				require.NoError(t, err)
				assert.Equal(t, want, fi.Mode().Perm(), f.Name)
			}
		})
	}
	_, _, err := dirstore.Open(t.TempDir(), dirstore.Options{FileMode: os.ModeSetuid | 0o644})
	require.Error(t, err)
}

func TestCopyFallbackWhenSpoolNameIsGone(t *testing.T) {
	// Another process's sweep may have unlinked the spool name; the open
	// file still holds the bytes, so they are copied instead.
	e := newEnv(t, dirstore.Options{})
	f := uploadtest.File{Name: "swept.bin", Seed: 2, Size: threshold * 3}
	b := storetest.Body(t, e.spooler, f)
	require.NoError(t, os.Remove(spoolName(t, e.spoolDir, b)))
	require.NoError(t, e.store.Put(t.Context(), []store.File{{Name: f.Name, Body: b}}))
	uploadtest.RequireFile(t, f, filepath.Join(e.dir, f.Name))
}

func TestSymlinkCannotEscape(t *testing.T) {
	e := newEnv(t, dirstore.Options{Overwrite: true})
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("keep"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(e.dir, "escape")))
	require.NoError(t, os.Symlink(secret, filepath.Join(e.dir, "link.txt")))

	for _, name := range []string{"escape/new.bin", "escape/secret.txt"} {
		require.ErrorIs(t, e.store.Check(t.Context(), name, 1), store.ErrInvalidName, name)
		for _, size := range []int64{5, threshold + 1} {
			err := put(t, e, uploadtest.File{Name: name, Size: size})
			require.ErrorIs(t, err, store.ErrInvalidName, name)
		}
		_, _, err := e.store.Open(t.Context(), name)
		require.ErrorIs(t, err, store.ErrInvalidName)
	}
	// Overwriting a symlinked name replaces the link, never its target.
	require.NoError(t, put(t, e, uploadtest.File{Name: "link.txt", Size: 3}))
	got, err := os.ReadFile(secret)
	require.NoError(t, err)
	assert.Equal(t, "keep", string(got))
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing may be written outside the root")
}

func TestSymlinkNoOverwriteIsConflict(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	secret := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("keep"), 0o644))
	require.NoError(t, os.Symlink(secret, filepath.Join(e.dir, "link.txt")))
	err := put(t, e, uploadtest.File{Name: "link.txt", Size: 3})
	require.Error(t, err)
	got, _ := os.ReadFile(secret)
	assert.Equal(t, "keep", string(got))
}

func TestOverwrite(t *testing.T) {
	e := newEnv(t, dirstore.Options{Overwrite: true, Fsync: true})
	old := uploadtest.File{Name: "o/f.bin", Seed: 1, Size: 10}
	require.NoError(t, put(t, e, old))
	require.NoError(t, e.store.Check(t.Context(), old.Name, 1))
	newer := uploadtest.File{Name: old.Name, Seed: 2, Size: threshold + 5}
	require.NoError(t, put(t, e, newer))
	storetest.RequireStored(t, e.store, newer)

	// A failing request restores what its earlier files replaced.
	require.NoError(t, os.Mkdir(filepath.Join(e.dir, "adir"), 0o755))
	err := put(t, e, uploadtest.File{Name: old.Name, Seed: 3, Size: 7}, uploadtest.File{Name: "adir", Size: 1})
	require.ErrorIs(t, err, store.ErrExists)
	storetest.RequireStored(t, e.store, newer)
	require.ErrorIs(t, e.store.Check(t.Context(), "adir", 1), store.ErrExists)
}

func TestFileAndDirectoryNamesConflict(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	require.NoError(t, put(t, e, uploadtest.File{Name: "d/f.bin", Size: 1}))
	storetest.RequireAbsent(t, e.store, "d")
	err := put(t, e, uploadtest.File{Name: "d/f.bin/g.bin", Size: 1})
	require.ErrorIs(t, err, store.ErrExists)
	require.ErrorIs(t, put(t, e, uploadtest.File{Name: "d", Size: 1}), store.ErrExists)
}

func TestOpenSweepsOrphanedStagingFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	orphans := []string{".spillway-AAAA.tmp", "sub/.spillway-BBBB.tmp", "sub/.spillway-CCCC.bak"}
	for _, o := range orphans {
		require.NoError(t, os.WriteFile(filepath.Join(dir, o), []byte("partial"), 0o644))
	}
	keep := filepath.Join(dir, "sub", "kept.txt")
	require.NoError(t, os.WriteFile(keep, []byte("data"), 0o644))

	s, n, err := dirstore.Open(dir, dirstore.Options{})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, len(orphans), n)
	for _, o := range orphans {
		assert.NoFileExists(t, filepath.Join(dir, o))
	}
	assert.FileExists(t, keep)
	assert.Equal(t, []string{"sub/kept.txt"}, storetest.ListAll(t, s, "", 0))
}

func TestCheckTopLevelSymlinks(t *testing.T) {
	// Check stats names in the store's own folder through its descriptor,
	// and follows a symlink there only through the root.
	e := newEnv(t, dirstore.Options{})
	outside := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(outside, []byte("keep"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(e.dir, "adir"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "afile"), nil, 0o644))
	require.NoError(t, os.Symlink("adir", filepath.Join(e.dir, "dirlink")))
	require.NoError(t, os.Symlink(outside, filepath.Join(e.dir, "outlink")))
	require.NoError(t, os.Symlink("nowhere", filepath.Join(e.dir, "dangling")))
	for name, want := range map[string]error{
		"afile":    store.ErrExists,
		"adir":     store.ErrExists,
		"dirlink":  store.ErrExists,
		"outlink":  store.ErrInvalidName,
		"dangling": nil,
		"new.bin":  nil,
	} {
		err := e.store.Check(t.Context(), name, 1)
		if want == nil {
			assert.NoError(t, err, name)
			continue
		}
		assert.ErrorIs(t, err, want, name)
	}
	e2 := newEnv(t, dirstore.Options{Overwrite: true})
	require.NoError(t, os.Mkdir(filepath.Join(e2.dir, "adir"), 0o755))
	require.NoError(t, os.Symlink("adir", filepath.Join(e2.dir, "dirlink")))
	require.ErrorIs(t, e2.store.Check(t.Context(), "dirlink", 1), store.ErrExists, "a symlink to a folder is a folder")
}
