package dirstore_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
)

// Deleting the last file of a folder removes the folder, while uploads
// into that same folder, memory and disk bodies, case-sensitive or not,
// race it: every upload still lands, and no folder is left empty.
func TestDeleteLastFileRacesUploadsIntoItsFolder(t *testing.T) {
	for _, cs := range []bool{false, true} {
		t.Run(map[bool]string{false: "casefold", true: "casesensitive"}[cs], func(t *testing.T) {
			e := newEnv(t, dirstore.Options{Fsync: true, CaseSensitiveNames: cs})
			ctx := t.Context()
			for i := range 16 {
				last := uploadtest.File{Name: "f/g/last.bin", Seed: uint64(i), Size: 10}
				require.NoError(t, put(t, e, last))
				size := int64(20)
				if i%2 == 1 {
					size = threshold + 1
				}
				next := uploadtest.File{Name: "f/g/next.bin", Seed: uint64(i), Size: size}
				body := storetest.Body(t, e.spooler, next)
				var delErr, putErr error
				var wg sync.WaitGroup
				start := make(chan struct{})
				wg.Go(func() { <-start; delErr = e.store.Delete(context.Background(), last.Name) })
				wg.Go(func() {
					<-start
					putErr = e.store.Put(context.Background(), []store.File{{Name: next.Name, Body: body}})
				})
				close(start)
				wg.Wait()
				require.NoError(t, delErr)
				require.NoError(t, putErr)
				storetest.RequireAbsent(t, e.store, last.Name)
				storetest.RequireStored(t, e.store, next)
				require.NoError(t, e.store.Delete(ctx, next.Name))
				requireNoEntries(t, e.dir)
			}
		})
	}
}

// requireNoEntries fails t unless dir holds nothing but the multipart area.
func requireNoEntries(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, en := range entries {
		require.Equal(t, ".spillway-uploads", en.Name(), "left in the store's root")
	}
}

// Deleting a file leaves its folders only if they hold something else.
func TestDeleteRemovesOnlyEmptyFolders(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	for _, name := range []string{"a/b/c/x.bin", "a/keep.bin"} {
		require.NoError(t, put(t, e, uploadtest.File{Name: name, Size: 1}))
	}
	require.NoError(t, e.store.Delete(t.Context(), "a/b/c/x.bin"))
	require.NoDirExists(t, filepath.Join(e.dir, "a", "b"))
	require.FileExists(t, filepath.Join(e.dir, "a", "keep.bin"))
	require.NoError(t, e.store.Delete(t.Context(), "a/keep.bin"))
	require.DirExists(t, e.dir, "the store's own directory stays")
	requireNoEntries(t, e.dir)
}

// A reader opened before the delete reads the file to its end.
func TestDeleteKeepsOpenReaders(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	f := uploadtest.File{Name: "dl/big.bin", Seed: 7, Size: 4 << 20}
	require.NoError(t, put(t, e, f))
	_, rc, err := e.store.Open(t.Context(), f.Name)
	require.NoError(t, err)
	defer rc.Close()
	head := make([]byte, 1<<20)
	_, err = io.ReadFull(rc, head)
	require.NoError(t, err)
	require.NoError(t, e.store.Delete(t.Context(), f.Name))
	storetest.RequireAbsent(t, e.store, f.Name)
	rest, err := io.ReadAll(rc)
	require.NoError(t, err)
	uploadtest.RequireContent(t, f, io.MultiReader(bytes.NewReader(head), bytes.NewReader(rest)))
}

// A planted symlink is not a file to delete, and what it leads to stays.
func TestDeleteLeavesSymlinksAlone(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	outside := filepath.Join(t.TempDir(), "target.bin")
	require.NoError(t, os.WriteFile(outside, []byte("x"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(e.dir, "link.bin")))
	require.ErrorIs(t, e.store.Delete(t.Context(), "link.bin"), store.ErrNotFound)
	require.FileExists(t, outside)
	require.NoError(t, os.Symlink(filepath.Dir(outside), filepath.Join(e.dir, "out")))
	require.ErrorIs(t, e.store.Delete(t.Context(), "out/target.bin"), store.ErrInvalidName)
	require.FileExists(t, outside)
}

// Of several deletes of one file at once, one deletes it and the others
// find nothing.
func TestConcurrentDeletesOneWins(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	f := uploadtest.File{Name: "d/once.bin", Seed: 1, Size: 10}
	require.NoError(t, put(t, e, f))
	errs := make([]error, 8)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() { <-start; errs[i] = e.store.Delete(context.Background(), f.Name) })
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	require.Equal(t, 1, won, "%v", errs)
	requireNoEntries(t, e.dir)
}
