package serve

import (
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Descriptors the server keeps for other things than connections when it
// derives its connection cap from the open-file limit: a few for each
// upload in progress (its spool files while the body arrives, the store's
// files and directories while it is published) and some for the process
// itself (the listener, the upload directory, the runtime).
const (
	reservedPerUpload = 8
	reservedFixed     = 64
)

// defaultMaxConnections is the connection cap for an open-file limit of
// limit (0: unknown, and no cap) and an upload cap of maxUploads (0: none):
// the limit less what uploads need beside their connections, and never
// more than half the limit for that reserve.
func defaultMaxConnections(limit uint64, maxUploads int) int {
	if limit == 0 {
		return 0
	}
	limit = min(limit, math.MaxInt32)
	half := limit / 2
	reserve := half
	if maxUploads > 0 {
		reserve = min(reservedFixed+reservedPerUpload*uint64(maxUploads), half)
	}
	return int(limit - reserve)
}

// limitListener accepts at most cap(slots) connections at once. At the cap
// it stops calling accept: new connections wait in the kernel's backlog,
// holding no descriptor of the process, rather than being refused. It then
// calls shed, and again every shedEvery while it waits, so that the server
// closes its idle connections (and keeps no more alive) instead of letting
// them hold the slots; once fewer than half the slots are taken it calls
// unshed.
type limitListener struct {
	net.Listener
	slots    chan struct{}
	shed     func()
	unshed   func()
	shedding atomic.Bool
	done     chan struct{}
	close    sync.Once
}

// shedEvery is how often a listener at its cap asks again for idle
// connections to be closed: net/http takes a connection that has sent no
// request for a few seconds for an idle one.
const shedEvery = time.Second

func newLimitListener(l net.Listener, n int, shed, unshed func()) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), shed: shed, unshed: unshed, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	if !l.acquire() {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(l.release)}, nil
}

func (l *limitListener) acquire() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	l.shedding.Store(true)
	l.shed()
	tick := time.NewTicker(shedEvery)
	defer tick.Stop()
	for {
		select {
		case l.slots <- struct{}{}:
			return true
		case <-tick.C:
			l.shed()
		case <-l.done:
			return false
		}
	}
}

func (l *limitListener) release() {
	<-l.slots
	if len(l.slots) < cap(l.slots)/2 && l.shedding.CompareAndSwap(true, false) {
		l.unshed()
	}
}

func (l *limitListener) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when it is closed, once.
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
