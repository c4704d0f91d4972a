package dirstore_test

import (
	"fmt"
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

// putTo is put into the store s, which shares e's directory and spooler.
func putTo(t *testing.T, e *env, s *dirstore.Store, files ...uploadtest.File) error {
	t.Helper()
	var puts []store.File
	for _, f := range files {
		puts = append(puts, store.File{Name: f.Name, Body: storetest.Body(t, e.spooler, f)})
	}
	return s.Put(t.Context(), puts)
}

// secondStore opens another Store on e's directory, as a second server
// sharing it would: it shares nothing with e.store but the directory.
func secondStore(t *testing.T, e *env) *dirstore.Store {
	t.Helper()
	s, _, err := dirstore.Open(e.dir, dirstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCaseTwinCheckReadsFolderOnce: uploads into a folder read it once,
// not once each; the folder of many files made that quadratic.
func TestCaseTwinCheckReadsFolderOnce(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	reads := dirstore.CountFolderReads(t, e.store)
	const n = 50
	for i := range n {
		name := fmt.Sprintf("many/file-%03d.txt", i)
		require.NoError(t, e.store.Check(t.Context(), name, 1))
		require.NoError(t, put(t, e, uploadtest.File{Name: name, Seed: uint64(i), Size: 10}))
	}
	// The root and "many", each at most twice: by Check and at the first
	// commit, before either is indexed.
	require.LessOrEqual(t, reads(), 4, "folder reads for %d uploads", n)
	require.ErrorIs(t, e.store.Check(t.Context(), "MANY/File-007.TXT", 1), store.ErrExists)
}

// TestCaseTwinsAcrossStores: a twin that another store on the same
// directory, or a hand, put in a folder this store has indexed, right
// after this store's own upload there (within one tick of the clock that
// stamps folders), is refused all the same.
func TestCaseTwinsAcrossStores(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	other := secondStore(t, e)
	for i := range 100 {
		dir := fmt.Sprintf("d%d", i%3)
		mine := fmt.Sprintf("%s/mine-%d.txt", dir, i)
		require.NoError(t, put(t, e, uploadtest.File{Name: mine, Seed: uint64(i), Size: 10}))
		var base string
		switch i % 2 {
		case 0:
			base = fmt.Sprintf("Theirs-%d.txt", i)
			require.NoError(t, putTo(t, e, other, uploadtest.File{Name: dir + "/" + base, Seed: uint64(i), Size: 10}))
		case 1:
			base = fmt.Sprintf("Hand-%d.txt", i)
			require.NoError(t, os.WriteFile(filepath.Join(e.dir, dir, base), nil, 0o644))
		}
		theirs, twin := dir+"/"+base, dir+"/"+upper(base)
		require.ErrorIs(t, e.store.Check(t.Context(), twin, 10), store.ErrExists, "%q after %q", twin, theirs)
		err := put(t, e, uploadtest.File{Name: twin, Seed: 1, Size: 10})
		require.ErrorIs(t, err, store.ErrExists, "%q after %q", twin, theirs)
		require.Contains(t, err.Error(), "differs only in case")
	}
}

// TestCaseTwinAfterOtherStoreDeletes: a name another store deleted is no
// twin any more, and a folder it removed and made again is not taken for
// the one indexed.
func TestCaseTwinAfterOtherStoreDeletes(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	other := secondStore(t, e)
	require.NoError(t, put(t, e, uploadtest.File{Name: "f/a.txt", Size: 1}))
	require.NoError(t, other.Delete(t.Context(), "f/a.txt"))
	require.NoError(t, put(t, e, uploadtest.File{Name: "f/A.TXT", Size: 1}))
	// "f" is removed with its last file and made again by the other store.
	require.NoError(t, e.store.Delete(t.Context(), "f/A.TXT"))
	require.NoError(t, putTo(t, e, other, uploadtest.File{Name: "f/b.txt", Size: 1}))
	require.ErrorIs(t, put(t, e, uploadtest.File{Name: "f/B.txt", Size: 1}), store.ErrExists)
	require.ErrorIs(t, put(t, e, uploadtest.File{Name: "F/c.txt", Size: 1}), store.ErrExists)
}

// TestCaseTwinsRacingAcrossStores: every case variant of one name,
// published at once through two stores on one directory, into a folder
// both have indexed: exactly one lands.
func TestCaseTwinsRacingAcrossStores(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	stores := []*dirstore.Store{e.store, secondStore(t, e)}
	for round := range 20 {
		// Each store indexes the folder by an upload of its own.
		for i, s := range stores {
			require.NoError(t, putTo(t, e, s, uploadtest.File{Name: fmt.Sprintf("race/warm-%d-%d", round, i), Size: 1}))
		}
		base := fmt.Sprintf("race/twin-%d.bin", round)
		names := []string{base, upper(base), "race/Twin-" + base[len("race/twin-"):], "race/tWIN-" + base[len("race/twin-"):]}
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for i, n := range names {
			wg.Go(func() {
				errs[i] = putTo(t, e, stores[i%2], uploadtest.File{Name: n, Seed: uint64(i), Size: 10})
			})
		}
		wg.Wait()
		stored := 0
		for _, err := range errs {
			if err == nil {
				stored++
			} else {
				require.ErrorIs(t, err, store.ErrExists)
			}
		}
		require.Equal(t, 1, stored, "round %d: %v", round, errs)
	}
}
