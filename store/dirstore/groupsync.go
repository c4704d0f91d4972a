package dirstore

import (
	"context"
	"sync"
)

// syncGroups shares fsyncs of one directory between the uploads that
// wait for them at once, as databases commit groups of transactions
// together: an upload whose entry is in a directory needs an fsync of it
// that starts after its entry was made, and one fsync covers every entry
// made before it starts. So while one runs, the uploads that arrive wait
// for it to end and then for one more, which the first of them runs for
// all. A directory's fsyncs are thus one at a time and at most one
// waiting, whatever the number of uploads; no goroutine runs but the
// callers'.
type syncGroups struct {
	mu     sync.Mutex
	groups map[string]*syncGroup // by directory name; only while in use
	// testHookWait, if set, is called when a caller starts waiting for
	// an fsync under way to end.
	testHookWait func()
}

type syncGroup struct {
	running *syncCall // the fsync under way, or nil
	next    *syncCall // the fsync the callers that came since wait for, or nil
	users   int
}

type syncCall struct {
	done chan struct{} // closed when the fsync has returned
	err  error
	n    int // callers that wait for it; fixed once it runs
}

// do returns once a call of sync for the key dir has started after do
// was called and returned, with its error: sync is called by one of the
// callers, for all who wait at the time, and is told how many they are. A
// caller whose ctx ends stops waiting; the sync goes on for the others.
func (g *syncGroups) do(ctx context.Context, dir string, sync func(batch int) error) error {
	g.mu.Lock()
	if g.groups == nil {
		g.groups = make(map[string]*syncGroup)
	}
	sg := g.groups[dir]
	if sg == nil {
		sg = &syncGroup{}
		g.groups[dir] = sg
	}
	sg.users++
	defer func() {
		g.mu.Lock()
		if sg.users--; sg.users == 0 {
			delete(g.groups, dir)
		}
		g.mu.Unlock()
	}()
	c := sg.next
	if c == nil {
		c = &syncCall{done: make(chan struct{})}
		sg.next = c
	}
	c.n++
	before := sg.running
	g.mu.Unlock()

	if before != nil {
		if g.testHookWait != nil {
			g.testHookWait()
		}
		// Started before this caller came: it may not cover its entry.
		select {
		case <-before.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	if sg.next == c && sg.running == nil {
		// The first caller to find c's turn runs it.
		sg.running, sg.next = c, nil
		g.mu.Unlock()
		c.err = sync(c.n)
		g.mu.Lock()
		sg.running = nil
		g.mu.Unlock()
		close(c.done)
		return c.err
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
