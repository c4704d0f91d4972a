package main

import (
	"context"
	"sync"

	"spillway/client"
)

// defaultJobs is how many files are pushed at once: enough to keep a
// laptop's uplink busy with small files, each of which waits a round trip
// or two, without a crowd of connections; parts within a file are
// parallel already (--parallel).
const defaultJobs = 4

// maxJobs bounds --jobs: each job holds a hashing buffer and up to
// --parallel part requests.
const maxJobs = 64

// pushAll pushes files, jobs at a time, reporting each to out, until all
// are done or ctx ends; files not started by then are left alone. It
// returns the files pushed (those already there among them), their bytes,
// and the files that failed, not counting those the interrupt stopped.
func pushAll(ctx context.Context, c *client.Client, files []client.File, jobs int, out *ui) (pushed, existing int, bytes int64, failed int) {
	var mu sync.Mutex
	next := make(chan client.File)
	var wg sync.WaitGroup
	for range min(jobs, len(files)) {
		wg.Go(func() {
			for f := range next {
				if ctx.Err() != nil {
					// Handed over as the interrupt came: not begun.
					continue
				}
				res, err := c.Push(ctx, f.Path, f.Name)
				interrupted := err != nil && ctx.Err() != nil
				out.fileDone(f, res, err, interrupted)
				mu.Lock()
				switch {
				case err == nil:
					pushed++
					bytes += res.Size
					if res.Existing {
						existing++
					}
				case !interrupted:
					failed++
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, f := range files {
		select {
		case next <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return pushed, existing, bytes, failed
}
