package spool

import (
	"os"
	"sync/atomic"
)

// BodyPath returns the name of b's temp file, or "" when it has none, for
// the tests of package spool_test.
func BodyPath(b *Body) string { return b.name() }

// CountWritebacks makes s count the writebacks it starts.
func CountWritebacks(s *Spooler) *atomic.Int64 {
	var n atomic.Int64
	start := s.startWriteback
	s.startWriteback = func(f *os.File, off, k int64) {
		n.Add(1)
		start(f, off, k)
	}
	return &n
}
