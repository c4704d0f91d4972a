package spool_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

func newSpooler(t *testing.T, mutate func(*spool.Config)) (*spool.Spooler, string) {
	t.Helper()
	cfg := spool.DefaultConfig()
	cfg.Dir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := spool.New(cfg)
	require.NoError(t, err)
	return s, cfg.Dir
}

// TestThresholdTable runs the shared table straight against the spooler:
// every file, with its length known and unknown.
func TestThresholdTable(t *testing.T) {
	s, dir := newSpooler(t, nil)
	for _, c := range uploadtest.Cases(spool.DefaultThreshold, 0) {
		for _, f := range c.Files {
			for _, known := range []bool{true, false} {
				name := c.Name + "/" + f.Name
				if !known {
					name += "/unknown-length"
				}
				t.Run(name, func(t *testing.T) {
					size := f.Size
					if !known {
						size = -1
					}
					b, err := s.Spool(t.Context(), f.Reader(), size)
					require.NoError(t, err)
					assert.Equal(t, f.Size, b.Size())
					assert.Equal(t, uploadtest.WantSpool(f, spool.DefaultThreshold), b.Location().Kind())
					sum := b.SHA256()
					assert.Equal(t, f.SHA256(), hex.EncodeToString(sum[:]))
					uploadtest.RequireContent(t, f, b.Reader())
					if b.Location() == spool.Disk {
						fi, err := os.Stat(spool.BodyPath(b))
						require.NoError(t, err)
						assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
						assert.True(t, strings.HasPrefix(filepath.Base(spool.BodyPath(b)), spool.FilePrefix))
						assert.Equal(t, dir, filepath.Dir(spool.BodyPath(b)))
					}
					require.NoError(t, b.Close())
					uploadtest.RequireEmptyDir(t, dir)
				})
			}
		}
	}
	st := s.Stats()
	assert.Zero(t, st.OpenFiles)
	assert.Zero(t, st.MemoryInUse)
	assert.Zero(t, st.Errors)
}

// TestExactBoundary pins the contract with a small threshold so that every
// byte position around it is covered.
func TestExactBoundary(t *testing.T) {
	const threshold = 100
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold = threshold })
	for size := int64(threshold - 2); size <= threshold+2; size++ {
		for _, declared := range []int64{size, -1} {
			f := uploadtest.File{Seed: 7, Size: size}
			b, err := s.Spool(t.Context(), iotest.OneByteReader(f.Reader()), declared)
			require.NoError(t, err)
			want := spool.Memory
			if size > threshold {
				want = spool.Disk
			}
			assert.Equal(t, want, b.Location(), "size %d declared %d", size, declared)
			uploadtest.RequireContent(t, f, b.Reader())
			require.NoError(t, b.Close())
		}
	}
	uploadtest.RequireEmptyDir(t, dir)
}

func TestZeroThresholdSendsEveryNonEmptyBodyToDisk(t *testing.T) {
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold = 0 })
	for _, declared := range []int64{0, -1} {
		b, err := s.Spool(t.Context(), strings.NewReader(""), declared)
		require.NoError(t, err)
		assert.Equal(t, spool.Memory, b.Location())
		require.NoError(t, b.Close())
	}
	for _, declared := range []int64{1, -1} {
		b, err := s.Spool(t.Context(), strings.NewReader("x"), declared)
		require.NoError(t, err)
		assert.Equal(t, spool.Disk, b.Location())
		require.NoError(t, b.Close())
	}
	uploadtest.RequireEmptyDir(t, dir)
}

