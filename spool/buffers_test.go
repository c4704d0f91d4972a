package spool_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

// TestWorkingBuffersStayWithinBudget spools many bodies to disk at once,
// each stopped midway, and checks that their working buffers take no more
// than the memory budget and the documented small buffers beyond it.
func TestWorkingBuffersStayWithinBudget(t *testing.T) {
	const (
		uploads = 64
		budget  = 2 << 20
		head    = 2 << 20 // enough for an upload to fill all its buffers
		size    = head + 1<<20
	)
	s, err := spool.New(spool.Config{Dir: t.TempDir(), Threshold: 64 << 10, MemoryBudget: budget})
	require.NoError(t, err)
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)

	before := uploadtest.LiveHeap()
	open := make(chan struct{})
	var reached sync.WaitGroup
	reached.Add(uploads)
	var done sync.WaitGroup
	errs := make(chan error, uploads)
	for range uploads {
		done.Add(1)
		r := &uploadtest.StallReader{Head: data[:head], Tail: data[head:], Reached: reached.Done, Open: open}
		go func() {
			defer done.Done()
			b, err := s.Spool(t.Context(), r, size)
			if err == nil {
				err = b.Close()
				if b.Size() != size || b.SHA256() != sha256.Sum256(data) {
					err = errors.New("wrong size or digest")
				}
			}
			errs <- err
		}()
	}
	reached.Wait()
	held := uploadtest.LiveHeap() - before
	inUse := s.Stats().MemoryInUse
	close(open)
	done.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	limit := int64(budget + uploads*spool.MaxSmallBuffers*spool.SmallBufferSize + 1<<20) // + the goroutines' own bits
	t.Logf("%d uploads stopped midway: %.1f MiB of heap held, %.1f MiB of the budget (limit %.1f MiB)",
		uploads, float64(held)/(1<<20), float64(inUse)/(1<<20), float64(limit)/(1<<20))
	assert.LessOrEqual(t, held, limit, "working buffers beyond the budget and the small buffers")
	assert.LessOrEqual(t, inUse, int64(budget/2), "large buffers take at most half the budget")
	assert.Positive(t, inUse, "large buffers are counted against the budget")
	assert.Zero(t, s.Stats().MemoryInUse, "every buffer given back")
}

// TestBufferIsCountedAndReleased checks Spooler.Buffer: large while the
// budget is less than half used, small past it, and given back once.
func TestBufferIsCountedAndReleased(t *testing.T) {
	s, err := spool.New(spool.Config{Dir: t.TempDir(), Threshold: 1 << 20, MemoryBudget: 1 << 20})
	require.NoError(t, err)
	var releases []func()
	var large int
	for range 4 {
		buf, release := s.Buffer()
		releases = append(releases, release)
		if len(buf) > spool.SmallBufferSize {
			large++
		}
	}
	assert.Equal(t, 2, large, "two large buffers fill half of a 1 MiB budget")
	assert.Equal(t, int64(512<<10), s.Stats().MemoryInUse)
	for _, r := range releases {
		r()
		r() // a second call does nothing
	}
	assert.Zero(t, s.Stats().MemoryInUse)
}
