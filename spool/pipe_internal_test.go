package spool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockingWriter is a hasher that waits for release on every write.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

// TestPipeHasherOverlapsWithLargeBuffers checks that an upload granted
// large buffers hashes on its own goroutine, filling the next buffer
// meanwhile, and that one left with a small buffer hashes in line.
func TestPipeHasherOverlapsWithLargeBuffers(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir(), Threshold: 1, MemoryBudget: 64 << 20})
	require.NoError(t, err)
	w := blockingWriter{release: make(chan struct{})}
	p := s.newPipeHasher(w)
	first := p.buffer()
	require.Len(t, *first, readBufferSize)
	returned := make(chan *[]byte, 1)
	go func() {
		p.hash(first, len(*first))
		returned <- p.buffer() // a new buffer, while the hasher is busy
	}()
	var second *[]byte
	select {
	case second = <-returned:
		assert.NotSame(t, first, second)
	case <-time.After(10 * time.Second):
		t.Error("the first buffer was hashed in line: nothing overlaps")
	}
	close(w.release)
	if second == nil {
		second = <-returned
	}
	p.hash(second, 0)
	p.finish()
	assert.Zero(t, s.Stats().MemoryInUse)

	// No budget: one small buffer, hashed in line, no goroutine.
	s, err = New(Config{Dir: t.TempDir(), Threshold: 1})
	require.NoError(t, err)
	h := newDigests()
	p = s.newPipeHasher(h)
	b := p.buffer()
	require.Len(t, *b, SmallBufferSize)
	p.hash(b, 3)
	assert.Nil(t, p.done, "no goroutine for a single small buffer")
	again := p.buffer()
	assert.Same(t, b, again)
	p.hash(again, 0)
	p.finish()
}