// countingReader counts the bytes it hands out and the reads asked of it.
type countingReader struct {
	r     io.Reader
	n     int64
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestMaxSizeKnownLengthIsRefusedBeforeReading(t *testing.T) {
	s, dir := newSpooler(t, func(c *spool.Config) { c.MaxSize = 1000 })
	for _, size := range []int64{1001, 5 << 20} {
		r := &countingReader{r: uploadtest.File{Size: size}.Reader()}
		b, err := s.Spool(t.Context(), r, size)
		require.Nil(t, b)
		require.ErrorIs(t, err, spool.ErrTooLarge)
		var tl *spool.TooLargeError
		require.ErrorAs(t, err, &tl)
		assert.Equal(t, int64(1000), tl.Limit)
		assert.Equal(t, size, tl.Size)
		assert.Zero(t, r.n, "body was read")
		require.ErrorIs(t, s.Check(size), spool.ErrTooLarge)
	}
	b, err := s.Spool(t.Context(), uploadtest.File{Size: 1000}.Reader(), 1000)
	require.NoError(t, err)
	require.NoError(t, b.Close())
	uploadtest.RequireEmptyDir(t, dir)
}

func TestMaxSizeUnknownLengthStopsAtFirstByteOver(t *testing.T) {
	for _, tc := range []struct {
		name           string
		max, threshold int64
	}{
		{"limit in memory range", 1000, spool.DefaultThreshold},
		{"limit in disk range", 3 << 20, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := newSpooler(t, func(c *spool.Config) { c.MaxSize, c.Threshold = tc.max, tc.threshold })
			r := &countingReader{r: uploadtest.File{Size: 10 << 20}.Reader()}
			b, err := s.Spool(t.Context(), r, -1)
			require.Nil(t, b)
			var tl *spool.TooLargeError
			require.ErrorAs(t, err, &tl)
			assert.Equal(t, int64(-1), tl.Size)
			assert.Equal(t, tc.max+1, r.n, "must read exactly one byte past the limit")
			uploadtest.RequireEmptyDir(t, dir)

			// Exactly at the limit is fine.
			f := uploadtest.File{Size: tc.max}
			b, err = s.Spool(t.Context(), f.Reader(), -1)
			require.NoError(t, err)
			uploadtest.RequireContent(t, f, b.Reader())
			require.NoError(t, b.Close())
			uploadtest.RequireEmptyDir(t, dir)
		})
	}
}

// failAfter yields n bytes of payload and then fails with err.
func failAfter(n int64, err error) io.Reader {
	return io.MultiReader(uploadtest.File{Seed: 3, Size: n}.Reader(), iotest.ErrReader(err))
}

func TestFailuresLeaveNothingBehind(t *testing.T) {
	const threshold = 64 << 10
	boom := errors.New("connection reset")
	cases := []struct {
		name     string
		body     func(cancel context.CancelFunc) io.Reader
		declared int64
		want     error
	}{
		{"short body in memory", func(context.CancelFunc) io.Reader { return uploadtest.File{Size: 10}.Reader() }, 20, spool.ErrIncomplete},
		{"short body on disk", func(context.CancelFunc) io.Reader { return uploadtest.File{Size: 1 << 20}.Reader() }, 2 << 20, spool.ErrIncomplete},
		{"empty body declared non-empty", func(context.CancelFunc) io.Reader { return strings.NewReader("") }, 5, spool.ErrIncomplete},
		{"unexpected EOF from below, unknown length", func(context.CancelFunc) io.Reader { return failAfter(200<<10, io.ErrUnexpectedEOF) }, -1, spool.ErrIncomplete},
		{"unexpected EOF from below, in memory", func(context.CancelFunc) io.Reader { return failAfter(10, io.ErrUnexpectedEOF) }, -1, spool.ErrIncomplete},
		{"reader error on disk", func(context.CancelFunc) io.Reader { return failAfter(1<<20, boom) }, 2 << 20, boom},
		{"reader error in memory", func(context.CancelFunc) io.Reader { return failAfter(100, boom) }, 1000, boom},
		{"reader error after spill", func(context.CancelFunc) io.Reader { return failAfter(threshold+10, boom) }, -1, boom},
		{"timeout", func(context.CancelFunc) io.Reader {
			return iotest.TimeoutReader(uploadtest.File{Size: 1 << 20}.Reader())
		}, 1 << 20, iotest.ErrTimeout},
		{"longer than declared", func(context.CancelFunc) io.Reader { return uploadtest.File{Size: 101}.Reader() }, 100, spool.ErrTooLong},
		{"longer than declared on disk", func(context.CancelFunc) io.Reader { return uploadtest.File{Size: 1<<20 + 1}.Reader() }, 1 << 20, spool.ErrTooLong},
		{"cancelled on disk", func(cancel context.CancelFunc) io.Reader {
			return io.MultiReader(uploadtest.File{Size: 1 << 20}.Reader(), cancelReader(cancel), uploadtest.File{Size: 1 << 20}.Reader())
		}, 2 << 20, context.Canceled},
		{"cancelled in memory, unknown length", func(cancel context.CancelFunc) io.Reader {
			return io.MultiReader(uploadtest.File{Size: 1000}.Reader(), cancelReader(cancel), uploadtest.File{Size: 1000}.Reader())
		}, -1, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold = threshold })
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			b, err := s.Spool(ctx, tc.body(cancel), tc.declared)
			require.Nil(t, b)
			require.ErrorIs(t, err, tc.want)
			uploadtest.RequireEmptyDir(t, dir)
			st := s.Stats()
			assert.Equal(t, int64(1), st.Errors)
			assert.Zero(t, st.OpenFiles)
			assert.Zero(t, st.MemoryInUse)
		})
	}
}

