package spool_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// A batch holds two descriptors however many of its bodies go to disk;
// Open makes every body readable again, byte for byte, and Close leaves
// nothing behind.
func TestBatchBoundsDescriptors(t *testing.T) {
	s, dir := newSpooler(t, func(c *spool.Config) { c.MemoryBudget = 0 })
	const n = 100
	before := openFDs(t)
	batch := s.NewBatch()
	defer batch.Close()
	var files []uploadtest.File
	var bodies []*spool.Body
	for i := range n {
		f := uploadtest.File{Seed: uint64(i), Size: int64(1 + i*997)}
		b, err := batch.Spool(t.Context(), f.Reader(), -1)
		require.NoError(t, err)
		assert.Equal(t, spool.Disk, b.Location())
		assert.Nil(t, b.File(), "closed once written")
		_, err = b.Reader().Read(make([]byte, 1))
		assert.ErrorIs(t, err, spool.ErrNotOpen)
		files, bodies = append(files, f), append(bodies, b)
	}
	assert.LessOrEqual(t, openFDs(t)-before, 1, "the batch's lock only")
	assert.Len(t, spoolNames(t, dir), n+1, "a file per body and the lock")
	assert.EqualValues(t, n+1, s.Stats().OpenFiles)

	require.NoError(t, batch.Open())
	for i, b := range bodies {
		require.NotNil(t, b.File())
		uploadtest.RequireContent(t, files[i], b.Reader())
		sum := b.SHA256()
		assert.Equal(t, files[i].SHA256(), hex.EncodeToString(sum[:]))
		fi, err := os.Stat(spool.BodyPath(b))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	require.NoError(t, batch.Close())
	require.NoError(t, batch.Close(), "Close is idempotent")
	uploadtest.RequireEmptyDir(t, dir)
	assert.Zero(t, s.Stats().OpenFiles)
	assert.Equal(t, before, openFDs(t))
}

// A memory body of a batch is an ordinary memory body.
func TestBatchKeepsSmallBodiesInMemory(t *testing.T) {
	s, dir := newSpooler(t, nil)
	batch := s.NewBatch()
	b, err := batch.Spool(t.Context(), strings.NewReader("small"), -1)
	require.NoError(t, err)
	assert.Equal(t, spool.Memory, b.Location())
	require.NoError(t, batch.Open())
	require.NoError(t, batch.Close())
	uploadtest.RequireEmptyDir(t, dir)
	assert.Zero(t, s.Stats().MemoryInUse)
}

// Open refuses a body whose file was replaced after it was written: what
// is published is what was hashed, or nothing.
func TestBatchOpenRefusesAReplacedFile(t *testing.T) {
	for _, how := range []string{"same size", "symlink"} {
		t.Run(how, func(t *testing.T) {
			s, dir := newSpooler(t, func(c *spool.Config) { c.MemoryBudget = 0 })
			batch := s.NewBatch()
			b, err := batch.Spool(t.Context(), strings.NewReader("the client's bytes"), -1)
			require.NoError(t, err)
			require.NoError(t, os.Remove(spool.BodyPath(b)))
			switch how {
			case "same size":
				require.NoError(t, os.WriteFile(spool.BodyPath(b), []byte("somebody else's!!!"), 0o600))
			case "symlink":
				other := filepath.Join(t.TempDir(), "other")
				require.NoError(t, os.WriteFile(other, []byte("somebody else's!!!"), 0o600))
				require.NoError(t, os.Symlink(other, spool.BodyPath(b)))
			}
			require.Error(t, batch.Open())
			assert.Nil(t, b.File())
			require.NoError(t, batch.Close())
			uploadtest.RequireEmptyDir(t, dir)
			assert.Zero(t, s.Stats().OpenFiles)
		})
	}
}

// Sweep leaves the files of a live batch alone, however many, and removes
// those of a batch whose lock nobody holds, with the lock.
func TestSweepLeavesLiveBatches(t *testing.T) {
	s, dir := newSpooler(t, func(c *spool.Config) { c.MemoryBudget = 0 })
	batch := s.NewBatch()
	defer batch.Close()
	for range 3 {
		_, err := batch.Spool(t.Context(), strings.NewReader("x"), -1)
		require.NoError(t, err)
	}
	live := spoolNames(t, dir)
	require.Len(t, live, 4)

	// A crashed process's batch: a lock file nobody holds, its files, and
	// files whose lock is gone altogether.
	for _, name := range []string{"spillway-DEADBATCH.spool", "spillway-DEADBATCH.0.spool", "spillway-DEADBATCH.1.spool", "spillway-NOLOCK.0.spool"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600))
	}
	removed, err := spool.Sweep(dir)
	require.NoError(t, err)
	assert.Equal(t, 4, removed)
	assert.ElementsMatch(t, live, spoolNames(t, dir))

	require.NoError(t, batch.Open())
	require.NoError(t, batch.Close())
	uploadtest.RequireEmptyDir(t, dir)
}

func spoolNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
