package serve

import (
	"context"
	"time"
)

// Every runs fn at once and then every interval, in a goroutine of its
// own, until ctx is done; fn gets ctx, so that it can stop part-way. A
// run that takes longer than interval delays the next rather than
// overlapping it. The returned wait blocks until the goroutine has
// returned: a program calls it once ctx is done, before it says it has
// stopped, so that no run outlives it.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			fn(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return func() { <-done }
}
