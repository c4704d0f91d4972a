package dirstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"spillway/store"
)

// TestCheckWaitsForUploadChangingTheFolder: a Check that finds a folder's
// entry out of date because another upload of the store is changing the
// folder waits for that upload to record its change instead of reading
// the whole folder; concurrent uploads into one folder made it read at
// almost every upload.
func TestCheckWaitsForUploadChangingTheFolder(t *testing.T) {
	s, _, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	defer s.Close()
	putOne := func(name string) error {
		return s.Put(t.Context(), []store.File{{Name: name, Body: memBody(name)}})
	}
	require.NoError(t, putOne("busy/first.txt"))

	var reads atomic.Int64
	s.folds.testHookRead = func() { reads.Add(1) }
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.folds.testHookChanged = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	waiting := make(chan struct{}, 1)
	s.folds.testHookWait = func() { waiting <- struct{}{} }

	first := make(chan error, 1)
	go func() { first <- putOne("busy/a.txt") }() // linked, stopped before its record
	<-entered
	check := make(chan error, 1)
	go func() { check <- s.Check(t.Context(), "busy/b.txt", 1) }()
	select {
	case <-waiting:
		close(release)
		require.NoError(t, <-check)
	case err := <-check:
		close(release)
		require.NoError(t, err)
	}
	require.NoError(t, <-first)
	require.Zero(t, reads.Load(), "folder reads")
}

// TestFoldIndexCountsEachFolderOnce: a folder indexed again after someone
// else changed it replaces its stale entry in the index's count of names,
// which bounds the index's memory.
func TestFoldIndexCountsEachFolderOnce(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	for i := range 5 {
		require.NoError(t, s.Put(t.Context(), []store.File{{Name: fmt.Sprintf("f/mine-%d", i), Body: memBody("x")}}))
		// A change by hand makes the entry stale; the next upload reads
		// the folder and indexes it again.
		require.NoError(t, os.WriteFile(filepath.Join(dir, "f", fmt.Sprintf("hand-%d", i)), nil, 0o644))
	}
	require.NoError(t, s.Put(t.Context(), []store.File{{Name: "f/last", Body: memBody("x")}}))
	s.folds.mu.Lock()
	defer s.folds.mu.Unlock()
	total := 0
	for _, d := range s.folds.dirs {
		total += len(d.folds)
	}
	require.Equal(t, total, s.folds.names)
}

// TestConcurrentUploadsIntoOneFolderReadItOnce: many uploads at once into
// one folder, each checked and then put as the handler does, read the
// folder only to index it: a Check that finds the folder being changed by
// another of the store's uploads goes by the folder's last entry, and the
// commit checks again under the folder's lock. Before, such Checks read
// the whole folder at nearly every upload, a cost growing with the folder.
func TestConcurrentUploadsIntoOneFolderReadItOnce(t *testing.T) {
	s, _, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Put(t.Context(), []store.File{{Name: "busy/first.txt", Body: memBody("x")}}))
	var reads atomic.Int64
	s.folds.testHookRead = func() { reads.Add(1) }

	const writers, each = 32, 64
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("busy/w%d-%d.txt", w, i)
				if errs[w] = s.Check(t.Context(), name, 1); errs[w] != nil {
					return
				}
				if errs[w] = s.Put(t.Context(), []store.File{{Name: name, Body: memBody(name)}}); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, reads.Load(), "folder reads for %d uploads into an indexed folder", writers*each)

	// A twin is still refused, by Check when the entry counts it.
	require.ErrorIs(t, s.Check(t.Context(), "busy/W0-0.txt", 1), store.ErrExists)
}
