package uploadtest

import (
	"io"
	"runtime"
	"sync"
)

// StallReader gives Head, calls Reached once Head is all read, waits for
// Open to close, then gives Tail: a body stopped in its middle, for
// measuring what an upload holds while it waits for its client.
type StallReader struct {
	Head, Tail []byte
	Reached    func()
	Open       <-chan struct{}
	once       sync.Once
}

func (g *StallReader) Read(p []byte) (int, error) {
	if len(g.Head) > 0 {
		n := copy(p, g.Head)
		g.Head = g.Head[n:]
		return n, nil
	}
	g.once.Do(func() {
		g.Reached()
		<-g.Open
	})
	if len(g.Tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.Tail)
	g.Tail = g.Tail[n:]
	return n, nil
}

// LiveHeap is the bytes of heap in use once the garbage is collected.
func LiveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC() // the second empties the pools' victim caches
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
