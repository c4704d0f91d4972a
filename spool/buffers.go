package spool

import "sync"

// Working buffers (the disk path's reads, writes and hashing, the copies
// out of a disk body, a multipart reader's window) are memory too, and
// under load they add up to more than the bodies held: dozens of uploads
// spooling to disk at once each want several large buffers. So a large
// buffer is counted against the memory budget while it is in use, and is
// granted only while the budget is less than half used: under pressure,
// memory goes to bodies first, and an upload that cannot have a large
// buffer works with a small one, which is never refused and never waited
// for. Small buffers are the fixed overhead beyond the budget: at most
// MaxSmallBuffers of SmallBufferSize per upload in progress.
const (
	// SmallBufferSize is the size of the buffers outside the budget.
	SmallBufferSize = 32 << 10
	// MaxSmallBuffers is the most small buffers an upload holds at once.
	MaxSmallBuffers = 1
)

// buffers hands out working buffers for a Spooler.
type buffers struct {
	large sync.Pool // *[]byte of copyBufferSize, each reserved while out
	pipe  sync.Pool // *[]byte of readBufferSize, each reserved while out
	small sync.Pool // *[]byte of SmallBufferSize
}

func (b *buffers) init() {
	b.large.New = func() any { p := make([]byte, copyBufferSize); return &p }
	b.pipe.New = func() any { p := make([]byte, readBufferSize); return &p }
	b.small.New = func() any { p := make([]byte, SmallBufferSize); return &p }
}

// largeBuffer returns a buffer of copyBufferSize reserved against the
// budget, or nil when the budget is half used or more.
func (s *Spooler) largeBuffer() *[]byte {
	if !s.reserveWithin(copyBufferSize, s.budget/2) {
		return nil
	}
	return s.bufs.large.Get().(*[]byte)
}

// pipeBuffer returns a buffer of readBufferSize, for the reads of a body
// spooled to disk, reserved against the budget as a large buffer is, or
// nil when it would take the budget past half used.
func (s *Spooler) pipeBuffer() *[]byte {
	if !s.reserveWithin(readBufferSize, s.budget/2) {
		return nil
	}
	return s.bufs.pipe.Get().(*[]byte)
}

func (s *Spooler) smallBuffer() *[]byte { return s.bufs.small.Get().(*[]byte) }

// buffer returns a large buffer if the budget allows, else a small one.
func (s *Spooler) buffer() *[]byte {
	if p := s.largeBuffer(); p != nil {
		return p
	}
	return s.smallBuffer()
}

// putBuffer returns a buffer from largeBuffer, pipeBuffer, smallBuffer or
// buffer.
func (s *Spooler) putBuffer(p *[]byte) {
	switch len(*p) {
	case copyBufferSize:
		s.bufs.large.Put(p)
		s.release(copyBufferSize)
	case readBufferSize:
		s.bufs.pipe.Put(p)
		s.release(readBufferSize)
	default:
		s.bufs.small.Put(p)
	}
}

// Buffer lends a working buffer to a caller outside the spool, such as a
// multipart reader in front of it: a large one counted against the memory
// budget while the budget is less than half used, else a small one of
// SmallBufferSize. The caller must call release exactly once, and must
// not use the buffer afterwards.
func (s *Spooler) Buffer() (buf []byte, release func()) {
	p := s.buffer()
	var once sync.Once
	return *p, func() { once.Do(func() { s.putBuffer(p) }) }
}

// reserveWithin reserves n bytes of the budget if the bytes in use stay
// within limit.
func (s *Spooler) reserveWithin(n, limit int64) bool {
	for {
		cur := s.inUse.Load()
		if cur+n > limit {
			return false
		}
		if s.inUse.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}
