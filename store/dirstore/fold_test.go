package dirstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
)

// caseTwins are pairs of names that are one file on Windows and macOS.
var caseTwins = [][2]string{
	{"Readme.TXT", "readme.txt"},
	{"été.txt", "ÉTÉ.txt"},
	{"Straße.txt", "STRAẞE.txt"}, // U+1E9E folds to ß
	{"Docs/a.txt", "docs/b.txt"}, // a folder
	{"x/Docs/a.txt", "x/DOCS"},   // a file beside a folder
	{"ΣΊΣΥΦΟΣ.txt", "σίσυφος.txt"},
}

// TestCaseTwinsAreRefused: a name that differs from a stored one only in
// case is refused with ErrExists, before the body (Check) and at publish,
// small and spooled to disk, with and without overwrite, and leaves no
// folder behind.
func TestCaseTwinsAreRefused(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		e := newEnv(t, dirstore.Options{Overwrite: overwrite})
		for i, tw := range caseTwins {
			require.NoError(t, put(t, e, uploadtest.File{Name: tw[0], Seed: uint64(i), Size: 10}))
			require.ErrorIs(t, e.store.Check(t.Context(), tw[1], 10), store.ErrExists, "%q after %q", tw[1], tw[0])
			for _, size := range []int64{10, threshold + 1} {
				err := put(t, e, uploadtest.File{Name: tw[1], Seed: 99, Size: size})
				require.ErrorIs(t, err, store.ErrExists, "%q after %q", tw[1], tw[0])
				assert.Contains(t, err.Error(), "differs only in case")
			}
			_, err := os.Lstat(filepath.Join(e.dir, tw[1]))
			require.ErrorIs(t, err, os.ErrNotExist, "%q was stored", tw[1])
		}
		_, err := os.Lstat(filepath.Join(e.dir, "docs"))
		require.ErrorIs(t, err, os.ErrNotExist, "the folder made for a twin was left")
		// The same name again is the ordinary conflict, or a replacement.
		err = put(t, e, uploadtest.File{Name: "readme.txt", Size: 1}, uploadtest.File{Name: "Readme.TXT", Size: 1})
		require.ErrorIs(t, err, store.ErrExists)
	}
}

func TestCaseSensitiveNamesStoresTwins(t *testing.T) {
	e := newEnv(t, dirstore.Options{CaseSensitiveNames: true})
	for i, tw := range caseTwins {
		require.NoError(t, put(t, e, uploadtest.File{Name: tw[0], Seed: uint64(i), Size: 10}))
		if tw[1] == "x/DOCS" {
			continue
		}
		require.NoError(t, e.store.Check(t.Context(), tw[1], 10))
		require.NoError(t, put(t, e, uploadtest.File{Name: tw[1], Seed: uint64(i), Size: 10}))
	}
}

// TestCaseTwinsRacing publishes every case variant of one name at once,
// in the root and in folders the writers make, in either case: exactly one
// lands.
func TestCaseTwinsRacing(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	listed := 0
	for _, prefix := range []string{"", "new/", "deep/er/"} {
		var names []string
		for _, a := range []string{"r", "R"} {
			for _, b := range []string{"e", "E"} {
				for _, c := range []string{"x.bin", "X.BIN"} {
					names = append(names, a+b+c)
				}
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for i, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A different folder case per writer for folders, too.
				p := prefix
				if i%2 == 1 {
					p = upper(prefix)
				}
				errs[i] = put(t, e, uploadtest.File{Name: p + n, Seed: uint64(i), Size: threshold + 1})
			}()
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
		files, _, err := e.store.List(t.Context(), store.ListOptions{})
		require.NoError(t, err)
		require.Len(t, files, listed+stored, "%q: a refused twin was stored", prefix)
		listed = len(files)
		require.Equal(t, 1, stored, "%q: %v", prefix, files)
		t.Logf("%q: %d of %d racing twins stored", prefix, stored, len(names))
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// TestCaseTwinCheckCost measures what the twin check adds to a publish
// into a large folder made by hand: the first reads the whole folder, the
// rest find the folder indexed.
func TestCaseTwinCheckCost(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a folder with 30,000 files")
	}
	const files, puts = 30000, 20
	e := newEnv(t, dirstore.Options{})
	big := filepath.Join(e.dir, "big")
	require.NoError(t, os.Mkdir(big, 0o755))
	for i := range files {
		require.NoError(t, os.WriteFile(filepath.Join(big, fmt.Sprintf("file-%05d-É.txt", i)), nil, 0o644))
	}
	sensitive, _, err := dirstore.Open(e.dir, dirstore.Options{CaseSensitiveNames: true})
	require.NoError(t, err)
	defer sensitive.Close()
	one := func(st *dirstore.Store, name string) time.Duration {
		start := time.Now()
		f := uploadtest.File{Name: name, Size: 10}
		require.NoError(t, st.Check(t.Context(), f.Name, f.Size))
		require.NoError(t, st.Put(t.Context(), []store.File{{Name: f.Name, Body: storetest.Body(t, e.spooler, f)}}))
		return time.Since(start)
	}
	per := func(st *dirstore.Store, prefix string) (first, rest time.Duration) {
		first = one(st, fmt.Sprintf("big/%s-first.txt", prefix))
		for i := range puts {
			rest += one(st, fmt.Sprintf("big/%s-%d.txt", prefix, i))
		}
		return first, rest / puts
	}
	_, off := per(sensitive, "sensitive")
	first, on := per(e.store, "checked")
	t.Logf("one Check and Put into a folder of %d files: %v with the twin check (the first: %v), %v without",
		files, on.Round(time.Microsecond), first.Round(time.Microsecond), off.Round(time.Microsecond))
}