// cancelReader cancels the context when it is first read, then reports EOF
// so that io.MultiReader moves on to the next reader.
func cancelReader(cancel context.CancelFunc) io.Reader {
	return readerFunc(func([]byte) (int, error) { cancel(); return 0, io.EOF })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestMemoryBudgetIsSharedAcrossBodies(t *testing.T) {
	const threshold = 1000
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold, c.MemoryBudget = threshold, 2*threshold })
	spoolN := func(n, declared int64) *spool.Body {
		b, err := s.Spool(t.Context(), uploadtest.File{Size: n}.Reader(), declared)
		require.NoError(t, err)
		return b
	}
	a := spoolN(threshold, threshold)
	b := spoolN(threshold, threshold)
	assert.Equal(t, spool.Memory, a.Location())
	assert.Equal(t, spool.Memory, b.Location())
	assert.Equal(t, int64(2*threshold), s.Stats().MemoryInUse)

	// The budget is full: even a one-byte body goes to disk, known or not.
	c := spoolN(1, 1)
	d := spoolN(1, -1)
	assert.Equal(t, spool.Disk, c.Location())
	assert.Equal(t, spool.Disk, d.Location())

	require.NoError(t, a.Close())
	e := spoolN(1, 1)
	assert.Equal(t, spool.Memory, e.Location())
	for _, x := range []*spool.Body{b, c, d, e} {
		require.NoError(t, x.Close())
	}
	assert.Zero(t, s.Stats().MemoryInUse)
	uploadtest.RequireEmptyDir(t, dir)
}

func TestUnknownLengthSpillsWhenBudgetRefusesGrowth(t *testing.T) {
	// The threshold would keep 100 KiB in memory, but the budget cannot
	// grow the buffer past its first chunk.
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold, c.MemoryBudget = 1<<20, 40<<10 })
	f := uploadtest.File{Seed: 9, Size: 100 << 10}
	b, err := s.Spool(t.Context(), f.Reader(), -1)
	require.NoError(t, err)
	assert.Equal(t, spool.Disk, b.Location())
	uploadtest.RequireContent(t, f, b.Reader())
	assert.Zero(t, s.Stats().MemoryInUse, "the spilled buffer's reservation must be released")
	require.NoError(t, b.Close())
	uploadtest.RequireEmptyDir(t, dir)
}

