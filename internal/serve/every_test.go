package serve

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Every runs at once, again after each interval, hands fn its context so
// that a run in progress stops when the program does, and leaves no
// goroutine once wait returns.
func TestEveryRunsUntilCancelledAndLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	ctx, cancel := context.WithCancel(t.Context())
	runs := make(chan int, 16)
	n := 0
	wait := Every(ctx, time.Millisecond, func(ctx context.Context) {
		n++
		runs <- n
		if n == 3 {
			<-ctx.Done() // a long run, cut short by the shutdown
		}
	})
	for want := 1; want <= 3; want++ {
		select {
		case got := <-runs:
			require.Equal(t, want, got)
		case <-time.After(30 * time.Second):
			require.FailNow(t, "no run", "run %d", want)
		}
	}
	cancel()
	wait()
	require.Empty(t, runs, "no run after the cancel")

	// The first run does not wait for the interval.
	ctx, cancel = context.WithCancel(t.Context())
	first := make(chan struct{}, 1)
	wait = Every(ctx, time.Hour, func(context.Context) { first <- struct{}{} })
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the first run waited")
	}
	cancel()
	wait()
}
