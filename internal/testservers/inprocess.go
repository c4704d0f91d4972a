package testservers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// InProcess is a server's run function running in a goroutine of the
// test, as a main would run it.
type InProcess struct {
	Addr string // where it listens
	stop context.CancelFunc
	done chan error
}

// RunInProcess calls run in a goroutine and waits until it sends the
// address it listens on to ready, failing t with run's error and log if it
// returns first. When the test ends, run's context is cancelled and run
// is waited for.
func RunInProcess(t testing.TB, log interface{ String() string }, run func(ctx context.Context, ready chan<- string) error) *InProcess {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	r := &InProcess{stop: stop, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() { r.done <- run(ctx, ready) }()
	select {
	case r.Addr = <-ready:
	case err := <-r.done:
		stop()
		require.FailNow(t, "the server did not start", "%v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		stop()
		<-r.done
		r.done <- nil
	})
	return r
}

// Stop cancels run's context, as a signal would, without waiting.
func (r *InProcess) Stop() { r.stop() }

// Wait stops run and fails t unless it returns nil within 30 s.
func (r *InProcess) Wait(t testing.TB) {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		require.NoError(t, err)
		r.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the server did not stop")
	}
}