func TestConcurrentSpoolsStayWithinBudget(t *testing.T) {
	const threshold, budget = 64 << 10, 256 << 10
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold, c.MemoryBudget = threshold, budget })
	var wg sync.WaitGroup
	bodies := make(chan *spool.Body, 64)
	for i := range 64 {
		wg.Go(func() {
			declared := int64(threshold)
			if i%2 == 0 {
				declared = -1
			}
			b, err := s.Spool(t.Context(), uploadtest.File{Seed: uint64(i), Size: threshold}.Reader(), declared)
			assert.NoError(t, err)
			assert.LessOrEqual(t, s.Stats().MemoryInUse, int64(budget))
			bodies <- b
		})
	}
	wg.Wait()
	close(bodies)
	var mem, disk int
	for b := range bodies {
		if b.Location() == spool.Memory {
			mem++
		} else {
			disk++
		}
		require.NoError(t, b.Close())
	}
	assert.Positive(t, disk, "the budget must push some bodies to disk")
	assert.LessOrEqual(t, mem, budget/threshold)
	st := s.Stats()
	assert.Equal(t, int64(mem), st.MemoryBodies)
	assert.Equal(t, int64(disk), st.DiskBodies)
	assert.Equal(t, int64(disk*threshold), st.DiskBytes)
	assert.Zero(t, st.MemoryInUse)
	assert.Zero(t, st.OpenFiles)
	uploadtest.RequireEmptyDir(t, dir)
}

func TestCloseIsIdempotentAndToleratesMissingFile(t *testing.T) {
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold = 0 })
	b, err := s.Spool(t.Context(), strings.NewReader("hello"), 5)
	require.NoError(t, err)
	assert.Equal(t, int64(1), s.Stats().OpenFiles)
	require.NoError(t, os.Remove(spool.BodyPath(b)))
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	st := s.Stats()
	assert.Zero(t, st.OpenFiles)
	assert.Zero(t, st.CleanupFailures)
	uploadtest.RequireEmptyDir(t, dir)
}

func TestSweepRemovesOnlyOrphans(t *testing.T) {
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold = 0 })
	live, err := s.Spool(t.Context(), strings.NewReader("in flight"), -1)
	require.NoError(t, err)
	defer live.Close()

	orphan := filepath.Join(dir, spool.FilePrefix+"ORPHAN.spool")
	require.NoError(t, os.WriteFile(orphan, []byte("left by a crash"), 0o600))
	unrelated := filepath.Join(dir, "spillway-notes.txt")
	require.NoError(t, os.WriteFile(unrelated, []byte("not ours"), 0o600))

	n, err := spool.Sweep(dir)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.NoFileExists(t, orphan)
	assert.FileExists(t, unrelated)
	assert.FileExists(t, spool.BodyPath(live), "a live spool file must survive a sweep")

	// A second Spooler over the same directory (another server sharing
	// /tmp) sweeps at start-up without touching the live file either.
	_, err = spool.New(spool.Config{Dir: dir})
	require.NoError(t, err)
	n, err = spool.Sweep(dir)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.FileExists(t, spool.BodyPath(live))

	require.NoError(t, live.Close())
	require.NoError(t, os.Remove(unrelated))
	uploadtest.RequireEmptyDir(t, dir)
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := spool.New(spool.Config{Dir: filepath.Join(t.TempDir(), "missing")})
	require.Error(t, err)
	_, err = spool.New(spool.Config{Threshold: -1, Dir: t.TempDir()})
	require.Error(t, err)
}

func TestSweepLeavesFilesItDidNotMake(t *testing.T) {
	// A directory shared with a store (--directory /tmp, once) can hold a
	// stored file that is only named like a spool file, or a symlink to one.
	dir := t.TempDir()
	stored := filepath.Join(dir, spool.FilePrefix+"ABCDEFGHIJKLMNOPQRSTUVWXYZ.spool")
	require.NoError(t, os.WriteFile(stored, []byte("an upload, answered 201"), 0o600))
	require.NoError(t, os.Chmod(stored, 0o644))
	elsewhere := filepath.Join(t.TempDir(), spool.FilePrefix+"TARGET.spool")
	require.NoError(t, os.WriteFile(elsewhere, []byte("not in the spool dir"), 0o600))
	link := filepath.Join(dir, spool.FilePrefix+"LINK.spool")
	require.NoError(t, os.Symlink(elsewhere, link))

	if os.Geteuid() == 0 {
		// Another user's spool file, as a server sharing /tmp leaves.
		theirs := filepath.Join(dir, spool.FilePrefix+"THEIRS.spool")
		require.NoError(t, os.WriteFile(theirs, []byte("someone else's upload"), 0o600))
		require.NoError(t, os.Chown(theirs, 65534, 65534))
		defer func() { assert.FileExists(t, theirs) }()
	}

	n, err := spool.Sweep(dir)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.FileExists(t, stored)
	assert.FileExists(t, elsewhere)
	_, err = os.Lstat(link)
	assert.NoError(t, err)
}

func TestSpoolFilesArePrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0o277) // would leave 0400
	defer syscall.Umask(old)
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold = 0 })
	b, err := s.Spool(t.Context(), strings.NewReader("hello"), 5)
	require.NoError(t, err)
	fi, err := os.Stat(spool.BodyPath(b))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, b.Close())
	uploadtest.RequireEmptyDir(t, dir)
}

func TestDropName(t *testing.T) {
	s, dir := newSpooler(t, func(c *spool.Config) { c.Threshold = 0 })
	b, err := s.Spool(t.Context(), strings.NewReader("hello"), 5)
	require.NoError(t, err)
	path := spool.BodyPath(b)
	require.NoError(t, b.DropName())
	assert.Empty(t, spool.BodyPath(b))
	assert.NoFileExists(t, path)
	got, err := io.ReadAll(b.Reader())
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got), "the file stays readable")
	require.NoError(t, b.Close())
	uploadtest.RequireEmptyDir(t, dir)

	// A name that another file took meanwhile is not this body's to remove.
	b, err = s.Spool(t.Context(), strings.NewReader("hello"), 5)
	require.NoError(t, err)
	path = spool.BodyPath(b)
	require.NoError(t, os.WriteFile(path+".new", []byte("someone else's"), 0o600))
	require.NoError(t, os.Rename(path+".new", path))
	require.NoError(t, b.DropName())
	require.NoError(t, b.Close())
	assert.FileExists(t, path)
	require.NoError(t, os.Remove(path))
}

// TestWriteBehindOnlyWhenAsked checks that a disk body's writeback is
// started while it arrives only for a store that will fsync it: without
// the fsync the early writes only cost the request CPU.
func TestWriteBehindOnlyWhenAsked(t *testing.T) {
	const size = 40 << 20 // several times the write-behind distance
	for _, on := range []bool{false, true} {
		s, _ := newSpooler(t, func(c *spool.Config) { c.WriteBehind = on })
		started := spool.CountWritebacks(s)
		b, err := s.Spool(t.Context(), &uploadtest.PatternReader{P: []byte("write-behind"), N: size}, size)
		require.NoError(t, err)
		require.NoError(t, b.Close())
		if on {
			assert.Positive(t, started.Load(), "WriteBehind: true started no writeback")
		} else {
			assert.Zero(t, started.Load(), "WriteBehind: false started writebacks")
		}
	}
}

// TestDiskBodyIsReadInLargeRequests checks that a body bound for disk is
// asked of its reader half a megabyte at a time, its length known or not.
// The reader is a socket in the server, where every read costs more than
// its copy, so the reads per GB weigh in the server's CPU per GB.
func TestDiskBodyIsReadInLargeRequests(t *testing.T) {
	const size = 64 << 20
	// And two short ones: the byte past the threshold that sends a body
	// of unknown length to disk, and the end.
	const most = size/(512<<10) + 2
	for _, declared := range []int64{size, -1} {
		s, dir := newSpooler(t, nil)
		r := &countingReader{r: &uploadtest.PatternReader{P: []byte("large reads"), N: size}}
		b, err := s.Spool(t.Context(), r, declared)
		require.NoError(t, err)
		assert.Equal(t, spool.Disk, b.Location())
		assert.Equal(t, int64(size), b.Size())
		assert.LessOrEqual(t, r.reads, most, "reads of a %d-byte body, length %d", size, declared)
		require.NoError(t, b.Close())
		uploadtest.RequireEmptyDir(t, dir)
	}
}
