package serve

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultMaxConnections(t *testing.T) {
	for _, c := range []struct {
		limit      uint64
		maxUploads int
		want       int
	}{
		{0, 64, 0},                     // unknown limit: no cap
		{20000, 64, 20000 - 64 - 8*64}, // the reserve for 64 uploads
		{1024, 64, 512},                // never more than half for the reserve
		{20000, 0, 10000},              // uploads uncapped: half
		{1 << 40, 64, 1<<31 - 1 - 576}, // an unlimited limit
		{256, 1, 256 - 64 - 8},
	} {
		assert.Equal(t, c.want, defaultMaxConnections(c.limit, c.maxUploads), "limit %d, %d uploads", c.limit, c.maxUploads)
	}
}

// At its cap the listener accepts nothing more, asks for idle connections
// to be shed, and accepts again as soon as a connection closes; once under
// half the cap it says so.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var unshed atomic.Int32
	shedCalled := make(chan struct{}, 64)
	const limit = 4
	ln := newLimitListener(inner, limit, func() { shedCalled <- struct{}{} }, func() { unshed.Add(1) })
	defer ln.Close()

	accepted := make(chan net.Conn, limit+1)
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range limit + 1 {
		c, err := net.Dial("tcp", inner.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		clients = append(clients, c)
	}
	var conns []net.Conn
	for range limit {
		conns = append(conns, <-accepted)
	}
	select {
	case <-shedCalled:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no shedding at the cap")
	}
	select {
	case c := <-accepted:
		require.FailNow(t, "a connection was accepted past the cap", "%v", c.RemoteAddr())
	default:
	}
	// The last client waits in the backlog, not refused: closing a
	// connection lets it in.
	require.NoError(t, conns[0].Close())
	conns[0].Close() // a second Close gives back no second slot
	conns[0] = <-accepted
	assert.Zero(t, unshed.Load(), "still at the cap")
	for _, c := range conns {
		require.NoError(t, c.Close())
	}
	assert.EqualValues(t, 1, unshed.Load(), "under half the cap")
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "every client was accepted, then closed")
	}
	require.NoError(t, ln.Close())
	_, open := <-accepted
	assert.False(t, open, "Close ends Accept")
}
