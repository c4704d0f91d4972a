package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadTest is the state the clients share.
type loadTest struct {
	cfg    config
	client *http.Client
	base   string
	dir    string
	runID  string // in every name this run uploads

	issued  atomic.Int64
	claimed atomic.Int64 // payload bytes

	mu        sync.Mutex
	sum       *Summary
	latencies []time.Duration
}

// run starts the clients and waits for them. No request starts after
// Duration; requests still running Grace later are cancelled.
func (lt *loadTest) run(ctx context.Context) {
	start := time.Now()
	hardCtx, cancel := context.WithDeadline(ctx, start.Add(lt.cfg.Duration+lt.cfg.Grace))
	defer cancel()
	issueUntil := start.Add(lt.cfg.Duration)

	done := make(chan struct{})
	go lt.progress(start, done)
	var wg sync.WaitGroup
	for id := range lt.cfg.Clients {
		wg.Go(func() { lt.worker(hardCtx, id, issueUntil) })
	}
	wg.Wait()
	close(done)
	lt.sum.Elapsed = time.Since(start)

	slices.Sort(lt.latencies)
	lt.sum.P50 = percentile(lt.latencies, 0.50)
	lt.sum.P99 = percentile(lt.latencies, 0.99)
	if n := len(lt.latencies); n > 0 {
		lt.sum.Max = lt.latencies[n-1]
	}
}

func (lt *loadTest) progress(start time.Time, done <-chan struct{}) {
	if lt.cfg.Progress == nil {
		return
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		lt.mu.Lock()
		s := lt.sum
		fmt.Fprintf(lt.cfg.Progress, "loadtest: %5.1fs  %d requests, %d created, %d 5xx, %d verification failures, %.1f MB stored\n",
			time.Since(start).Seconds(), s.Requests, s.ByStatus[http.StatusCreated], s.Status5xx, s.VerifyFailures, float64(s.BytesStored)/1e6)
		lt.mu.Unlock()
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// worker is one client: it sends requests one after another until the
// duration, the request cap or the byte cap runs out.
func (lt *loadTest) worker(ctx context.Context, id int, issueUntil time.Time) {
	rng := rand.New(rand.NewPCG(lt.cfg.Seed, uint64(id)+1))
	for seq := range lt.cfg.MaxRequests {
		if ctx.Err() != nil || !time.Now().Before(issueUntil) {
			return
		}
		if lt.issued.Add(1) > int64(lt.cfg.MaxRequests) {
			return
		}
		up := lt.plan(rng, id, seq)
		if lt.claimed.Add(up.total) > lt.cfg.MaxBytes {
			return
		}
		lt.do(ctx, up)
	}
}

// file is one file of a request: its payload is generated from seed while
// it is sent, and hashed on the way.
type file struct {
	name string
	size int64
	seed uint64
	body *payload
}

type upload struct {
	kind  string
	files []*file
	total int64
}

// plan picks a request's kind, files and sizes.
func (lt *loadTest) plan(rng *rand.Rand, id, seq int) *upload {
	up := &upload{kind: kinds[rng.IntN(len(kinds))]}
	n := 1
	if up.kind == kindMultipart {
		n = 1 + rng.IntN(3)
	}
	for i := range n {
		size := min(lt.drawSize(rng), lt.cfg.MaxSize-up.total)
		if size <= 0 {
			break
		}
		f := &file{size: size, seed: rng.Uint64()}
		if up.kind == kindMultipart {
			// Multipart stores base names.
			f.name = fmt.Sprintf("%s-c%02d-%06d-%d.bin", lt.runID, id, seq, i+1)
		} else {
			f.name = fmt.Sprintf("%s/c%02d/%06d.bin", lt.runID, id, seq)
		}
		up.files = append(up.files, f)
		up.total += size
	}
	return up
}

func (lt *loadTest) drawSize(rng *rand.Rand) int64 {
	var classes []sizeClass
	total := 0
	for _, c := range sizeMix {
		if c.min <= lt.cfg.MaxSize {
			c.max = min(c.max, lt.cfg.MaxSize)
			classes = append(classes, c)
			total += c.weight
		}
	}
	w := rng.IntN(total)
	for _, c := range classes {
		if w < c.weight {
			return c.min + rng.Int64N(c.max-c.min+1)
		}
		w -= c.weight
	}
	panic("unreachable")
}
