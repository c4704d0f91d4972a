package dirstore_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
)

// tree lists what is under dir, directories with a trailing slash, leaving
// out the multipart area.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel == ".spillway-uploads" {
				return filepath.SkipDir
			}
			rel += "/"
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	}))
	return names
}

// requireNoEmptyDirs fails t if a directory under dir, but the multipart
// area, is empty.
func requireNoEmptyDirs(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == dir {
			return err
		}
		if d.Name() == ".spillway-uploads" {
			return filepath.SkipDir
		}
		entries, err := os.ReadDir(p)
		require.NoError(t, err)
		assert.NotEmpty(t, entries, "empty directory left at %s", p)
		return nil
	}))
}

// cancelAfter is a context that is cancelled once Err has been asked n
// times: Put asks before staging each file.
type cancelAfter struct {
	context.Context
	n atomic.Int32
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestFailedPutLeavesNoDirectories(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		ctx   func(context.Context) context.Context
		want  error
	}{
		// Fails at commit: the directories were made, the first file
		// published, and both must go.
		{name: "taken name", files: []string{"new/deep/a.bin", "keep/sub/b.bin", "empty/c.bin", "taken.bin"}, want: store.ErrExists},
		// Fails while making a later file's directory.
		{name: "file in the way", files: []string{"n1/x/a.bin", "taken.bin/b.bin"}, want: store.ErrExists},
		// Fails at commit against a directory the same call made.
		{name: "own names conflict", files: []string{"n2/x.bin", "n2/x.bin/y.bin"}, want: store.ErrExists},
		{
			name: "cancelled", files: []string{"n3/a/b.bin", "n4/c.bin"}, want: context.Canceled,
			ctx: func(ctx context.Context) context.Context {
				c := &cancelAfter{Context: ctx}
				c.n.Store(1)
				return c
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, dirstore.Options{Fsync: true})
			taken := uploadtest.File{Name: "taken.bin", Seed: 1, Size: 10}
			require.NoError(t, put(t, e, taken))
			require.NoError(t, put(t, e, uploadtest.File{Name: "keep/old.bin", Seed: 2, Size: 10}))
			require.NoError(t, os.Mkdir(filepath.Join(e.dir, "empty"), 0o755))
			before := tree(t, e.dir)

			var puts []store.File
			for i, name := range tc.files {
				// Memory and disk bodies alternate: copied and linked.
				f := uploadtest.File{Name: name, Seed: uint64(10 + i), Size: 100 + int64(i%2)*threshold}
				puts = append(puts, store.File{Name: name, Body: storetest.Body(t, e.spooler, f)})
			}
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx(ctx)
			}
			require.ErrorIs(t, e.store.Put(ctx, puts), tc.want)
			assert.Equal(t, before, tree(t, e.dir), "the store must be as it was, pre-existing empty/ included")
			storetest.RequireStored(t, e.store, taken)
		})
	}
}

func TestFailedCompleteLeavesNoDirectories(t *testing.T) {
	for _, existing := range []string{"", "a", "a/b"} {
		t.Run("existing="+existing, func(t *testing.T) {
			e := newEnv(t, dirstore.Options{Fsync: true})
			if existing != "" {
				require.NoError(t, os.MkdirAll(filepath.Join(e.dir, existing), 0o755))
			}
			f := uploadtest.File{Name: "a/b/c.bin", Seed: 1, Size: threshold + 3}
			other := uploadtest.File{Seed: 2, Size: f.Size}
			u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: other.SHA256(), PartSize: store.MinPartSize})
			require.NoError(t, err)
			p, err := e.store.PutPart(t.Context(), u.ID, 1, storetest.Body(t, e.spooler, f))
			require.NoError(t, err)
			before := tree(t, e.dir)

			_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
			require.ErrorIs(t, err, store.ErrChecksum)
			assert.Equal(t, before, tree(t, e.dir), "only the directories that were there before may be left")
			if existing == "" {
				assert.NoDirExists(t, filepath.Join(e.dir, "a"))
			}
			requireUpload(t, e.store, u.ID, false)
		})
	}
}

// A call that fails removes the directories it made while another call
// that found them is about to publish into them: the other call's file
// must be there all the same. The interleavings that matter are driven one
// by one in TestDirRemovedFromUnderAStagedFile; here real calls race.
func TestConcurrentSuccessAndFailureInNewDirectory(t *testing.T) {
	e := newEnv(t, dirstore.Options{})
	taken := uploadtest.File{Name: "taken.bin", Seed: 1, Size: 10}
	require.NoError(t, put(t, e, taken))
	const rounds = 60
	var wanted []uploadtest.File
	for i := range rounds {
		dir := fmt.Sprintf("r%d/s", i)
		// Memory and disk bodies: copied (O_TMPFILE) and linked.
		ok := uploadtest.File{Name: dir + "/ok.bin", Seed: uint64(100 + i), Size: 500 + int64(i%2)*threshold}
		bad := uploadtest.File{Name: dir + "/bad.bin", Seed: uint64(1000 + i), Size: 700 + int64(i/2%2)*threshold}
		okBody := storetest.Body(t, e.spooler, ok)
		badBody := storetest.Body(t, e.spooler, bad)
		var fail func()
		if i%3 == 2 {
			// A multipart upload whose declared digest is wrong.
			u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: bad.Name, Size: bad.Size, SHA256: ok.SHA256(), PartSize: store.MinPartSize})
			require.NoError(t, err)
			p, err := e.store.PutPart(t.Context(), u.ID, 1, badBody)
			require.NoError(t, err)
			fail = func() {
				_, err := e.store.Complete(context.Background(), u.ID, []store.Part{p})
				assert.ErrorIs(t, err, store.ErrChecksum)
			}
		} else {
			fail = func() {
				err := e.store.Put(context.Background(), []store.File{{Name: bad.Name, Body: badBody}, {Name: taken.Name, Body: badBody}})
				assert.ErrorIs(t, err, store.ErrExists)
			}
		}

		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			assert.NoError(t, e.store.Put(context.Background(), []store.File{{Name: ok.Name, Body: okBody}}))
		})
		wg.Go(func() {
			<-start
			fail()
		})
		close(start)
		wg.Wait()
		storetest.RequireAbsent(t, e.store, bad.Name)
		wanted = append(wanted, ok)
	}
	for _, f := range wanted {
		storetest.RequireStored(t, e.store, f)
	}
	requireNoEmptyDirs(t, e.dir)
}
